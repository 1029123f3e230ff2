"""``fusebench compare RUN REFERENCE``: how a run's ``main.csv`` agrees with a reference run's.

Every value of the run (per dataset, task, method, metric, corruption, severity and seed, and
each seed-mean) gets one verdict against the reference:

* ``identical`` — the same value as written in ``main.csv`` (6 decimals) and the same status;
* ``inside`` — a different value inside the reference's *seed-inclusive interval*: the smallest
  interval holding every reference seed's value and, where the reference has ``main_stats.csv``,
  the two-level bootstrap interval of its seed-mean (``ci_low`` … ``ci_high``, seeds and test
  items resampled, :mod:`benchmark.report.statistics`). A value another machine computes on
  another numeric path behaves like one more seed, so the interval covers the seeds;
* ``outside`` — a value outside that interval;
* ``status differs`` — one side has a value and the other none, or their statuses differ
  (``failed``, ``not applicable``, ``undefined``);
* ``missing`` — in the reference but not in the run; ``not in reference`` — the other way round.

The comparison *fails* (exit 1) when a headline value falls outside: the seed-mean of one of a
task's ``headline_metrics`` (:mod:`benchmark.tasks`) on the clean test set whose verdict is
``outside``, ``status differs`` or ``missing``. Single seeds are reported but do not fail it: a
fourth seed falls outside the range of three about half of the time, whatever the machine.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.errors import DataFileError
from benchmark.tasks import get_task

CELL = ["dataset", "task", "method", "metric", "corruption", "severity"]
"""What one reference interval is for: a value's key without its seed."""
MEAN = "mean"
"""The seed column of a seed-mean row in the comparison."""
VERDICTS = ("identical", "inside", "outside", "status differs", "missing", "not in reference")
FAILING = ("outside", "status differs", "missing")
"""Verdicts of a headline seed-mean that fail the comparison."""
DIGITS = 6
"""``main.csv`` writes values with 6 decimals (:func:`benchmark.report.tables.csv_with_footer`)."""


def tables_folder(path: Path) -> Path:
    """The folder holding ``main.csv``: ``path`` itself, its ``tables/`` (a run's output folder), or the
    folder of ``path`` when it names ``main.csv``."""
    path = Path(path)
    for folder in (path.parent if path.is_file() else path, path / "tables"):
        if (folder / "main.csv").is_file():
            return folder
    raise DataFileError(f"no main.csv in {path} or {path / 'tables'}: give a tables folder or a run's output folder")


def read_main(folder: Path) -> pd.DataFrame:
    """``main.csv`` with the seed as a nullable integer (reference rows have none)."""
    frame = pd.read_csv(folder / "main.csv", comment="#", dtype={"corruption": str, "status": str})
    frame["seed"] = frame["seed"].astype("Int64")
    frame["status"] = frame["status"].fillna("ok")
    return frame


def footer(folder: Path) -> str:
    """The provenance line at the end of ``main.csv`` (without its ``#``), or an empty string."""
    lines = [line for line in (folder / "main.csv").read_text().splitlines() if line.startswith("#")]
    return lines[-1].lstrip("# ").strip() if lines else ""


def intervals(reference: pd.DataFrame, stats: pd.DataFrame | None) -> pd.DataFrame:
    """Per cell (:data:`CELL`): ``low`` / ``high`` of the reference's seed-inclusive interval."""
    ok = reference[reference["status"] == "ok"].dropna(subset=["value"])
    bounds = ok.groupby(CELL, dropna=False)["value"].agg(low="min", high="max").reset_index()
    if stats is not None and not stats.empty and {"ci_low", "ci_high"} <= set(stats.columns):
        keys = ["dataset", "task", "method", "metric"]
        clean = bounds["corruption"] == "none"  # main_stats.csv describes the clean test set
        merged = bounds[clean].merge(stats[[*keys, "ci_low", "ci_high"]], on=keys, how="left")
        merged["low"] = np.fmin(merged["low"], merged["ci_low"])
        merged["high"] = np.fmax(merged["high"], merged["ci_high"])
        bounds = pd.concat([merged.drop(columns=["ci_low", "ci_high"]), bounds[~clean]], ignore_index=True)
    return bounds


