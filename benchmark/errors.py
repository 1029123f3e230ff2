"""The errors FuseBench reports to users, in a module with no heavy imports.

Each maps to a CLI exit code, and each message names the file, key or value at fault.
"""


class ConfigError(ValueError):
    """An invalid configuration; the message names the file, key and allowed values (exit 2)."""


class MethodError(ValueError):
    """A method is mis-declared or mis-configured; the message names the method and key (exit 2)."""


class DataFileError(RuntimeError):
    """A dataset, checkpoint or result file is missing, unreadable or malformed; names it (exit 3)."""


class MissingModalityError(MethodError):
    """A method was asked to run without a modality it cannot do without; reported, not hidden."""
