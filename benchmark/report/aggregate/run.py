"""``fusebench aggregate``: read every result and write every table of the run."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import ConfigError, DataFileError, MethodError
from benchmark.io import read_json, write_json, write_text
from benchmark.paths import TABLES
from benchmark.provenance import git_state
from benchmark.registry import load_method
from benchmark.report.aggregate.capacity import capacity_note, row_parameters
from benchmark.report.aggregate.controls import control_rows, controls_latex, controls_markdown
from benchmark.report.aggregate.convergence import capped_rows
from benchmark.report.aggregate.efficiency import (
    compute_table,
    efficiency_frame,
    efficiency_latex,
    efficiency_markdown,
    efficiency_tables,
)
from benchmark.report.aggregate.failures import MissingResults, failure_notes
from benchmark.report.aggregate.footers import data_footer, weights_footer
from benchmark.report.aggregate.macros import macro_definitions
from benchmark.report.aggregate.main_tables import evaluation_counts, main_latex, main_markdown, training_note
from benchmark.report.aggregate.rows import collect_rows, labelled_zero_shot, load_results, zero_shot_methods
from benchmark.report.compositional import compositional_markdown, compositional_table
from benchmark.report.curves import learning_curves, selection_markdown
from benchmark.report.robustness import load_cell_items, robustness_latex, robustness_markdown, robustness_scores
from benchmark.report.statistics import load_items, method_statistics
from benchmark.report.tables import (
    csv_with_footer,
    footer_text,
    macros_file,
)
from benchmark.results import items_path
from benchmark.tasks import get_task, reference_rows_of_all_tasks


def run_aggregate(
    result_files: list[Path],
    out_dir: Path,
    config_hash_value: str,
    robustness_files: list[Path] | None = None,
    report: dict[str, Any] | None = None,
    training_files: list[Path] | None = None,
    missing: MissingResults | None = None,
    per_seed: bool = False,
) -> pd.DataFrame:
    """Write every table under ``out_dir``; return the tidy frame of clean results.

    ``missing`` (:func:`read_expected`, after a failed run) adds the rows of the results that
    are not there, so the tables show them as failed instead of leaving them out. ``per_seed``: main.md
    also shows each seed's value (main_stats.csv always has them)."""

    report = report or {}
    missing = missing or MissingResults()
    hardware: set[str] = set()
    results = load_results(result_files)
    robustness_results = load_results(robustness_files or [])
    frame = collect_rows(results, hardware, missing.rows)
    robustness_frame = (
        collect_rows(robustness_results, hardware, missing.robustness_rows)
        if robustness_results or missing.robustness_rows
        else None
    )
    git = git_state()
    provenance = {
        "config hash": config_hash_value,
        "git commit": git["commit"][:12] + ("+dirty" if git.get("dirty") else ""),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "hardware": "; ".join(sorted(hardware)) or "unknown",
    }
    if missing.failed or missing.not_run:
        provenance["partial"] = f"{len(missing.failed)} job(s) failed, {len(missing.not_run)} did not run"
    data = data_footer(results)
    if data:
        provenance["data"] = data
    weights = weights_footer(results)
    if weights:
        provenance["weights"] = weights
    zero_shot = zero_shot_methods(results)
    by_seed: dict[tuple[str, str, str], list[tuple[int, Any]]] = {}
    evaluations = []
    for path, record in results:
        spec = record.get("spec", {})
        if spec.get("stage") == "evaluate":
            evaluations.append(record)
            items_file = items_path(path)
            if not items_file.is_file():
                raise DataFileError(f"per-item records missing for {path}: expected {items_file}")
            by_seed.setdefault((spec["dataset"], spec["task"], spec["method"]), []).append(
                (int(spec.get("seed") or 0), load_items(items_file, spec["task"]))
            )
    # ordered by seed: the bootstrap resamples methods with as many seeds in pairs, seed k with seed k
    items = {key: [i for _, i in sorted(runs, key=lambda run: run[0])] for key, runs in by_seed.items()}
    stats, comparisons = method_statistics(frame, items, reference_rows_of_all_tasks())
    training = [read_json(p, what="training result") for p in training_files or []]
    evaluations += [record for _, record in robustness_results]
    efficiency = efficiency_frame(training, evaluations)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / TABLES.main_csv, csv_with_footer(frame, provenance))
    write_text(out_dir / TABLES.main_stats, csv_with_footer(stats, provenance))
    write_text(out_dir / TABLES.comparisons, csv_with_footer(comparisons, provenance))
    captions = {key: f"{text} {training_note(training, *key)}" for key, text in evaluation_counts(results).items()}
    capped = capped_rows(training)
    tables = stats.groupby(["dataset", "task"]).groups if not stats.empty else {}
    parameters = {key: row_parameters(training, *key) for key in tables}
    for key, rows in parameters.items():  # the capacity sentence: matched or not (docs/protocols.md)
        if note := capacity_note(rows):
            captions[key] = f"{captions[key]} {note}" if key in captions else note
    write_text(
        out_dir / TABLES.main_md,
        main_markdown(
            stats,
            provenance,
            failure_notes(frame),
            zero_shot,
            captions,
            capped=capped,
            parameters=parameters,
            comparisons=comparisons,
            per_seed=per_seed,
        ),
    )
    runs = {key: dict(seeds) for key, seeds in by_seed.items()}  # seed → records: the net gap's item bootstrap
    composition = labelled_zero_shot(
        compositional_table(frame, image_control(set(frame["method"])), items=runs), zero_shot
    )
    write_text(out_dir / TABLES.compositional, compositional_markdown(composition, provenance))
    write_text(out_dir / TABLES.main_tex, main_latex(stats, provenance, zero_shot, captions, capped, parameters))
    controls = control_rows(report.get("control_pairs") or [], frame, comparisons, training)
    write_text(out_dir / TABLES.controls_md, controls_markdown(controls, provenance))
    write_text(out_dir / TABLES.controls_tex, controls_latex(controls, provenance))
    write_text(out_dir / TABLES.learning_curves, csv_with_footer(learning_curves(training), provenance))
    write_text(out_dir / TABLES.selection, selection_markdown(training, footer_text(provenance)))
    scores = None
    if robustness_frame is not None:
        cell_items = load_cell_items(robustness_results)  # per-item records per cell: the intervals
        scores = write_robustness(robustness_frame, out_dir, report, provenance, zero_shot, cell_items)
    write_text(out_dir / TABLES.efficiency_csv, csv_with_footer(efficiency, provenance))
    cost, time = efficiency_tables(efficiency)
    compute = compute_table(efficiency)
    write_text(out_dir / TABLES.efficiency_md, efficiency_markdown(cost, time, provenance, compute))
    write_text(out_dir / TABLES.efficiency_tex, efficiency_latex(cost, time, provenance, compute))
    write_text(out_dir / TABLES.macros, macros_file(macro_definitions(stats, scores, efficiency), provenance))
    write_json(out_dir / TABLES.provenance, provenance)
    return frame


