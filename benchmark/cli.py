"""``fusebench``: one subcommand per pipeline stage, so every Snakemake job also runs by hand.

Each stage needs its *spec* (the slice of the config it depends on). Snakemake passes it as
``--spec JSON``; by hand, give config files and the job's wildcards instead::

    fusebench data --config workflows/config/smoke.yaml --dataset scenes --out results/smoke/scenes/data
    fusebench pretrain --config workflows/config/smoke.yaml --dataset scenes --method contrastive_clip \\
        --seed 0 --data results/smoke/scenes/data --tokenizer results/smoke/scenes/tokenizer.json \\
        --out results/smoke/scenes/pretrain/contrastive_clip/seed0

Exit codes are listed once, in :data:`benchmark.errors.EXIT_CODES` (and by ``fusebench --help``):
a known failure (configuration, input, mismatched input, non-finite loss) ends with one line on
stderr, its traceback only with ``-v``; a crash exits 1 with its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from benchmark.config import load_config, stage_spec
from benchmark.errors import EXIT_CRASH, ConfigError, exit_code, exit_code_summary
from benchmark.hashing import config_hash
from benchmark.numerics import apply as apply_numerics
from benchmark.numerics import ensure_environment, with_numerics
from benchmark.paths import REPO_ROOT

log = logging.getLogger("fusebench")


def _config_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
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


def _spec_args(parser: argparse.ArgumentParser, *wildcards: str) -> None:
    """A stage's configuration: ``--spec JSON`` (what Snakemake passes), or the config and the job's wildcards."""
    group = _config_args(parser)
    group.add_argument("--spec", help="the stage spec as JSON (what Snakemake passes); replaces --config/--set")
    for name in wildcards:
        group.add_argument(f"--{name}", type=int if name == "seed" else str)


def _stage_parser(
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
    _spec_args(parser, *wildcards)
    if threads:
        parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    for argument, text in inputs.items():
        parser.add_argument(f"--{argument}", required=argument not in optional, help=text)
    parser.add_argument("--out", required=True, help=out_help)
    return parser


def _report_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's report settings (stage spec 'report') from ``--report JSON``."""
    if not args.report:
        raise ConfigError(f"fusebench {args.command}: give --report (the stage spec 'report' as JSON)")
    try:
        return json.loads(args.report)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--report is not valid JSON: {exc}") from None


def _resolve_spec(args: argparse.Namespace, stage: str) -> dict[str, Any]:
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


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _numeric_path(spec: dict[str, Any]) -> str:
    """The spec's numerics mode (:mod:`benchmark.numerics`), its environment in place: under ``portable``
    this command starts again with it set when it is not (before anything else, torchrun included)."""
    mode = spec.get("numerics", "native")
    ensure_environment(mode)
    return mode


def cmd_validate(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.set)
    from benchmark.config import resolve_methods
    from benchmark.registry import method_names

    methods = resolve_methods(config, method_names())
    print(
        f"configuration OK (hash {config_hash(config)}): datasets {list(config['datasets'])}, "
        f"methods {methods}, seeds {config['seeds']}, output_dir {config['output_dir']}"
    )


def cmd_where(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.set)
    print(Path(config["output_dir"]) / "tables")


def cmd_new_method(args: argparse.Namespace) -> None:
    from benchmark.registry import NAME_PATTERN, method_names

    name = args.name
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"method name {name!r} must be lower_snake_case (letters, digits, underscores), "
            "because it becomes a file name, a Snakemake wildcard and a table row"
        )
    directory = Path(args.dir) if args.dir else _checkout_baselines()
    target = directory / f"{name}.py"
    if target.exists():
        raise ConfigError(
            f"{target} already exists; choose another name (existing: {', '.join(method_names(directory))})"
        )
    template = (Path(__file__).parent / "templates" / "method.py.tmpl").read_text()
    class_name = "".join(part.capitalize() for part in name.split("_"))
    text = template.format(name=name, class_name=class_name, title=name.replace("_", " ").capitalize())
    from benchmark.io import write_text

    write_text(target, text)
    print(
        f"wrote {target}: a working pooled-feature fusion method to edit.\n"
        f"Next: fill in the docstring's paper, change the model, then `fusebench list-methods`; "
        f"the next `snakemake` run adds only its jobs, and `make test` runs it through the contract test."
    )


