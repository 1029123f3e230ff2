"""The commands that run one job of the workflow each (Snakemake calls them; every one also runs by hand)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmark.cli.arguments import numeric_path, optional_path, resolve_spec, tuned_spec, under_torchrun
from benchmark.numerics import apply as apply_numerics
from benchmark.registry import load_method
from benchmark.tasks import get_task


def preload(spec: dict[str, Any]) -> None:
    """Import what a training or evaluation job runs (box operations and torch's compiler stack they pull in,
    the data, training and evaluation code, the job's method and task) before the stage starts its clock, so
    that its record counts imports as start-up (``timing.startup_s``), not as data loading (``setup_s``).
    A method or task that fails to load is left to the stage, which reports it as before."""
    import benchmark.data.grounding
    import benchmark.data.sampling
    import benchmark.robustness.grid
    import benchmark.train.efficiency
    import benchmark.train.loop  # noqa: F401

    try:
        if spec.get("method"):
            load_method(spec["method"])
        if spec.get("task"):
            get_task(spec["task"])
    except Exception:  # the stage raises it again, with its own exit code
        pass


def cmd_data(args: argparse.Namespace) -> None:
    from benchmark.stages import run_data

    run_data(resolve_spec(args, "data"), Path(args.out))


def cmd_tokenizer(args: argparse.Namespace) -> None:
    from benchmark.stages import run_tokenizer

    run_tokenizer(resolve_spec(args, "tokenizer"), optional_path(args.data), Path(args.out))


def cmd_pretrain(args: argparse.Namespace) -> None:
    from benchmark.stages import run_pretrain

    spec = tuned_spec(args, "pretrain")
    mode = numeric_path(spec, args)
    under_torchrun(args)
    apply_numerics(mode, args.threads)
    preload(spec)
    run_pretrain(spec, Path(args.data), Path(args.tokenizer), Path(args.out))


def cmd_tune_select(args: argparse.Namespace) -> None:
    from benchmark.stages import run_tune_select

    run_tune_select(
        [Path(p) for p in args.trials],
        Path(args.out),
        [Path(p) for p in args.pretrained or []],
        optional_path(args.chosen_model),
    )


def cmd_finetune(args: argparse.Namespace) -> None:
    from benchmark.stages import run_finetune

    spec = tuned_spec(args, "finetune")
    mode = numeric_path(spec, args)
    under_torchrun(args)
    apply_numerics(mode, args.threads)
    preload(spec)
    run_finetune(spec, Path(args.data), Path(args.tokenizer), optional_path(args.init), Path(args.out))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from benchmark.stages import run_evaluate

    spec = resolve_spec(args, "evaluate")
    apply_numerics(numeric_path(spec, args), args.threads)
    preload(spec)
    run_evaluate(spec, Path(args.data), optional_path(args.tokenizer), optional_path(args.checkpoint), Path(args.out))


def cmd_robustness(args: argparse.Namespace) -> None:
    from benchmark.stages import run_robustness

    spec = resolve_spec(args, "robustness")
    apply_numerics(numeric_path(spec, args), args.threads)
    preload(spec)
    run_robustness(spec, Path(args.data), optional_path(args.tokenizer), optional_path(args.checkpoint), Path(args.out))


def cmd_reference(args: argparse.Namespace) -> None:
    from benchmark.stages import run_reference

    run_reference(resolve_spec(args, "reference"), Path(args.data), Path(args.out))
