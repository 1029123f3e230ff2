"""What the Snakemake workflow (``Snakefile``, ``workflows/rules/*.smk``) needs from Python, as tested functions.

Torch-free (the Snakefile imports it): :mod:`~benchmark.workflow.paths` (every file of a run, as a path
template), :mod:`~benchmark.workflow.commands` (the shell commands of the job rules),
:mod:`~benchmark.workflow.inputs` (the files of a local weights path), :mod:`~benchmark.workflow.expected`
(the expected-results file a failed run's tables are written from), :mod:`~benchmark.workflow.partial`
(what the workflow's ``onerror`` does in plain Python) and :mod:`~benchmark.workflow.locks` (the stale-lock
check of ``make run``, ``python -m benchmark.workflow.locks``).

Nothing is imported here, so that ``python -m benchmark.workflow.locks`` starts fast.
"""