def _checkout_baselines() -> Path:
    """``$FUSEBENCH_BASELINES``, else ``baselines/`` of the checkout holding the current directory."""
    from benchmark.checkout import current_checkout
    from benchmark.plugins import folder_from_env

    return folder_from_env("FUSEBENCH_BASELINES") or current_checkout("new-method") / "baselines"


def cmd_list_datasets(args: argparse.Namespace) -> None:
    from benchmark.datasets import dataset_kinds, dataset_tasks, get_adapter
    from benchmark.datasets.official import OfficialAdapter

    for kind in dataset_kinds():
        adapter = get_adapter(kind)
        how = (
            "reads in place"
            if not adapter.generates
            else "converts"
            if isinstance(adapter, OfficialAdapter)
            else "builds"
        )
        tasks = ", ".join(dataset_tasks(kind)) or "(pretraining)"
        print(f"{kind:16s} {how:15s} tasks: {tasks:22s} {adapter.description}")


def cmd_list_tasks(args: argparse.Namespace) -> None:
    from benchmark.tasks import get_task, task_names

    for name in task_names():
        task = get_task(name)
        print(f"{name:16s} requires: {', '.join(task.requires):28s} {task.title}")


def cmd_list_methods(args: argparse.Namespace) -> None:
    from benchmark.registry import load_method, method_names

    for name in method_names():
        cls = load_method(name)
        print(f"{name:24s} {cls.family:18s} {cls.paper}")


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def cmd_data(args: argparse.Namespace) -> None:
    from benchmark.stages import run_data

    run_data(_resolve_spec(args, "data"), Path(args.out))


def cmd_tokenizer(args: argparse.Namespace) -> None:
    from benchmark.stages import run_tokenizer

    run_tokenizer(_resolve_spec(args, "tokenizer"), _optional_path(args.data), Path(args.out))


def _tuned_spec(args: argparse.Namespace, stage: str) -> dict[str, Any]:
    """The job's spec; under a learning-rate search (``spec["tuning"]``) trained with the factor ``--tuned``
    chose (:mod:`benchmark.train.tuning`)."""
    from benchmark.train.tuning import apply_choice

    spec = _resolve_spec(args, stage)
    if args.tuned:
        if "tuning" not in spec:
            raise ConfigError(f"fusebench {stage}: --tuned given, but the spec has no 'tuning' (tuning.lr_factors)")
        return apply_choice(spec, Path(args.tuned))
    if "tuning" in spec:
        raise ConfigError(f"fusebench {stage}: tuning.lr_factors is set; give --tuned (the method's choice.json)")
    return spec


def _under_torchrun(args: argparse.Namespace) -> None:
    """With ``--processes N`` > 1, start this same command again under torchrun, one process per GPU
    (:mod:`benchmark.train.distributed`); inside torchrun (``WORLD_SIZE`` set), or with 1, do nothing."""
    if (args.processes or 1) > 1 and "WORLD_SIZE" not in os.environ:
        torchrun = [sys.executable, "-m", "torch.distributed.run"]  # the `torchrun` command, of this interpreter
        command = [*torchrun, "--standalone", f"--nproc_per_node={args.processes}", "-m", "benchmark", *sys.argv[1:]]
        log.info("%s: %d processes under torchrun", args.command, args.processes)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, command)


def cmd_pretrain(args: argparse.Namespace) -> None:
    from benchmark.stages import run_pretrain

    spec = _tuned_spec(args, "pretrain")
    mode = _numeric_path(spec)
    _under_torchrun(args)
    apply_numerics(mode, args.threads)
    run_pretrain(spec, Path(args.data), Path(args.tokenizer), Path(args.out))


