"""The main tables: per dataset and task, mean ± std over seeds with intervals, marks, captions and footnotes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.metrics.bootstrap import RESAMPLES
from benchmark.report.aggregate.convergence import CAPPED_MARK, Capped
from benchmark.report.aggregate.failures import FAILED, MISSING, NOT_RUN, PARTIAL_CELL, PARTIAL_NOTE
from benchmark.report.curves import budget_text
from benchmark.report.tables import (
    footer_text,
    latex_table,
    number,
)
from benchmark.tasks import get_task, reference_rows_of_all_tasks

SIGNIFICANCE_NOTE = (
    "Best multimodal method per column in bold (unimodal references and methods that never predict are not "
    "eligible); methods not significantly worse than it {mark}: no eligible method with a higher mean is "
    "significantly above them, two-sided bootstrap probabilities Holm-adjusted over every pair of the column at "
    "0.05 (simulated false-positive rate between equal methods at most 5 % at 3, 5 and 10 seeds). Paired "
    "bootstrap, {resamples:,} replicates of the test units ({unit}), with the seeds' spread on a t with S − 1 "
    "degrees of freedom; a bootstrap probability is not a p-value."
)
"""Caption sentence of the main tables (:mod:`benchmark.report.statistics` defines each quantity)."""
CI_HEADING = (
    "95 % interval of the seed-mean (test units — {unit} — resampled, the seeds' spread on a t with S − 1 "
    "degrees of freedom; one seed: test units only):"
)
COMPARISONS_HEADING = (
    "Pairwise comparisons (headline metrics; comparisons.csv): observed difference A − B of the seed-means, its 95 % "
    "interval, P(A > B) over seed pairs (Agarwal et al. 2021) and the two-sided bootstrap probability, "
    "Holm-adjusted over the pairs of eligible methods:"
)
PER_SEED_HEADING = "Per-seed values, in seed order (main_stats.csv `seed_values`):"


def probability_text(value: float) -> str:
    """A probability in a Markdown table: three decimals, ``< 0.001`` below that (a bootstrap of 1,000
    replicates cannot resolve less), ``n/a`` when undefined. The CSV keeps the float."""
    if value is None or np.isnan(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def significance_note(task: str, mark: str) -> str:
    """:data:`SIGNIFICANCE_NOTE` for ``task``'s tables, its marks named by ``mark``."""
    return SIGNIFICANCE_NOTE.format(mark=mark, resamples=RESAMPLES, unit=get_task(task).bootstrap_unit or "a test item")


def _method_order(methods: Iterable[str]) -> list[str]:
    methods = sorted(set(methods))
    references = reference_rows_of_all_tasks()
    return [m for m in methods if m not in references] + [m for m in references if m in methods]


def _cell(stat: pd.Series, scale: float, with_std: bool = True) -> str:
    if np.isnan(stat["mean"]):
        status = str(stat["status"])
        return "failed" if status.startswith(FAILED) else "not run" if status.startswith(NOT_RUN) else "n/a"
    mark = PARTIAL_CELL if _fewer_seeds(stat) else ""
    if np.isnan(stat["std"]) or not with_std:
        return number(stat["mean"], scale) + mark
    return f"{number(stat['mean'], scale)} ± {number(stat['std'], scale)}{mark}"


def _fewer_seeds(stat: pd.Series) -> bool:
    """A learned method's mean over fewer seeds than configured (some failed or did not run)."""
    return not stat["reference"] and 0 < stat["n"] < stat.get("n_configured", stat["n"])


def _seeds_cell(rows: pd.DataFrame, zero_shot: bool = False) -> str:
    """Seeds behind a method's cells: ``3``, ``2/3`` (succeeded/configured), ``—`` for references and n/a;
    a published model evaluated without training says ``zero-shot`` (its seeds only re-run the evaluation),
    ``zero-shot (2/3)`` when some of them failed."""
    succeeded = int(rows["n"].max())
    configured = int(rows["n_configured"].max()) if "n_configured" in rows else succeeded
    if zero_shot:
        return "zero-shot" if succeeded == configured else f"zero-shot ({succeeded}/{configured})"
    if rows["reference"].any() or configured == 0:
        return "—"
    return str(succeeded) if succeeded == configured else f"{succeeded}/{configured}"


