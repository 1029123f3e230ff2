"""Robustness tables: per-seed summary scores by family, then mean ± std over seeds.

Input: the tidy rows of the robustness jobs (corruption ≠ "none", plus the clean subset at
severity 0). For each (dataset, task, method, seed) and the task's summary metric, every
corruption gives a curve severity → metric; a family's scores (image, text, missing — never
averaged together) come from :func:`benchmark.metrics.robustness.summarize_family`.

**One set of corruptions per family.** Every method's row of a family averages over the same
corruptions: those that *every* method measured on that (dataset, task) ran at every severity
(:func:`common_corruptions`). A corruption some method cannot run (not applicable, e.g.
image_only without its image) is left out of every row and named in the table, instead of each
row averaging over its own set: a mean over a different set is a different quantity, and a
method that ignores the corrupted modality would otherwise be compared on corruptions the others
were not scored on. (The alternative, each row over its own set with a label, leaves rows that
cannot be compared; the per-corruption table keeps every measured cell.) A family no corruption
of which every method ran has no summary, only the per-corruption drops.

**The reference is the mean curve.** CE, relative CE and effective robustness of every seed of
every method are taken against the reference method's curve averaged over its seeds, per
(corruption, severity) — not seed k against seed k, which would add the reference's seed noise
to every ratio. Since CE's and relative CE's numerators and ER are linear in the method's
values, the reference's own row is then exactly 1 (CE, relative CE) or 0 (ER) on average over
its seeds, with a std that shows its seed spread.

MMI (:func:`benchmark.metrics.robustness.multimodal_impact`, Qiu et al. 2022) comes from the
same rows, per family and over the same corruptions: for retrieval, one column per direction
(``MMI_t2i``, ``MMI_i2t``), each on the mean of that direction's R@K in every (corruption,
severity) cell, as Qiu et al. report it per retrieval direction; for any other task (grounding)
one ``MMI`` column on the task's summary metric, where it equals ``relative_drop`` by definition.

The long score table has, per (dataset, task, method, seed, family, score): ``value``,
``defined`` (corruptions the score is defined on), ``corruptions`` (the family's common set),
``of`` (the family's corruptions in the grid) and ``left_out`` (those not in the common set).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from benchmark.metrics.retrieval import DIRECTIONS
from benchmark.metrics.robustness import NEGLIGIBLE, multimodal_impact, relative_drop, summarize_family
from benchmark.tasks.robustness import family

SCORES = ("relative_drop", "mCE", "relative_mCE", "relative_robustness", "effective_robustness_multibench")
COVERED = {"mCE": "mCE over", "relative_mCE": "relative_mCE over"}  # score → its coverage column
FAMILIES = ("image", "text", "missing")
Key = tuple[Any, ...]  # (dataset, task, method, seed)


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


def _family_mmi(cells: pd.Series, common: dict[str, list[str]]) -> dict[str, tuple[float | None, int]]:
    """family → (MMI, corruptions used) over the family's common corruptions that ran at every severity."""
    clean = cells.get(("none", 0), np.nan)
    if pd.isna(clean):
        return {}
    corrupted = cells.drop("none", level="corruption", errors="ignore")
    usable = corrupted.groupby(level="corruption").filter(lambda v: bool(v.notna().all()))
    values: dict[str, list[float]] = {}
    names: dict[str, set[str]] = {}
    for (corruption, _), value in usable.items():
        fam = family(str(corruption))
        if str(corruption) in common.get(fam, []):
            values.setdefault(fam, []).append(float(value))
            names.setdefault(fam, set()).add(str(corruption))
    return {fam: (multimodal_impact(float(clean), v), len(names[fam])) for fam, v in values.items()}


