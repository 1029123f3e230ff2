"""``python -m benchmark`` is the ``fusebench`` command.

A workflow job with ``FUSEBENCH_WARM=1`` first offers its command to the warm worker (a process that has imported
torch and the stages already; :mod:`benchmark.workflow.warm`), and runs it here only where none can take it."""

import sys

from benchmark.workflow.warm import delegate, enabled


def run() -> int:
    argv = sys.argv[1:]
    if enabled(argv):
        status = delegate(argv)
        if status is not None:
            return status
    from benchmark.cli import main  # local: the warm worker's client must start without the CLI's imports

    return main()


raise SystemExit(run())
