"""The compositional table: each method's metric on the seen and the held-out test subsets, and the gap.

A compositional split (:mod:`benchmark.data.compositional`) keeps some attribute combinations out
of training; its evaluations add rows ``<metric>@seen`` / ``<metric>@held_out``
(:mod:`benchmark.metrics.compositional`). Per (dataset, task, method, metric):

* ``seen``, ``held_out`` — the mean over seeds of the metric on each subset;
* ``gap`` — the mean over seeds of seen − held-out, over the seeds where both are defined (so
  ``gap`` = ``seen`` − ``held_out`` whenever every seed defines both). A positive gap is what the
  method loses on combinations it never saw;
* ``seeds`` — how many seeds define both;
* with a ``control`` (the method that reads only the image, ``FusionMethod.modalities``): ``net_gap`` = the
  method's gap − the control's gap (difference in differences: held-out items can be harder for reasons the
  text plays no part in — the image alone, image_only, already shows a gap), with ``net_low`` / ``net_high``, its
  95 % interval, and ``net_interval``, what it covers. With the evaluations' per-item records (``items``) tagged
  seen / held-out, ``seeds and items``: the test units are resampled once per (dataset, task) — the main
  statistics' draws, shared by every method, seed and metric — each (method, seed)'s gap is re-scored on every
  resample from its records, and the per-seed differences with the control (seeds paired by number) go
  through the benchmark's t seed part (:func:`benchmark.metrics.compositional.item_gap_difference`). Without
  tags on every seed of either side (records written before they were kept), ``seeds only``
  (:func:`benchmark.metrics.compositional.gap_difference`, the per-seed gaps of the rows). The control's own
  net gap is 0 by definition.

Only clean test rows count (robustness rows carry no subset metrics). A dataset without the
split has no such rows and the table is empty.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from benchmark.data.compositional import SUBSETS
from benchmark.metrics.bootstrap import LEVEL, RESAMPLES, ItemScores, resample_weights
from benchmark.metrics.compositional import (
    gap_difference,
    item_gap_difference,
    parse_subset_metric,
    subset_gap_replicates,
)
from benchmark.report.tables import footer_text, number
from benchmark.seeding import derive_seed
from benchmark.tasks import get_task, task_names

COLUMNS = ("dataset", "task", "method", "metric", "seen", "held_out", "gap", "seeds")
NET_COLUMNS = ("control", "net_gap", "net_low", "net_high", "net_interval")
BOTH_LEVELS, SEEDS_ONLY = "seeds and items", "seeds only"
"""``net_interval``: what the net gap's interval resamples."""
Key = tuple[Any, ...]
"""(dataset, task, method) or (dataset, task, method, metric)."""
ItemsBySeed = dict[tuple[str, str, str], dict[int, ItemScores | None]]
"""(dataset, task, method) → seed → that evaluation's per-item records (None: not applicable)."""
SUBSET_LABELS = {"seen": "seen", "held_out": "held-out", "net_gap": "net gap"}