def _mmi_rows(
    frame: pd.DataFrame, summary_metric: dict[str, str], sets: dict[tuple[Any, Any], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Long rows (as :func:`summary_scores`) of MMI per (dataset, task, method, seed, family)."""
    rows = []
    for (dataset, task, method, seed), block in frame.groupby(["dataset", "task", "method", "seed"]):
        if task not in summary_metric or (dataset, task) not in sets:
            continue
        common, grid = sets[(dataset, task)]["common"], sets[(dataset, task)]["grid"]
        for column, metrics in mmi_components(block["metric"], summary_metric[task]).items():
            for fam, (value, used) in _family_mmi(_cell_scores(block, metrics), common).items():
                key = {"dataset": dataset, "task": task, "method": method, "seed": seed, "family": fam}
                rows.append(
                    {
                        **key,
                        "metric": summary_metric[task],
                        "score": column,
                        "value": value,
                        **_coverage(used if value is not None else 0, common[fam], grid[fam]),
                    }
                )
    return rows


def _coverage(defined: int, common: list[str], grid: list[str]) -> dict[str, Any]:
    left_out = [c for c in grid if c not in common]
    return {"defined": defined, "corruptions": len(common), "of": len(grid), "left_out": ", ".join(left_out)}


def common_corruptions(curves_by_key: dict[Key, dict[str, dict[int, float]]]) -> dict[str, list[str]]:
    """family → the corruptions every measured (method, seed) of one (dataset, task) ran at every severity.

    A (method, seed) without any curve (no clean value: failed, or the task not applicable to the
    method) is not measured and does not restrict the set.
    """
    measured = [set(curves) for curves in curves_by_key.values() if curves]
    if not measured:
        return {}
    names = sorted(set.intersection(*measured))
    return {fam: [n for n in names if family(n) == fam] for fam in FAMILIES if any(family(n) == fam for n in names)}


def score_columns(scores: pd.DataFrame) -> list[str]:
    """The summary scores, then the MMI columns present (per direction for retrieval)."""
    return [*SCORES, *[s for s in dict.fromkeys(scores["score"]) if s not in SCORES]]


def summary_scores(
    frame: pd.DataFrame, reference_method: str, summary_metric: dict[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long table of family scores per seed, long table of relative drop per corruption per seed).

    Every family summary is over the family's common corruptions (:func:`common_corruptions`) and
    against the reference method's mean curve over its seeds (module docstring).
    """
    summary = frame[frame.apply(lambda r: r["metric"] == summary_metric.get(r["task"]), axis=1)]
    curves_by_key = {key: _curves(block) for key, block in summary.groupby(["dataset", "task", "method", "seed"])}
    sets: dict[tuple[Any, Any], dict[str, Any]] = {}
    for (dataset, task), block in summary.groupby(["dataset", "task"]):
        keys = {k: c for k, c in curves_by_key.items() if k[:2] == (dataset, task)}
        names = sorted({str(c) for c in block["corruption"] if c != "none"})
        sets[(dataset, task)] = {
            "common": common_corruptions(keys),
            "grid": {fam: [n for n in names if family(n) == fam] for fam in FAMILIES},
            "reference": _mean_curves([c for k, c in keys.items() if k[2] == reference_method and c]),
        }
    scores, drops = _mmi_rows(frame, summary_metric, sets), []
    for (dataset, task, method, seed), curves in curves_by_key.items():
        common, grid, reference = (sets[(dataset, task)][k] for k in ("common", "grid", "reference"))
        for fam, names in common.items() if curves else ():  # no curve: failed, or not applicable
            members = {name: curves[name] for name in names}
            ref_members = {n: reference[n] for n in names if n in reference}
            family_scores = summarize_family(members, ref_members if len(ref_members) == len(names) else None)
            for score, result in family_scores.items():
                scores.append(
                    {
                        "dataset": dataset,
                        "task": task,
                        "method": method,
                        "seed": seed,
                        "family": fam,
                        "metric": summary_metric[task],
                        "score": score,
                        "value": result.value,
                        **_coverage(result.defined, names, grid[fam]),
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
    """corruption → severity → mean over the given seeds' curves (the corruptions all of them ran)."""
    if not curves:
        return {}
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


def _coverage_cell(rows: pd.DataFrame) -> str:
    """'defined/corruptions' over the seeds of one row, e.g. '12/20' (a range if seeds differ)."""
    if rows.empty:
        return "n/a"
    low, high, of = int(rows["defined"].min()), int(rows["defined"].max()), int(rows["corruptions"].max())
    return f"{low}/{of}" if low == high else f"{low}–{high}/{of}"


def _family_table(block: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """methods × scores of one (dataset, task, family); mCE and relative mCE each followed by its coverage."""
    header = ["method"]
    for score in columns:
        header += [score, *([COVERED[score]] if score in COVERED else [])]
    table = []
    for method, rows in block.groupby("method", sort=True):
        row = [method]
        for score in columns:
            selected = rows[rows["score"] == score]
            row.append(_cell(selected["value"].astype(float)))
            if score in COVERED:
                row.append(_coverage_cell(selected))
        table.append(row)
    return pd.DataFrame(table, columns=header)


def _family_set(block: pd.DataFrame) -> str:
    """Which corruptions a family's rows average over, e.g. 'over all 20 corruptions'."""
    first = block.iloc[0]
    n, of, left_out = int(first["corruptions"]), int(first["of"]), first["left_out"]
    plural = "s" if of > 1 else ""
    if n == of:
        return f"over all {of} corruption{plural} of the family (every method ran each)"
    return f"over the {n} of {of} corruption{plural} every method ran (left out, not run by every method: {left_out})"


def _caption(reference_method: str) -> str:
    return (
        f"CE, relative CE and effective robustness are relative to the mean over seeds of `{reference_method}`'s "
        "curves. Every row of a family averages over the same corruptions, those every method ran (named above "
        "each table). A corruption's relative CE is undefined when the reference's mean relative drop under it "
        f"is at most {NEGLIGIBLE:g} (it improves, stays level or barely degrades), its CE when the reference's "
        f"mean error is at most {NEGLIGIBLE:g}; relative mCE and mCE average the defined corruptions, and "
        "'over' says how many. effective_robustness_multibench is MultiBench's (Liang et al. 2021): "
        "Σ over severity 0 and every corrupted severity s of M_s − (M^ref_s + M₀ − M^ref₀), the reference's "
        "curve shifted additively to the method's clean value; averaged over corruptions, not min–max normalised. "
    )


def robustness_markdown(scores: pd.DataFrame, drops: pd.DataFrame, reference_method: str, subset: Any) -> str:
    """Family summaries per task (methods × family/score), then relative drop per corruption."""
    parts = [
        "# FuseBench robustness",
        "",
        f"Scores on the first {subset} test images, mean ± sample std over seeds. "
        + _caption(reference_method)
        + "Formulas: README, *Robustness*. "
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
        d = drops[(drops["dataset"] == dataset) & (drops["task"] == task)] if not drops.empty else drops
        measured = set(d["family"]) if not d.empty else set()
        for fam in FAMILIES:
            rows = block[block["family"] == fam]
            if rows.empty:
                if fam in measured:
                    parts += [
                        f"**{fam}**: no summary — no corruption of this family was run by every method "
                        "(per-corruption drops below).",
                        "",
                    ]
                continue
            table = _family_table(rows, columns)
            parts += [f"**{fam}**, {_family_set(rows)}:", "", table.to_markdown(index=False), ""]
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
        frame = _family_table(block, score_columns(block))
        frame.columns = [
            "effective robustness (MultiBench)" if c == "effective_robustness_multibench" else c.replace("_", " ")
            for c in frame.columns
        ]
        metric = block["metric"].iloc[0]
        caption = (
            f"Robustness of {task} ({metric}) to {fam} corruptions on the first {subset} test "
            f"images of {dataset}, {_family_set(block)}: mean $\\pm$ sample std over seeds; CE, relative CE "
            f"and effective robustness (MultiBench's, Liang et al. 2021: the reference curve shifted additively "
            f"to the method's clean value, summed over severities) relative to the mean over seeds of "
            f"{reference_method}; a corruption's CE (relative CE) is undefined when the reference's mean error "
            f"(mean relative drop) under it is at most {NEGLIGIBLE:g}, and 'over' counts the corruptions averaged; "
            f"MMI (Qiu et al. 2022) is the mean relative drop, per retrieval direction on the mean of its R@K, "
            f"else on {metric}."
        )
        tables.append(latex_table(frame, caption, f"tab:robustness-{dataset}-{task}-{fam}", provenance))
    return "\n".join(tables)