def cmd_tune_select(args: argparse.Namespace) -> None:
    from benchmark.stages import run_tune_select

    run_tune_select([Path(p) for p in args.trials], Path(args.out))


def cmd_finetune(args: argparse.Namespace) -> None:
    from benchmark.stages import run_finetune

    spec = _tuned_spec(args, "finetune")
    mode = _numeric_path(spec)
    _under_torchrun(args)
    apply_numerics(mode, args.threads)
    run_finetune(spec, Path(args.data), Path(args.tokenizer), _optional_path(args.init), Path(args.out))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from benchmark.stages import run_evaluate

    spec = _resolve_spec(args, "evaluate")
    apply_numerics(_numeric_path(spec), args.threads)
    run_evaluate(spec, Path(args.data), _optional_path(args.tokenizer), _optional_path(args.checkpoint), Path(args.out))


def cmd_robustness(args: argparse.Namespace) -> None:
    from benchmark.stages import run_robustness

    spec = _resolve_spec(args, "robustness")
    apply_numerics(_numeric_path(spec), args.threads)
    run_robustness(
        spec, Path(args.data), _optional_path(args.tokenizer), _optional_path(args.checkpoint), Path(args.out)
    )


def cmd_reference(args: argparse.Namespace) -> None:
    from benchmark.stages import run_reference

    run_reference(_resolve_spec(args, "reference"), Path(args.data), Path(args.out))


def cmd_aggregate(args: argparse.Namespace) -> None:
    from benchmark.report.aggregate import MissingResults, read_expected, run_aggregate

    files = [Path(p) for p in args.results]
    if args.results_list:
        files += [Path(line) for line in Path(args.results_list).read_text().split() if line]
    robustness, training = [Path(p) for p in args.robustness], [Path(p) for p in args.training]
    missing = MissingResults()
    if args.expected:  # after a failed run: every result that exists, and rows for the missing ones
        found, found_robustness, found_training, missing = read_expected(Path(args.expected))
        files, robustness, training = files + found, robustness + found_robustness, training + found_training
    with_robustness = bool(robustness or missing.robustness_rows)
    report = _report_settings(args) if args.report or with_robustness else {}
    out_dir = Path(args.out_dir)
    run_aggregate(files, out_dir, args.config_hash, robustness, report, training, missing)
    if args.expected:
        print(missing.summary(out_dir))
    else:
        print(f"tables written to {out_dir}/main.{{md,csv}}" + (" and robustness.{md,csv}" if with_robustness else ""))


def cmd_plots(args: argparse.Namespace) -> None:
    from benchmark.report.plots import draw_all

    report = _report_settings(args)
    draw_all(Path(args.tables), Path(args.out_dir), report["summary_metric"])
    print(f"plots written to {args.out_dir}")


def cmd_paper(args: argparse.Namespace) -> None:
    from benchmark.report.paper import build_paper

    build_paper(Path(args.source), Path(args.tables), Path(args.plots), Path(args.out))
    print(f"paper written to {args.out}")


