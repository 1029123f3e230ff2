"""The ``fusebench`` argument parser: one subcommand per command, its help and its arguments."""

from __future__ import annotations

import argparse

from benchmark.cli.arguments import config_args, stage_parser
from benchmark.cli.commands import (
    cmd_aggregate,
    cmd_compare,
    cmd_floor,
    cmd_leaderboard,
    cmd_list_datasets,
    cmd_list_methods,
    cmd_list_tasks,
    cmd_new_method,
    cmd_paper,
    cmd_perf,
    cmd_plots,
    cmd_validate,
    cmd_where,
)
from benchmark.cli.stage_commands import (
    cmd_data,
    cmd_evaluate,
    cmd_finetune,
    cmd_pretrain,
    cmd_reference,
    cmd_robustness,
    cmd_tokenizer,
    cmd_tune_select,
)
from benchmark.cli.warm import cmd_warm_serve
from benchmark.errors import exit_code_summary
from benchmark.paths import REPO_ROOT
from benchmark.workflow.warm import IDLE_EXIT_S

DESCRIPTION = "``fusebench``: one subcommand per pipeline stage, so every Snakemake job also runs by hand."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusebench", description=DESCRIPTION, epilog=exit_code_summary())
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, and the traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, help_text, func in (
        ("validate-config", "check a configuration and print what it runs", cmd_validate),
        ("where", "print the tables folder a configuration writes to", cmd_where),
    ):
        parser_ = sub.add_parser(name, help=help_text)
        config_args(parser_)
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

    p = sub.add_parser("warm-serve", help="the warm worker a workflow job starts (FUSEBENCH_WARM=1; see warm_start)")
    p.add_argument("--socket", required=True, help="Unix socket to serve on")
    p.add_argument("--idle-exit", type=float, default=IDLE_EXIT_S, help="exit after this many idle seconds")
    p.set_defaults(func=cmd_warm_serve)

    data_inputs = {"data": "dataset folder (the standard form)", "tokenizer": "tokenizer.json"}
    tuned = {
        "tuned": "the method's tuning choice of this stage (and task), when tuning.lr_factors is set (tune-select "
        "writes it)"
    }
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
        stage = stage_parser(sub, name, help_text, wildcards, inputs, out_help, threads, optional.get(name, ()))
        stage.set_defaults(func=func)
        if name in ("pretrain", "finetune"):
            stage.add_argument(
                "--processes", type=int, default=1, help="processes (GPUs); more than 1 runs under torchrun (DDP)"
            )

    p = sub.add_parser("tune-select", help="choose a method's learning-rate factor from its tuning trials (on val)")
    p.add_argument(
        "trials", nargs="+", help="the fine-tuning result.json of every trial of one method's stage (and task)"
    )
    p.add_argument("--out", required=True, help="choice.json to write")
    p.add_argument(
        "--pretrained", nargs="+", help="the pretraining trials' model.safetensors (choosing the pretraining factor)"
    )
    p.add_argument("--chosen-model", help="where the chosen pretraining trial's checkpoint is copied")
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
        "--per-seed",
        action="store_true",
        help="main.md also shows each seed's value (main_stats.csv always has them, column seed_values)",
    )
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
    config_args(p)
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

    p = sub.add_parser(
        "floor",
        help="compute floor of a finished run (its FLOPs at this machine's matmul throughput) against its wall time",
    )
    p.add_argument("run", help="the run's output folder (e.g. results) or a folder of its tables (results/reference)")
    config_args(p)  # the matmul shapes and job threads where the folder holds tables only
    p.add_argument("--cores", type=int, help="cores the run had (default: the records' host, else this machine's)")
    p.add_argument("--wall-s", type=float, help="the run's wall time in seconds (default: the records' span)")
    p.add_argument("--seconds", type=float, default=0.2, help="timing per matmul shape (default: %(default)s)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.set_defaults(func=cmd_floor)

    p = sub.add_parser("leaderboard", help="regenerate the results page (docs/results.md) from the reference run")
    p.add_argument("--from", dest="source", help="first copy this finished run (e.g. results) into the reference")
    p.add_argument("--reference", help="reference folder (default: results/reference of this checkout)")
    p.add_argument("--readme", help="page to update (default: docs/results.md of this checkout)")
    p.add_argument("--check", action="store_true", help="fail (exit 1) if the page is out of date; change nothing")
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
