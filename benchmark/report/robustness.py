"""Robustness tables: per-seed summary scores by family, then mean ± std over seeds.

Input: the tidy rows of the robustness jobs (corruption ≠ "none", plus the clean subset at
severity 0). For each (dataset, task, method, seed) and the task's summary metric, every
corruption gives a curve severity → metric; a family's scores (image, text, missing — never
averaged together) come from :func:`benchmark.metrics.robustness.summarize_family`, against
the same seed of the reference method (its seed mean when that seed is absent).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from benchmark.metrics.robustness import relative_drop, summarize_family
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


def summary_scores(
    frame: pd.DataFrame, reference_method: str, summary_metric: dict[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long table of family scores per seed, long table of relative drop per corruption per seed)."""
    scores, drops = [], []
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
        "Image noise, text noise and missing modality are reported separately, never averaged together.",
        "",
    ]
    if scores.empty:
        return "\n".join([*parts, "No robustness results."]) + "\n"
    for (dataset, task), block in scores.groupby(["dataset", "task"], sort=True):
        metric = block["metric"].iloc[0]
        parts += [f"## {dataset} — {task} ({metric})", ""]
        for fam in [f for f in FAMILIES if f in set(block["family"])]:
            table = []
            for method, rows in block[block["family"] == fam].groupby("method", sort=True):
                table.append(
                    [method, *[_cell(rows[rows["score"] == score]["value"].astype(float)) for score in SCORES]]
                )
            parts += [f"**{fam}**", "", pd.DataFrame(table, columns=["method", *SCORES]).to_markdown(index=False), ""]
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
        rows = []
        for method, data in block.groupby("method", sort=True):
            rows.append([method, *[_cell(data[data["score"] == score]["value"].astype(float)) for score in SCORES]])
        frame = pd.DataFrame(rows, columns=["method", *[s.replace("_", " ") for s in SCORES]])
        metric = block["metric"].iloc[0]
        caption = (
            f"Robustness of {task} ({metric}) to {fam} corruptions on the first {subset} test "
            f"images of {dataset}: mean $\\pm$ sample std over seeds; CE, relative CE and effective robustness "
            f"relative to {reference_method}."
        )
        tables.append(latex_table(frame, caption, f"tab:robustness-{dataset}-{task}-{fam}", provenance))
    return "\n".join(tables)
