"""``fusebench``'s entry point: parse, run the command, map a known failure to its exit code and one line."""

from __future__ import annotations

import logging
import os
import sys
import traceback

from benchmark.cli.parser import build_parser
from benchmark.errors import EXIT_CRASH, exit_code
from benchmark.workflow.warm import JOB_ENVIRONMENT_DEFAULTS

log = logging.getLogger("fusebench")


def main(argv: list[str] | None = None) -> int:
    for key, value in JOB_ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    args = build_parser().parse_args(argv)
    args.own_process = argv is None  # called as a command, not from Python with its own arguments
    args.fusebench = main  # what the warm worker's children run (benchmark.cli.warm)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s fusebench %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)  # -v: FuseBench's own debug lines, not PIL's
    try:
        status = args.func(args)
    except Exception as exc:
        known = exit_code(exc)
        if known is None:
            traceback.print_exc()
            print(f"fusebench: {args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_CRASH
        code, label = known
        log.debug("%s in fusebench %s (exit %d):", label, args.command, code, exc_info=True)
        print(f"fusebench: {label}: {exc}", file=sys.stderr)
        return code
    return int(status or 0)