def cmd_perf(args: argparse.Namespace) -> None:
    from benchmark.perf import PerfOptions, run_perf

    config = load_config(args.config, args.set)
    _set_threads(args.threads)
    methods = tuple(m for value in args.methods for m in value.split(",") if m) if args.methods else None
    options = PerfOptions(args.steps, args.warmup, methods, args.device, args.batch_size, args.dataset)
    run_perf(config, options, Path(args.out))


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from benchmark.report.leaderboard import copy_reference, update_readme

    if args.reference and args.readme:
        reference, readme = Path(args.reference), Path(args.readme)
    else:
        from benchmark.checkout import current_checkout

        root = current_checkout("leaderboard")
        reference = Path(args.reference) if args.reference else root / "results" / "reference"
        readme = Path(args.readme) if args.readme else root / "README.md"
    if args.source:
        copy_reference(Path(args.source), reference)
        print(f"copied the run under {args.source} to {reference}")
    changed = update_readme(readme, reference, check=args.check)
    if args.check:
        if changed:
            print(f"{readme} is out of date with {reference}: run `fusebench leaderboard`", file=sys.stderr)
            return 1
        print(f"{readme} matches {reference}")
    else:
        print(f"{readme} {'updated' if changed else 'already up to date'} from {reference}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from benchmark.report.compare import compare_runs, failing_headlines

    table, text = compare_runs(Path(args.run), Path(args.reference), _optional_path(args.out))
    print(text, end="")
    return 1 if not failing_headlines(table).empty else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusebench", description=__doc__.split("\n\n")[0], epilog=exit_code_summary())
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and the traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, help_text, func in (
        ("validate-config", "check a configuration and print what it runs", cmd_validate),
        ("where", "print the tables folder a configuration writes to", cmd_where),
    ):
        parser_ = sub.add_parser(name, help=help_text)
        _config_args(parser_)
        parser_.set_defaults(func=func)

    p = sub.add_parser("new-method", help="write a documented, working method template to baselines/NAME.py")
    p.add_argument("name", help="method name = file name (lower_snake_case)")
    p.add_argument("--dir", help="baselines folder (default: $FUSEBENCH_BASELINES, else this checkout's baselines/)")
    p.set_defaults(func=cmd_new_method)

    for name, help_text, func in (
        ("list-methods", "list the methods discovered in baselines/", cmd_list_methods),
        ("list-datasets", "list the dataset adapters (kinds) and the tasks each serves", cmd_list_datasets),
        ("list-tasks", "list the tasks and the dataset parts each requires", cmd_list_tasks),
    ):
        sub.add_parser(name, help=help_text).set_defaults(func=func)

    data_inputs = {"data": "dataset folder (the standard form)", "tokenizer": "tokenizer.json"}
    tuned = {"tuned": "the method's tuning choice.json, when tuning.lr_factors is set (tune-select writes it)"}
    stages = (
        ("data", "build a dataset (or check one read in place)", ("dataset",), {}, "data folder of the run", cmd_data),
        (
            "tokenizer",
            "train the tokenizer on the training captions (or export a pretrained text tower's own)",
            ("dataset",),
            {"data": data_inputs["data"] + " (not read for a pretrained text tower's tokenizer)"},
            "tokenizer.json to write",
            cmd_tokenizer,
        ),
        (
            "pretrain",
            "pretrain one method with one seed",
            ("dataset", "method", "seed"),
            {**data_inputs, **tuned},
            "folder for model.safetensors and result.json",
            cmd_pretrain,
        ),
        (
            "finetune",
            "fine-tune a pretrained method on one task",
            ("dataset", "method", "seed", "task"),
            {
                **data_inputs,
                "init": "pretrained model.safetensors (none for a method fine-tuned from its own weights)",
                **tuned,
            },
            "folder for model.safetensors and result.json",
            cmd_finetune,
        ),
        (
            "evaluate",
            "evaluate a fine-tuned method on the test split",
            ("dataset", "method", "seed", "task"),
            {**data_inputs, "checkpoint": "fine-tuned model.safetensors (none for a zero-shot method)"},
            "result JSON to write",
            cmd_evaluate,
        ),
        (
            "robustness",
            "re-evaluate a fine-tuned method under every (corruption, severity)",
            ("dataset", "method", "seed", "task"),
            {**data_inputs, "checkpoint": "fine-tuned model.safetensors (none for a zero-shot method)"},
            "result JSON to write",
            cmd_robustness,
        ),
        (
            "reference",
            "a task's reference rows (chance, text-blind detectors)",
            ("dataset", "task"),
            {"data": data_inputs["data"]},
            "result JSON to write",
            cmd_reference,
        ),
    )
    optional = {
        "pretrain": ("tuned",),
        "finetune": ("init", "tuned"),
        "tokenizer": ("data",),
        "evaluate": ("tokenizer", "checkpoint"),
        "robustness": ("tokenizer", "checkpoint"),
    }
    for name, help_text, wildcards, inputs, out_help, func in stages:
        threads = name not in ("data", "tokenizer", "reference")
        stage = _stage_parser(sub, name, help_text, wildcards, inputs, out_help, threads, optional.get(name, ()))
        stage.set_defaults(func=func)
        if name in ("pretrain", "finetune"):
            stage.add_argument(
                "--processes", type=int, default=1, help="processes (GPUs); more than 1 runs under torchrun (DDP)"
            )

    p = sub.add_parser("tune-select", help="choose a method's learning-rate factor from its tuning trials (on val)")
    p.add_argument("trials", nargs="+", help="the fine-tuning result.json of every trial of one method")
    p.add_argument("--out", required=True, help="choice.json to write")
    p.set_defaults(func=cmd_tune_select)

    p = sub.add_parser("aggregate", help="collect result files into results tables")
    p.add_argument("results", nargs="*", help="evaluation result JSON files")
    p.add_argument("--results-list", help="file listing result JSON paths (whitespace separated)")
    p.add_argument("--out-dir", required=True, help="tables folder")
    p.add_argument("--config-hash", default="unknown", help="hash of the run's resolved config, for footers")
    p.add_argument("--robustness", nargs="*", default=[], help="robustness result JSON files")
    p.add_argument("--training", nargs="*", default=[], help="pretrain/finetune result.json files (efficiency table)")
    p.add_argument("--report", help="stage spec 'report' as JSON (reference_method, summary_metric, max_images)")
    p.add_argument(
        "--expected",
        metavar="JSON",
        help="every result the run should have (what the workflow writes after a failed run): reads those that "
        "exist, marks each missing one 'failed: <error> (log: <path>)' and prints the failed jobs",
    )
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser(
        "perf",
        help="pretraining throughput of the training loop against a naive loop, FLOPs and the fraction of peak",
    )
    _config_args(p)
    p.add_argument(
        "--methods",
        nargs="+",
        metavar="METHOD",
        help="methods to time, names or comma-separated (default: the config's methods with a pretraining stage)",
    )
    p.add_argument("--steps", type=int, default=20, help="timed steps per loop (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="steps before the timed ones (default: %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the config's device")
    p.add_argument("--batch-size", type=int, help="default: the config's pretrain.batch_size")
    p.add_argument("--dataset", help="dataset to pretrain on (default: the config's first pretraining dataset)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", default="results/perf", help="folder for the JSON, table and plot (default: %(default)s)")
    p.set_defaults(func=cmd_perf)

    p = sub.add_parser("leaderboard", help="regenerate the README's results section from the reference run")
    p.add_argument("--from", dest="source", help="first copy this finished run (e.g. results) into the reference")
    p.add_argument("--reference", help="reference folder (default: results/reference of this checkout)")
    p.add_argument("--readme", help="README to update (default: README.md of this checkout)")
    p.add_argument("--check", action="store_true", help="fail (exit 1) if the README is out of date; change nothing")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser(
        "compare",
        help="compare a run's main.csv with a reference run's: identical, inside the reference's seed-inclusive "
        "interval, or outside; exit 1 when a headline seed-mean falls outside",
    )
    p.add_argument("run", help="the run's tables folder (or its output folder, e.g. results)")
    p.add_argument("reference", help="the reference's tables folder (e.g. results/reference)")
    p.add_argument("--out", help="CSV to write every compared value to")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("paper", help="compile the paper against a run's tables and plots (pdflatex)")
    p.add_argument("--source", default=str(REPO_ROOT / "paper" / "main.tex"))
    p.add_argument("--tables", required=True, help="tables folder (macros.tex, main.tex, ...)")
    p.add_argument("--plots", required=True, help="plots folder (PDF figures)")
    p.add_argument("--out", required=True, help="PDF to write")
    p.set_defaults(func=cmd_paper)

    p = sub.add_parser("plots", help="draw the tables' plots: main metrics, efficiency, robustness")
    p.add_argument("--tables", required=True, help="tables folder written by aggregate")
    p.add_argument("--out-dir", required=True, help="plots folder")
    p.add_argument("--report", help="stage spec 'report' as JSON (summary_metric)")
    p.set_defaults(func=cmd_plots)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    raise SystemExit(main())
