"""Robustness tables: per-seed summary scores by family, then mean ± std over seeds.

Input: the tidy rows of the robustness jobs (corruption ≠ "none", plus the clean subset at
severity 0). For each (dataset, task, method, seed) and the task's summary metric, every
corruption gives a curve severity → metric; a family's scores (image, text, missing — never
averaged together) come from :func:`benchmark.metrics.robustness.summarize_family`, against
the same seed of the reference method (its seed mean when that seed is absent).

MMI (:func:`benchmark.metrics.robustness.multimodal_impact`, Qiu et al. 2022) comes from the
same rows, per family: for retrieval, one column per direction (``MMI_t2i``, ``MMI_i2t``),
each on the mean of that direction's R@K in every (corruption, severity) cell, as Qiu et al.
report it per retrieval direction; for any other task (grounding) one ``MMI`` column on the
task's summary metric, where it equals ``relative_drop`` by definition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from benchmark.metrics.retrieval import DIRECTIONS
from benchmark.metrics.robustness import multimodal_impact, relative_drop, summarize_family
from benchmark.tasks.robustness import family

SCORES = ("relative_drop", "mCE", "relative_mCE", "relative_robustness", "effective_robustness")
FAMILIES = ("image", "text", "missing")


def _curves(rows: pd.DataFrame) -> dict[str, dict[int, float]]:
    """corruption → {severity: value}, each with the clean value at severity 0; n/a corruptions dropped."""
    clean = rows[rows["corruption"] == "none"]["value"]
    if clean.empty or clean.isna().all():
        return {}
    curves: dict[str, dict[int, float]] = {}
    for corruption, block in rows[rows["corruption"] != "none"].groupby("corruption"):
        if block["value"].isna().any():
            continue  # not applicable (e.g. a method that cannot run without the text)
        curves[str(corruption)] = {
            0: float(clean.iloc[0]),
            **{int(s): float(v) for s, v in zip(block["severity"], block["value"])},
        }
    return curves


def mmi_components(metrics: Iterable[str], summary: str) -> dict[str, list[str]]:
    """MMI column → the metrics averaged into its score: per retrieval direction when the task
    reports ``t2i_R@K`` and ``i2t_R@K``, else the summary metric."""
    names = sorted(set(metrics))
    by_direction = {f"MMI_{d}": [m for m in names if m.startswith(f"{d}_R@")] for d in DIRECTIONS}
    if all(by_direction.values()):
        return by_direction
    return {"MMI": [summary]} if summary in names else {}


def _cell_scores(block: pd.DataFrame, metrics: list[str]) -> pd.Series:
    """(corruption, severity) → mean of ``metrics``; NaN where one is missing or NaN (not applicable)."""
    rows = block[block["metric"].isin(metrics)]
    values = rows.set_index(["corruption", "severity", "metric"])["value"].unstack("metric")
    return values.reindex(columns=metrics).mean(axis=1, skipna=False)


def _family_mmi(cells: pd.Series) -> dict[str, float | None]:
    """family → MMI over its corruptions that ran at every severity (as :func:`_curves` keeps them)."""
    clean = cells.get(("none", 0), np.nan)
    if pd.isna(clean):
        return {}
    corrupted = cells.drop("none", level="corruption", errors="ignore")
    usable = corrupted.groupby(level="corruption").filter(lambda v: bool(v.notna().all()))
    values: dict[str, list[float]] = {}
    for (corruption, _), value in usable.items():
        values.setdefault(family(str(corruption)), []).append(float(value))
    return {fam: multimodal_impact(float(clean), v) for fam, v in values.items()}


def _mmi_rows(frame: pd.DataFrame, summary_metric: dict[str, str]) -> list[dict[str, Any]]:
    """Long rows (as :func:`summary_scores`) of MMI per (dataset, task, method, seed, family)."""
    rows = []
    for (dataset, task, method, seed), block in frame.groupby(["dataset", "task", "method", "seed"]):
        if task not in summary_metric:
            continue
        for column, metrics in mmi_components(block["metric"], summary_metric[task]).items():
            for fam, value in _family_mmi(_cell_scores(block, metrics)).items():
                key = {"dataset": dataset, "task": task, "method": method, "seed": seed, "family": fam}
                rows.append({**key, "metric": summary_metric[task], "score": column, "value": value})
    return rows


def score_columns(scores: pd.DataFrame) -> list[str]:
    """The summary scores, then the MMI columns present (per direction for retrieval)."""
    return [*SCORES, *[s for s in dict.fromkeys(scores["score"]) if s not in SCORES]]


def summary_scores(
    frame: pd.DataFrame, reference_method: str, summary_metric: dict[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long table of family scores per seed, long table of relative drop per corruption per seed)."""
    scores, drops = _mmi_rows(frame, summary_metric), []
    frame = frame[frame.apply(lambda r: r["metric"] == summary_metric.get(r["task"]), axis=1)]
    curves_by_key = {key: _curves(block) for key, block in frame.groupby(["dataset", "task", "method", "seed"])}
    for (dataset, task, method, seed), curves in curves_by_key.items():
        reference = curves_by_key.get((dataset, task, reference_method, seed))
        if reference is None:
            same = [
                c for (d, t, m, _), c in curves_by_key.items() if (d, t, m) == (dataset, task, reference_method) and c
            ]
            reference = _mean_curves(same) if same else None
        for fam in FAMILIES:
            members = {name: c for name, c in curves.items() if family(name) == fam}
            if not members:
                continue
            ref_members = {n: c for n, c in (reference or {}).items() if n in members}
            summary = summarize_family(members, ref_members if len(ref_members) == len(members) else None)
            for score, value in summary.items():
                scores.append(
                    {
                        "dataset": dataset,
                        "task": task,
                        "method": method,
                        "seed": seed,
                        "family": fam,
                        "metric": summary_metric[task],
                        "score": score,
                        "value": value,
                    }
                )
        for name, curve in curves.items():
            drops.append(
                {
                    "dataset": dataset,
                    "task": task,
                    "method": method,
                    "seed": seed,
                    "family": family(name),
                    "corruption": name,
                    "relative_drop": relative_drop(curve[0], [v for s, v in curve.items() if s > 0]),
                }
            )
    return pd.DataFrame(scores), pd.DataFrame(drops)


