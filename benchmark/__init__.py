"""FuseBench: a reproducible benchmark of multimodal fusion strategies.

Importing the package is cheap (no torch): the Snakefile imports :mod:`benchmark.config`
to validate the configuration before any job starts.
"""

__version__ = "0.1.0"