def method_modalities(methods: set[str]) -> dict[str, tuple[str, ...]]:
    """method → the modalities it reads (``FusionMethod.modalities``), for the methods with a method file; a row
    without one (a reference row) reads both."""

    out = {}
    for name in sorted(methods):
        try:
            out[name] = tuple(load_method(name).modalities)
        except MethodError:
            continue
    return out


def image_control(methods: set[str]) -> str | None:
    """The compositional gap's control: the method that reads only the image (the first by name), if one ran."""
    readers = sorted(name for name, reads in method_modalities(methods).items() if tuple(reads) == ("image",))
    return readers[0] if readers else None


def write_robustness(
    frame: pd.DataFrame,
    out_dir: Path,
    report: dict[str, Any],
    provenance: dict[str, Any],
    zero_shot: frozenset[str] = frozenset(),
    cell_items: dict[Any, Any] | None = None,
) -> pd.DataFrame:
    """robustness.csv (tidy grid), robustness_summary.csv, robustness_drops.csv, robustness.md/.tex; the
    Markdown and LaTeX tables mark zero-shot methods."""

    missing = [k for k in ("reference_method", "summary_metric") if k not in report]
    if missing:
        raise ConfigError(f"robustness tables need the report settings {missing} (stage spec 'report', --report)")
    reference = report["reference_method"]
    measured = frame.groupby("task")["metric"].unique() if not frame.empty else {}
    # the summary metric as the grid measured it (retrieval's candidate protocol: cand_mean_R)
    metrics = {
        task: get_task(task).robustness_metric(metric, measured[task]) if task in measured else metric
        for task, metric in report["summary_metric"].items()
    }
    result = robustness_scores(
        frame, reference, metrics, cell_items, modalities=method_modalities(set(frame["method"]))
    )
    scores, drops = result.scores, result.drops
    write_text(out_dir / TABLES.robustness_csv, csv_with_footer(frame, provenance))
    write_text(out_dir / TABLES.robustness_summary, csv_with_footer(scores, provenance))
    write_text(out_dir / TABLES.robustness_drops, csv_with_footer(drops, provenance))
    write_text(out_dir / TABLES.robustness_cells, csv_with_footer(result.cells, provenance))
    failed = [f"- {d} — {t}: {line[2:]}" for (d, t), lines in failure_notes(frame).items() for line in lines]
    if scores.empty:  # every robustness result failed: nothing to score
        markdown = "# FuseBench robustness\n\nNo scores: no robustness result was computed.\n"
        latex = f"% FuseBench robustness — {footer_text(provenance)}\n% no robustness result was computed\n"
    else:
        shown, shown_drops = (
            labelled_zero_shot(scores, zero_shot, reference),
            labelled_zero_shot(drops, zero_shot, reference),
        )
        markdown = robustness_markdown(shown, shown_drops, reference, report.get("max_images"))
        latex = robustness_latex(shown, reference, report.get("max_images"), provenance)
    write_text(
        out_dir / TABLES.robustness_md,
        markdown
        + ("\nFailed or not run (no scores):\n" + "\n".join(failed) + "\n" if failed else "")
        + f"\n---\n{footer_text(provenance)}\n",
    )
    write_text(out_dir / TABLES.robustness_tex, latex)
    return scores