def _mean_curves(curves: list[dict[str, dict[int, float]]]) -> dict[str, dict[int, float]]:
    names = set.intersection(*(set(c) for c in curves))
    return {n: {s: float(np.mean([c[n][s] for c in curves])) for s in curves[0][n]} for n in names}


def _number(value: float) -> str:
    return f"{value + 0.0:.3f}".replace("-0.000", "0.000")


def _cell(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "n/a"
    if len(values) == 1:
        return _number(values.iloc[0])
    return f"{_number(values.mean())} ± {_number(values.std(ddof=1))}"


def robustness_markdown(scores: pd.DataFrame, drops: pd.DataFrame, reference_method: str, subset: Any) -> str:
    """Family summaries per task (methods × family/score), then relative drop per corruption."""
    parts = [
        "# FuseBench robustness",
        "",
        f"Scores on the first {subset} test images, mean ± sample std over seeds; CE, relative CE and effective "
        f"robustness are relative to `{reference_method}`. Formulas: README, *Robustness*. "
        "Image noise, text noise and missing modality are reported separately, never averaged together. "
        "MMI (MultiModal Impact, Qiu et al. 2022) is the mean over the family's corruptions and severities "
        "of (clean − corrupted) / clean: for retrieval per direction (MMI_t2i, MMI_i2t) on the mean of that "
        "direction's R@K; for grounding on the summary metric, where it equals relative_drop.",
        "",
    ]
    if scores.empty:
        return "\n".join([*parts, "No robustness results."]) + "\n"
    for (dataset, task), block in scores.groupby(["dataset", "task"], sort=True):
        metric = block["metric"].iloc[0]
        columns = score_columns(block)
        parts += [f"## {dataset} — {task} ({metric})", ""]
        for fam in [f for f in FAMILIES if f in set(block["family"])]:
            table = []
            for method, rows in block[block["family"] == fam].groupby("method", sort=True):
                table.append(
                    [method, *[_cell(rows[rows["score"] == score]["value"].astype(float)) for score in columns]]
                )
            parts += [f"**{fam}**", "", pd.DataFrame(table, columns=["method", *columns]).to_markdown(index=False), ""]
        d = drops[(drops["dataset"] == dataset) & (drops["task"] == task)]
        if not d.empty:
            pivot = d.groupby(["method", "corruption"])["relative_drop"].mean().unstack("corruption")
            parts += [
                "Relative drop per corruption (mean over seeds; higher = degrades more; n/a = cannot run):",
                "",
                pivot.map(lambda v: "n/a" if pd.isna(v) else _number(v)).to_markdown(),
                "",
            ]
    return "\n".join(parts) + "\n"


def robustness_latex(scores: pd.DataFrame, reference_method: str, subset: Any, provenance: dict[str, Any]) -> str:
    """One booktabs table per (dataset, task, family): methods × summary scores."""
    from benchmark.report.tables import latex_table

    tables = []
    for (dataset, task, fam), block in scores.groupby(["dataset", "task", "family"], sort=True):
        columns = score_columns(block)
        rows = []
        for method, data in block.groupby("method", sort=True):
            rows.append([method, *[_cell(data[data["score"] == score]["value"].astype(float)) for score in columns]])
        frame = pd.DataFrame(rows, columns=["method", *[s.replace("_", " ") for s in columns]])
        metric = block["metric"].iloc[0]
        caption = (
            f"Robustness of {task} ({metric}) to {fam} corruptions on the first {subset} test "
            f"images of {dataset}: mean $\\pm$ sample std over seeds; CE, relative CE and effective robustness "
            f"relative to {reference_method}; MMI (Qiu et al. 2022) is the mean relative drop, per retrieval "
            f"direction on the mean of its R@K, else on {metric}."
        )
        tables.append(latex_table(frame, caption, f"tab:robustness-{dataset}-{task}-{fam}", provenance))
    return "\n".join(tables)