def seed_means(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per cell with seeds: the mean of its values with status ok, rounded as ``main.csv`` writes
    them; status ok when every seed has one, else the first other status. Rows without a seed (a task's
    reference rows) stand for themselves."""
    seeded = frame[frame["seed"].notna()]
    rows = []
    for key, group in seeded.groupby(CELL, dropna=False, sort=True):
        good = group[(group["status"] == "ok") & group["value"].notna()]
        others = group.loc[group["status"] != "ok", "status"]
        value = round(float(good["value"].mean()), DIGITS) if len(good) else math.nan
        status = "ok" if others.empty else str(others.iloc[0])
        rows.append({**dict(zip(CELL, key, strict=True)), "seed": MEAN, "value": value, "status": status})
    own = frame[frame["seed"].isna()].assign(seed=MEAN)
    return pd.concat([pd.DataFrame(rows), own[[*CELL, "seed", "value", "status"]]], ignore_index=True)


def verdict(value: float, status: str, ref_value: float, ref_status: str, low: float, high: float) -> str:
    if isinstance(ref_status, float):  # no such row in the reference (merge left it empty)
        return "not in reference"
    if isinstance(status, float):
        return "missing"
    has, ref_has = not pd.isna(value), not pd.isna(ref_value)
    if status != ref_status or has != ref_has:
        return "status differs"
    if not has or round(value, DIGITS) == round(ref_value, DIGITS):
        return "identical"
    if not pd.isna(low) and round(low, DIGITS) <= round(value, DIGITS) <= round(high, DIGITS):
        return "inside"
    return "outside"


def compare_frames(run: pd.DataFrame, reference: pd.DataFrame, stats: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every value of ``run`` and ``reference`` (both ``main.csv`` frames) and every seed-mean, with the
    reference's value, its interval and a verdict (:data:`VERDICTS`); ``headline`` marks the rows that
    can fail the comparison (:data:`FAILING`)."""
    keys = [*CELL, "seed"]

    def values(frame: pd.DataFrame) -> pd.DataFrame:
        per_seed = frame[frame["seed"].notna()][[*keys, "value", "status"]].astype({"seed": object})
        return pd.concat([per_seed, seed_means(frame)], ignore_index=True)

    table = values(run).merge(values(reference), on=keys, how="outer", suffixes=("", "_reference"))
    table = table.merge(intervals(reference, stats), on=CELL, how="left")
    table["verdict"] = [
        verdict(r.value, r.status, r.value_reference, r.status_reference, r.low, r.high)
        for r in table.itertuples(index=False)
    ]
    table["headline"] = [
        seed == MEAN and corruption == "none" and metric in get_task(task).headline_metrics
        for task, metric, corruption, seed in zip(
            table["task"], table["metric"], table["corruption"], table["seed"], strict=True
        )
    ]
    order = table["seed"].map(lambda s: (1, 0) if s == MEAN else (0, int(s)))
    return (
        table.assign(_order=order)
        .sort_values([*CELL, "_order"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)[
            [*keys, "value", "status", "value_reference", "status_reference", "low", "high", "verdict", "headline"]
        ]
    )


def method_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, task and method: how many values (seeds and seed-means) got each verdict, and how
    many headline values fail."""
    counts = pd.crosstab([table["dataset"], table["task"], table["method"]], table["verdict"])
    counts = counts.reindex(columns=[v for v in VERDICTS if v in counts.columns], fill_value=0)
    failing = table[table["headline"] & table["verdict"].isin(FAILING)]
    counts["headline failing"] = (
        failing.groupby(["dataset", "task", "method"]).size().reindex(counts.index, fill_value=0).astype(int)
    )
    return counts.reset_index()


def failing_headlines(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["headline"] & table["verdict"].isin(FAILING)]


def report(table: pd.DataFrame, run_footer: str, reference_footer: str) -> str:
    """What ``fusebench compare`` prints: both provenance lines, the verdict counts, the per-method summary
    and every failing headline value with the reference's interval."""
    counts = table["verdict"].value_counts()
    lines = [
        f"run:       {run_footer or '(no provenance line)'}",
        f"reference: {reference_footer or '(no provenance line)'}",
        "",
        f"{len(table)} values (seeds and seed-means): "
        + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS if counts.get(v, 0)),
        "",
        method_summary(table).to_markdown(index=False),
        "",
    ]
    failing = failing_headlines(table)
    if failing.empty:
        lines.append("every headline seed-mean is identical to the reference or inside its seed-inclusive interval")
    else:
        lines.append(f"{len(failing)} headline seed-mean(s) outside the reference's seed-inclusive interval:")
        for r in failing.itertuples(index=False):
            where = f"{r.dataset} {r.task} {r.method} {r.metric}"
            if r.verdict == "outside":
                lines.append(f"  {where}: {r.value:.6f}, reference {r.value_reference:.6f} [{r.low:.6f}, {r.high:.6f}]")
            else:
                lines.append(f"  {where}: {r.verdict} (run: {r.status}, reference: {r.status_reference})")
    return "\n".join(lines) + "\n"


def compare_runs(run: Path, reference: Path, out: Path | None = None) -> tuple[pd.DataFrame, str]:
    """Compare the tables of ``run`` with those of ``reference`` (folders as :func:`tables_folder` takes);
    write the full comparison to ``out`` (CSV) if given. Returns the table and the printed report."""
    run_folder, reference_folder = tables_folder(run), tables_folder(reference)
    stats_file = reference_folder / "main_stats.csv"
    stats = pd.read_csv(stats_file, comment="#") if stats_file.is_file() else None
    table = compare_frames(read_main(run_folder), read_main(reference_folder), stats)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False, float_format="%.6f")
    return table, report(table, footer(run_folder), footer(reference_folder))
