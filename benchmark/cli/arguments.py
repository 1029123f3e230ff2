"""The arguments stage commands share: config files or ``--spec``, the wildcards, the inputs, the numerics."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from benchmark.config import load_config, stage_spec
from benchmark.errors import ConfigError
from benchmark.numerics import ensure_environment, with_numerics
from benchmark.train.tuning import apply_choice

log = logging.getLogger("fusebench")


def config_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """``--config FILE`` (repeatable, merged over the defaults) and ``--set KEY=VALUE`` (repeatable)."""
    group = parser.add_argument_group("configuration")
    group.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="config file merged over workflows/config/default.yaml (repeatable)",
    )
    group.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one key, e.g. --set pretrain.steps=100 (repeatable)",
    )
    return group


def spec_args(parser: argparse.ArgumentParser, *wildcards: str) -> None:
    """A stage's configuration: ``--spec JSON`` (what Snakemake passes), or the config and the job's wildcards."""
    group = config_args(parser)
    group.add_argument("--spec", help="the stage spec as JSON (what Snakemake passes); replaces --config/--set")
    for name in wildcards:
        group.add_argument(f"--{name}", type=int if name == "seed" else str)


def stage_parser(
    sub: Any,
    name: str,
    help_text: str,
    wildcards: tuple[str, ...],
    inputs: dict[str, str],
    out_help: str,
    threads: bool = True,
    optional: tuple[str, ...] = (),
) -> argparse.ArgumentParser:
    """A stage command: its spec arguments, ``--threads``, the input paths it reads (``optional`` ones
    only for some specs) and ``--out``."""
    parser = sub.add_parser(name, help=help_text)
    spec_args(parser, *wildcards)
    if threads:
        parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    for argument, text in inputs.items():
        parser.add_argument(f"--{argument}", required=argument not in optional, help=text)
    parser.add_argument("--out", required=True, help=out_help)
    return parser


def report_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's report settings (stage spec 'report') from ``--report JSON``."""
    if not args.report:
        raise ConfigError(f"fusebench {args.command}: give --report (the stage spec 'report' as JSON)")
    try:
        return json.loads(args.report)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--report is not valid JSON: {exc}") from None


def resolve_spec(args: argparse.Namespace, stage: str) -> dict[str, Any]:
    """The spec from --spec, or cut from the config for this job's wildcards."""
    if args.spec:
        try:
            spec = json.loads(args.spec)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--spec is not valid JSON: {exc}") from None
        if spec.get("stage") != stage:
            raise ConfigError(f"--spec is for stage {spec.get('stage')!r}, not {stage!r}")
        return spec
    config = load_config(args.config, args.set)
    wildcards = {k: getattr(args, k, None) for k in ("dataset", "method", "seed", "task")}
    missing = [f"--{k}" for k, v in wildcards.items() if hasattr(args, k) and v is None]
    if missing:
        raise ConfigError(f"fusebench {stage}: without --spec, give {' '.join(missing)}")
    return with_numerics(stage_spec(config, stage, **{k: v for k, v in wildcards.items() if hasattr(args, k)}), config)


def tuned_spec(args: argparse.Namespace, stage: str) -> dict[str, Any]:
    """The job's spec; under a learning-rate search (``spec["tuning"]``) trained with the factor ``--tuned``
    chose (:mod:`benchmark.train.tuning`)."""

    spec = resolve_spec(args, stage)
    if args.tuned:
        if "tuning" not in spec:
            raise ConfigError(f"fusebench {stage}: --tuned given, but the spec has no 'tuning' (tuning.lr_factors)")
        return apply_choice(spec, Path(args.tuned))
    if "tuning" in spec:
        raise ConfigError(f"fusebench {stage}: tuning.lr_factors is set; give --tuned (its choice of this stage)")
    return spec


def optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def numeric_path(spec: dict[str, Any], args: argparse.Namespace) -> str:
    """The spec's numerics mode (:mod:`benchmark.numerics`), its environment in place: under ``portable``
    this command starts again with it set when it is not (before anything else, torchrun included) — only
    when it is its own process (``fusebench``, ``python -m benchmark``), never inside a caller of ``main``."""
    mode = spec.get("numerics", "native")
    ensure_environment(mode, restart=getattr(args, "own_process", True))
    return mode


def under_torchrun(args: argparse.Namespace) -> None:
    """With ``--processes N`` > 1, start this same command again under torchrun, one process per GPU
    (:mod:`benchmark.train.distributed`); inside torchrun (``WORLD_SIZE`` set), or with 1, do nothing."""
    if (args.processes or 1) > 1 and "WORLD_SIZE" not in os.environ:
        torchrun = [sys.executable, "-m", "torch.distributed.run"]  # the `torchrun` command, of this interpreter
        command = [*torchrun, "--standalone", f"--nproc_per_node={args.processes}", "-m", "benchmark", *sys.argv[1:]]
        log.info("%s: %d processes under torchrun", args.command, args.processes)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, command)