PARAMETERS_COLUMN = "params (M)"
"""The main tables' last column: each row's trainable parameters (:mod:`benchmark.report.aggregate.capacity`)."""


def _task_tables(
    stats: pd.DataFrame,
    dataset: str,
    task: str,
    zero_shot: frozenset[str] = frozenset(),
    capped: set[str] | frozenset[str] = frozenset(),
    parameters: dict[str, tuple[int, str]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """(cells, best mask, not-worse mask, CI cells, n/a notes) for one (dataset, task); a ``capped``
    method's name carries :data:`~benchmark.report.aggregate.convergence.CAPPED_MARK`; with ``parameters``
    (row → trainable parameters, family) a last column gives each row's (— where not trained here).

    Failed and not-run results are not n/a: :func:`failure_notes` lists them."""
    block = stats[(stats["dataset"] == dataset) & (stats["task"] == task)]
    metrics = [m for m in get_task(task).table_metrics if m in set(block["metric"])]
    scale = 100.0 if get_task(task).percent else 1.0
    cells, best, worse, ci, notes = [], [], [], [], []
    for method in _method_order(block["method"]):
        rows = block[block["method"] == method].set_index("metric")
        cells.append(
            [
                f"{method} {CAPPED_MARK}" if method in capped else method,
                _seeds_cell(rows, method in zero_shot),
                *[_cell(rows.loc[m], scale) if m in rows.index else "" for m in metrics],
            ]
        )
        best.append([False, False, *[bool(rows.loc[m, "best"]) if m in rows.index else False for m in metrics]])
        worse.append(
            [
                False,
                False,
                *[
                    bool(rows.loc[m, "not_worse_than_best"]) and not bool(rows.loc[m, "best"])
                    if m in rows.index
                    else False
                    for m in metrics
                ],
            ]
        )
        if not rows["reference"].any():
            ci.append(
                [
                    method,
                    *[
                        f"[{number(rows.loc[m, 'ci_low'], scale)}, {number(rows.loc[m, 'ci_high'], scale)}]"
                        if m in rows.index and not np.isnan(rows.loc[m, "ci_low"])
                        else "n/a"
                        for m in metrics
                    ],
                ]
            )
        if parameters is not None:
            count = parameters.get(method, (None, ""))[0]
            cells[-1].append(number(count, 1e-6, 2) if count is not None else "—")
            best[-1].append(False)
            worse[-1].append(False)
        shown = rows[rows.index.isin(metrics)]
        notes.extend(
            f"- {method}: {s}" for s in sorted({s for s in shown["status"] if s != "ok" and not s.startswith(MISSING)})
        )
    header = ["method", "seeds", *metrics, *([PARAMETERS_COLUMN] if parameters is not None else [])]
    return (
        pd.DataFrame(cells, columns=header),
        pd.DataFrame(best, columns=header),
        pd.DataFrame(worse, columns=header),
        pd.DataFrame(ci, columns=["method", *metrics]),
        notes,
    )


def _has_partial_cells(cells: pd.DataFrame) -> bool:
    return bool(cells.iloc[:, 2:].apply(lambda column: column.str.endswith(PARTIAL_CELL)).to_numpy().any())


def evaluation_counts(results: list[tuple[Path, dict[str, Any]]]) -> dict[tuple[str, str], str]:
    """Per (dataset, task), what its test numbers are computed on, from the evaluation protocols, as the task
    phrases them (``Task.protocol_counts``)."""
    found: dict[tuple[str, str], set[str]] = {}
    for _, record in results:
        spec, protocol = record.get("spec", {}), record.get("protocol") or {}
        if spec.get("stage") != "evaluate" or not protocol:
            continue
        text = get_task(spec["task"]).protocol_counts(protocol)
        if text:
            found.setdefault((spec["dataset"], spec["task"]), set()).add(text)
    return {key: "Computed on " + " / ".join(sorted(texts)) + "." for key, texts in found.items()}


def training_note(training: list[dict[str, Any]], dataset: str, task: str) -> str:
    """How the scored checkpoints of (``dataset``, ``task``) were trained and chosen: the pretraining budget
    and the val selection rule."""

    rules = {
        (r.get("train") or {}).get("validation", {}).get("rule")
        for r in training
        if r.get("spec", {}).get("stage") == "finetune"
        and (r["spec"].get("dataset"), r["spec"].get("task")) == (dataset, task)
        and (r.get("train") or {}).get("validation")
    }
    parts = [budget_text(training)]
    if rules:
        parts.append(f"Fine-tuned checkpoint chosen on val ({'; '.join(sorted(r for r in rules if r))}; selection.md).")
    return " ".join(p for p in parts if p)


def _comparisons_table(comparisons: pd.DataFrame, dataset: str, task: str, scale: float) -> pd.DataFrame:
    """One row per pair of methods and headline metric, the one with the higher observed mean as A."""
    block = comparisons[
        (comparisons["dataset"] == dataset) & (comparisons["task"] == task) & (comparisons["delta_observed"] >= 0)
    ]
    block = block[~((block["delta_observed"] == 0) & (block["a"] > block["b"]))]  # a tie: once, by name
    rows = [
        [
            row["metric"],
            row["a"],
            row["b"],
            number(row["delta_observed"], scale),
            f"[{number(row['low'], scale)}, {number(row['high'], scale)}]",
            probability_text(row["prob_improvement"]),
            probability_text(row["holm_boot_prob"]),
        ]
        for _, row in block.sort_values(["metric", "a", "b"]).iterrows()
    ]
    return pd.DataFrame(rows, columns=["metric", "A", "B", "Δ", "95 % interval", "P(A > B)", "Holm prob."])


def _per_seed_table(stats: pd.DataFrame, dataset: str, task: str, scale: float) -> pd.DataFrame:
    """method × table metric: each seed's value, space-separated (learned methods)."""
    block = stats[(stats["dataset"] == dataset) & (stats["task"] == task) & ~stats["reference"]]
    metrics = [m for m in get_task(task).table_metrics if m in set(block["metric"])]
    rows = []
    for method in _method_order(block["method"]):
        values = block[block["method"] == method].set_index("metric")["seed_values"]
        rows.append(
            [
                method,
                *[
                    " ".join(number(float(v), scale) for v in str(values[m]).split()) if m in values.index else ""
                    for m in metrics
                ],
            ]
        )
    return pd.DataFrame(rows, columns=["method", *metrics])


def main_markdown(
    stats: pd.DataFrame,
    provenance: dict[str, Any],
    failures: dict[tuple[str, str], list[str]] | None = None,
    zero_shot: frozenset[str] = frozenset(),
    captions: dict[tuple[str, str], str] | None = None,
    capped: Capped | None = None,
    parameters: dict[tuple[str, str], dict[str, tuple[int, str]]] | None = None,
    comparisons: pd.DataFrame | None = None,
    per_seed: bool = False,
) -> str:
    """main.md: one table per (dataset, task); ``failures`` (:func:`failure_notes`) lists missing results;
    ``zero_shot`` methods (published models evaluated without training) are marked in the seeds column;
    ``captions`` (what a table is computed on, how it was trained) are added to its caption; ``capped`` rows
    (stopped at their step cap while still improving) are marked, with a footnote; ``parameters`` (per table,
    :func:`~benchmark.report.aggregate.capacity.row_parameters`) adds a trainable-parameters column;
    ``comparisons`` (comparisons.csv) adds the pairwise comparisons; ``per_seed`` (``fusebench aggregate
    --per-seed``) each seed's value."""
    failures = failures or {}
    captions = captions or {}
    capped = capped or Capped()
    parts = ["# FuseBench results", ""]
    if failures:
        parts += [
            "**Partial results: some jobs failed or did not run.** Their results are marked below and in main.csv "
            "(status `failed: …` with the error and its log); rerun the workflow to retry them.",
            "",
        ]
    for (dataset, task), block in stats.groupby(["dataset", "task"], sort=True):
        cells, best, worse, ci, notes = _task_tables(
            stats,
            dataset,
            task,
            zero_shot,
            capped.methods(dataset, task),
            None if parameters is None else parameters.get((dataset, task), {}),
        )
        learned = block[~block["reference"]]
        configured = learned["n_configured"] if "n_configured" in learned else learned["n"]
        seed_counts = sorted({int(n) for n in configured if n > 0})
        unit = " (%)" if get_task(task).percent else ""
        marked = cells.copy()
        for i in range(len(marked)):
            for j in range(2, marked.shape[1]):
                if best.iloc[i, j]:
                    marked.iloc[i, j] = f"**{marked.iloc[i, j]}**"
                elif worse.iloc[i, j]:
                    marked.iloc[i, j] = f"_{marked.iloc[i, j]}_"
        parts += [
            f"## {dataset} — {task}",
            "",
            f"Mean ± sample std over {' or '.join(map(str, seed_counts)) or 0} seed(s){unit}; "
            + get_task(task).reference_note()
            + " "
            + significance_note(task, "in italics")
            + (" " + captions[(dataset, task)] if (dataset, task) in captions else ""),
            "",
            marked.to_markdown(index=False),
            "",
        ]
        if _has_partial_cells(cells):
            parts += [PARTIAL_NOTE, ""]
        if note := capped.note(dataset, task):
            parts += [note, ""]
        if notes:
            parts += ["n/a:", *notes, ""]
        if failures.get((dataset, task)):
            parts += ["Failed or not run:", *failures[(dataset, task)], ""]
        if not ci.empty:
            heading = CI_HEADING.format(unit=get_task(task).bootstrap_unit or "a test item")
            parts += [heading, "", ci.to_markdown(index=False), ""]
        scale = 100.0 if get_task(task).percent else 1.0
        if per_seed and "seed_values" in stats:
            parts += [
                PER_SEED_HEADING,
                "",
                _per_seed_table(stats, dataset, task, scale).to_markdown(index=False, disable_numparse=True),
                "",
            ]
        if comparisons is not None and not comparisons.empty:
            table = _comparisons_table(comparisons, dataset, task, scale)
            if not table.empty:
                parts += [COMPARISONS_HEADING, "", table.to_markdown(index=False, disable_numparse=True), ""]
    parts += ["---", footer_text(provenance)]
    return "\n".join(parts) + "\n"


def main_latex(
    stats: pd.DataFrame,
    provenance: dict[str, Any],
    zero_shot: frozenset[str] = frozenset(),
    captions: dict[tuple[str, str], str] | None = None,
    capped: Capped | None = None,
    parameters: dict[tuple[str, str], dict[str, tuple[int, str]]] | None = None,
) -> str:
    captions = captions or {}
    capped = capped or Capped()
    tables = []
    for (dataset, task), _ in stats.groupby(["dataset", "task"], sort=True):
        cells, best, worse, _, _ = _task_tables(
            stats,
            dataset,
            task,
            zero_shot,
            capped.methods(dataset, task),
            None if parameters is None else parameters.get((dataset, task), {}),
        )
        caption = (
            f"{task.capitalize()} on {dataset}: mean $\\pm$ sample std over seeds"
            + (" (%)" if get_task(task).percent else "")
            + ". "
            + significance_note(task, "underlined")
            + (" " + captions[(dataset, task)] if (dataset, task) in captions else "")
            + (" " + PARTIAL_NOTE.split(";")[0] + "." if _has_partial_cells(cells) else "")
            + (" " + capped.note(dataset, task) if capped.methods(dataset, task) else "")
        )
        tables.append(latex_table(cells, caption, f"tab:{dataset}-{task}", provenance, best, worse))
    return "\n".join(tables)
