"""The commands around the jobs: check a configuration, list plug-ins, write a method, tables, plots, paper, perf."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.checkout import current_checkout
from benchmark.cli.arguments import optional_path, report_settings, set_threads
from benchmark.config import load_config, resolve_methods
from benchmark.datasets import dataset_kinds, dataset_tasks, get_adapter
from benchmark.errors import ConfigError
from benchmark.hashing import config_hash
from benchmark.io import write_json, write_text
from benchmark.plugins import folder_from_env
from benchmark.registry import NAME_PATTERN, load_method, method_names
from benchmark.report.leaderboard import RESULTS_PAGE, copy_reference, update_readme
from benchmark.report.paper import build_paper
from benchmark.tasks import get_task, task_names


def cmd_validate(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.set)

    methods = resolve_methods(config, method_names())
    print(
        f"configuration OK (hash {config_hash(config)}): datasets {list(config['datasets'])}, "
        f"methods {methods}, seeds {config['seeds']}, output_dir {config['output_dir']}"
    )


def cmd_where(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.set)
    print(Path(config["output_dir"]) / "tables")


def cmd_new_method(args: argparse.Namespace) -> None:

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
    template = (Path(__file__).parent.parent / "templates" / "method.py.tmpl").read_text()
    class_name = "".join(part.capitalize() for part in name.split("_"))
    text = template.format(name=name, class_name=class_name, title=name.replace("_", " ").capitalize())

    write_text(target, text)
    print(
        f"wrote {target}: a working pooled-feature fusion method to edit.\n"
        f"Next: fill in the docstring's paper, change the model, then `fusebench list-methods`; "
        f"the next `snakemake` run adds only its jobs, and `make test` runs it through the contract test."
    )


def _checkout_baselines() -> Path:
    """``$FUSEBENCH_BASELINES``, else ``baselines/`` of the checkout holding the current directory."""

    return folder_from_env("FUSEBENCH_BASELINES") or current_checkout("new-method") / "baselines"


def cmd_list_datasets(args: argparse.Namespace) -> None:
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

    for name in task_names():
        task = get_task(name)
        print(f"{name:16s} requires: {', '.join(task.requires):28s} {task.title}")


def cmd_list_methods(args: argparse.Namespace) -> None:

    for name in method_names():
        cls = load_method(name)
        print(f"{name:24s} {cls.family:18s} {cls.paper}")


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
    report = report_settings(args) if args.report or with_robustness else {}
    out_dir = Path(args.out_dir)
    run_aggregate(
        files, out_dir, args.config_hash, robustness, report, training, missing, getattr(args, "per_seed", False)
    )
    if args.expected:
        print(missing.summary(out_dir))
    else:
        print(f"tables written to {out_dir}/main.{{md,csv}}" + (" and robustness.{md,csv}" if with_robustness else ""))


def cmd_plots(args: argparse.Namespace) -> None:
    from benchmark.report.plots import draw_all

    report = report_settings(args)
    draw_all(Path(args.tables), Path(args.out_dir), report["summary_metric"])
    print(f"plots written to {args.out_dir}")


def cmd_paper(args: argparse.Namespace) -> None:

    build_paper(Path(args.source), Path(args.tables), Path(args.plots), Path(args.out))
    print(f"paper written to {args.out}")


def cmd_perf(args: argparse.Namespace) -> None:
    from benchmark.perf import PerfOptions, run_perf

    config = load_config(args.config, args.set)
    set_threads(args.threads)
    methods = tuple(m for value in args.methods for m in value.split(",") if m) if args.methods else None
    options = PerfOptions(args.steps, args.warmup, methods, args.device, args.batch_size, args.dataset)
    run_perf(config, options, Path(args.out))


def cmd_floor(args: argparse.Namespace) -> None:
    from benchmark.report.floor import run_floor

    config = load_config(args.config, args.set)
    text, record = run_floor(Path(args.run), config, args.cores, args.wall_s, args.seconds)
    print(text, end="")
    if args.json:
        write_json(Path(args.json), record)


def cmd_leaderboard(args: argparse.Namespace) -> int:

    if args.reference and args.readme:
        reference, readme = Path(args.reference), Path(args.readme)
    else:
        root = current_checkout("leaderboard")
        reference = Path(args.reference) if args.reference else root / "results" / "reference"
        readme = Path(args.readme) if args.readme else root / RESULTS_PAGE
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

    table, text = compare_runs(Path(args.run), Path(args.reference), optional_path(args.out))
    print(text, end="")
    return 1 if not failing_headlines(table).empty else 0