def compositional_table(
    frame: pd.DataFrame, control: str | None = None, resamples: int = RESAMPLES, items: ItemsBySeed | None = None
) -> pd.DataFrame:
    """One row per (dataset, task, method, metric) with a subset metric: seen, held_out, gap, seeds; with a
    ``control`` method present, also its net gap and interval (module docstring; ``resamples`` replicates; the
    item level from ``items`` where they carry the seen / held-out tags).

    ``frame`` is the tidy results table (:data:`benchmark.results.ROW_COLUMNS`, ``main.csv``)."""
    parsed = frame["metric"].map(parse_subset_metric)
    rows = frame[parsed.notna() & (frame["corruption"] == "none")].copy()
    if rows.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    rows["base"] = parsed[rows.index].map(lambda p: p[0])
    rows["subset"] = parsed[rows.index].map(lambda p: p[1])
    wide = rows.pivot_table(
        index=["dataset", "task", "method", "base", "seed"],
        columns="subset",
        values="value",
        aggfunc="first",
        dropna=False,
    ).reindex(columns=list(SUBSETS))
    records = []
    gaps: dict[Key, dict[int, float]] = {}
    for (dataset, task, method, metric), block in wide.groupby(level=[0, 1, 2, 3], sort=True):
        seen, held_out = block["seen"].astype(float), block["held_out"].astype(float)
        if seen.isna().all() and held_out.isna().all():
            continue  # a (task, method, metric) the pivot's cross product made up: no such rows
        both = seen.notna() & held_out.notna()
        seeds = [int(s) if pd.notna(s) else 0 for s in block.index.get_level_values("seed")[both.to_numpy()]]
        gaps[(dataset, task, method, metric)] = dict(zip(seeds, (seen - held_out)[both].tolist()))  # seed order
        records.append(
            {
                "dataset": dataset,
                "task": task,
                "method": method,
                "metric": metric,
                "seen": float(seen.mean()) if seen.notna().any() else np.nan,
                "held_out": float(held_out.mean()) if held_out.notna().any() else np.nan,
                "gap": float((seen - held_out)[both].mean()) if both.any() else np.nan,
                "seeds": int(both.sum()),
            }
        )
    table = pd.DataFrame(records, columns=list(COLUMNS))
    if control is not None:
        replicates = _item_gaps(items or {}, table, control, resamples)
        table = _net_of_control(table, gaps, control, resamples, replicates)
    order = {(t, m): k for t in table["task"].unique() for k, m in enumerate(get_task(t).subset_metrics)}
    table["_order"] = [order.get((t, m), len(order)) for t, m in zip(table["task"], table["metric"])]
    return (
        table.sort_values(["dataset", "task", "method", "_order", "metric"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


GapReplicates = dict[tuple[str, str, str], dict[int, dict[str, np.ndarray]] | None]
"""(dataset, task, method) → seed → metric → its gap on each item resample (None: some seed's records untagged)."""


def _item_gaps(items: ItemsBySeed, table: pd.DataFrame, control: str, resamples: int) -> GapReplicates:
    """Each (dataset, task, method)'s per-seed gap replicates on one resample of the test units per (dataset, task)
    (:func:`~benchmark.metrics.bootstrap.resample_weights` seeded as the main statistics', so the same draws),
    for the (dataset, task)s whose control has tagged records; None for a method with an untagged seed."""
    out: GapReplicates = {}
    for (dataset, task), block in table.groupby(["dataset", "task"], sort=True):
        keys = [(dataset, task, m) for m in dict.fromkeys(block["method"])]
        runs = {key: items.get(key) or {} for key in keys}
        if not runs.get((dataset, task, control)):
            continue
        units = {r.units for seeds in runs.values() for r in seeds.values() if r is not None}
        if not units:
            continue  # no records (not applicable): the seed-only interval
        if len(units) != 1:
            raise ValueError(f"{dataset} / {task}: methods were evaluated on different test sets (units {units})")
        weights = resample_weights(units.pop(), resamples, derive_seed("bootstrap", dataset, task))
        for key, seeds in runs.items():
            per_seed = {s: None if r is None else subset_gap_replicates(r, weights) for s, r in seeds.items()}
            tagged = bool(per_seed) and all(v is not None for v in per_seed.values())
            out[key] = {s: v for s, v in per_seed.items() if v is not None} if tagged else None
    return out


def _net_of_control(
    table: pd.DataFrame,
    gaps: dict[Key, dict[int, float]],
    control: str,
    resamples: int,
    replicates: GapReplicates,
) -> pd.DataFrame:
    """``table`` with the net gap of every row whose (dataset, task, metric) the ``control`` also has."""

    net = []
    for dataset, task, method, metric in zip(table["dataset"], table["task"], table["method"], table["metric"]):
        reference = gaps.get((dataset, task, control, metric))
        if reference is None:
            net.append({c: np.nan for c in NET_COLUMNS} | {"control": "", "net_interval": ""})
            continue
        seed = derive_seed("compositional net gap", dataset, task, metric)
        own = gaps[(dataset, task, method, metric)]
        sides = [list(own.values()), list(reference.values())]
        keys = (dataset, task, method), (dataset, task, control)
        paired = _paired_replicates(replicates, *keys, metric, own, reference)
        if paired is None:
            result, covers = gap_difference(*sides, resamples, seed, LEVEL), SEEDS_ONLY
        else:
            result, covers = item_gap_difference(*sides, *paired, seed, LEVEL), BOTH_LEVELS
        net.append(
            {
                "control": control,
                "net_gap": result["net_gap"],
                "net_low": result["ci_low"],
                "net_high": result["ci_high"],
                "net_interval": covers,
            }
        )
    return pd.concat([table, pd.DataFrame(net, index=table.index, columns=list(NET_COLUMNS))], axis=1)


def _paired_replicates(
    replicates: GapReplicates,
    method: tuple[str, str, str],
    control: tuple[str, str, str],
    metric: str,
    method_gaps: dict[int, float],
    control_gaps: dict[int, float],
) -> tuple[np.ndarray, np.ndarray] | None:
    """(method, control) S × B gap replicates of ``metric`` on the seeds both define (rows), paired by seed number;
    None when either side's records carry no tags, miss the metric, or the sides share no seed."""
    mine, theirs = replicates.get(method), replicates.get(control)
    shared = sorted(set(method_gaps) & set(control_gaps))
    if mine is None or theirs is None or not shared:
        return None
    if any(s not in mine or metric not in mine[s] or s not in theirs or metric not in theirs[s] for s in shared):
        return None
    return np.array([mine[s][metric] for s in shared]), np.array([theirs[s][metric] for s in shared])


SEEDS_ONLY_MARK = "†"


def _seeds_only_note(table: pd.DataFrame) -> str:
    """The sentence for net gaps whose interval covers seeds only (records without the seen / held-out tags)."""
    if "net_interval" not in table or not (table["net_interval"] == SEEDS_ONLY).any():
        return ""
    return (
        f" {SEEDS_ONLY_MARK}: interval over seeds only (the two-level bootstrap's seed resampling, the test images "
        "fixed): the per-item records were written before they carried the seen / held-out tags, so it is too "
        "narrow by the item variance."
    )


def subset_notes() -> str:
    """How each task with subset metrics scores a subset (its ``subset_note``), one sentence, in task order."""
    tasks = [get_task(name) for name in task_names()]
    notes = [f"{task.name} {task.subset_note}" for task in tasks if task.subset_metrics and task.subset_note]
    text = "; ".join(notes)
    return f"{text[:1].upper()}{text[1:]}. " if text else ""


def compositional_markdown(table: pd.DataFrame, provenance: dict[str, Any] | None = None) -> str:
    """``compositional.md``: per (dataset, task), methods × (metric seen / held-out / gap)."""
    lines = [
        "# FuseBench compositional generalization",
        "",
        "Each metric on the test items that involve a held-out attribute combination (never in train or val) "
        "and on the others; gap = seen − held-out (positive: worse on unseen combinations). Means over seeds. "
        + subset_notes()
        + "Values in %.",
        "",
    ]
    if "net_gap" in table and table["net_gap"].notna().any():
        control = next(c for c in table["control"] if c)
        lines += [
            f"net gap = the method's gap − {control}'s (difference in differences: {control} never reads the text, "
            "so its gap is how much harder the held-out items are for the image alone), with its "
            f"{LEVEL:.0%} interval [low, high] over test images and seeds (the images resampled, the same draws "
            f"for every method and seed; the per-seed differences with {control}, seeds paired by number, "
            "on a t with S − 1 degrees of freedom)." + _seeds_only_note(table),
            "",
        ]
    if table.empty:
        lines += ["No compositional results: no test split tags seen / held-out items.", ""]
    for (dataset, task), block in table.groupby(["dataset", "task"], sort=False):
        scale = 100.0 if get_task(task).percent else 1.0
        metrics = list(dict.fromkeys(block["metric"]))
        cells = []
        for method, rows in block.groupby("method", sort=False):
            by_metric = rows.set_index("metric")
            row: dict[str, str] = {"method": method, "seeds": str(int(by_metric["seeds"].min()))}
            for metric in metrics:
                for column in ("seen", "held_out", "gap", *(("net_gap",) if "net_gap" in by_metric else ())):
                    value = by_metric.loc[metric, column] if metric in by_metric.index else np.nan
                    label = SUBSET_LABELS.get(column, column)
                    row[f"{metric} {label}"] = number(value, scale)
                    if column == "net_gap" and not np.isnan(value):
                        low, high = by_metric.loc[metric, "net_low"], by_metric.loc[metric, "net_high"]
                        row[f"{metric} {label}"] += f" [{number(low, scale)}, {number(high, scale)}]"
                        if by_metric.get("net_interval", pd.Series(dtype=str)).get(metric) == SEEDS_ONLY:
                            row[f"{metric} {label}"] += SEEDS_ONLY_MARK
            cells.append(row)
        lines += [f"## {dataset} — {task}", "", pd.DataFrame(cells).to_markdown(index=False, disable_numparse=True), ""]
    if provenance:
        lines += ["---", footer_text(provenance), ""]
    return "\n".join(lines)
