"""Robustness tables: the summary scores as Markdown and LaTeX, with their intervals, coverage and notes."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from benchmark.metrics.bootstrap import (
    LEVEL,
)
from benchmark.metrics.robustness import CHANCE_MARGIN, NEGLIGIBLE
from benchmark.report.robustness.scores import COVERED, FAMILIES, score_columns
from benchmark.report.tables import latex_table
from benchmark.tasks import get_task, task_names


def _number(value: float) -> str:
    return f"{value + 0.0:.3f}".replace("-0.000", "0.000")


def _cell(rows: pd.DataFrame) -> str:
    """'mean ± std' over the seeds' values (one seed: its value), then '[low, high]' when bootstrapped."""
    values = rows["value"].astype(float).dropna()
    if values.empty:
        return "n/a"
    text = _number(values.iloc[0]) if len(values) == 1 else f"{_number(values.mean())} ± {_number(values.std(ddof=1))}"
    low, high = _interval(rows)
    return text if math.isnan(low) else f"{text} [{_number(low)}, {_number(high)}]"


def _interval(rows: pd.DataFrame) -> tuple[float, float]:
    """The bootstrap interval of one (method, family, score) (the same on each seed's row), or NaNs."""
    if "ci_low" not in rows:
        return math.nan, math.nan
    bounds = rows[["ci_low", "ci_high"]].astype(float).dropna()
    return (math.nan, math.nan) if bounds.empty else (float(bounds.iloc[0, 0]), float(bounds.iloc[0, 1]))


def _interval_note(block: pd.DataFrame) -> str:
    """What the '[low, high]' of one (dataset, task)'s tables is, when it has any ('' otherwise)."""
    if "ci_low" not in block or block["ci_low"].astype(float).isna().all():
        return ""
    resamples = int(block["ci_resamples"].dropna().iloc[0])
    unit = get_task(str(block["task"].iloc[0])).bootstrap_unit
    return (
        f"[low, high]: the {LEVEL:.0%} interval of the seed-mean from a two-level bootstrap, {resamples:,} "
        "replicates: the seeds resampled, "
        f"then the test units ({unit}), one draw for every (corruption, severity) cell, method and seed; each "
        "replicate re-scores every cell and recomputes the reference's mean curve from its drawn seeds."
    )


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
            row.append(_cell(selected))
            if score in COVERED:
                row.append(_coverage_cell(selected))
        table.append(row)
    return pd.DataFrame(table, columns=header)


def _unscored_note(block: pd.DataFrame) -> str:
    """'Not scored (n/a): method — why; …' for the rows of one (dataset, task, family) given no robustness score."""
    if "unscored" not in block:
        return ""
    reasons = block[block["unscored"].fillna("").astype(str) != ""].drop_duplicates(["method", "unscored"])
    if reasons.empty:
        return ""
    listed = "; ".join(f"{m} — {r}" for m, r in zip(reasons["method"], reasons["unscored"]))
    return f"Not scored (n/a; clean and mean_corrupted are kept): {listed}."


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
        "mean_corrupted is the metric's mean over the family's corruptions and their corrupted severities. "
        f"CE, relative CE and effective robustness are relative to the mean over seeds of `{reference_method}`'s "
        "curves. Every row of a family averages over the same corruptions, those every method ran (named above "
        "each table). A corruption's relative CE is undefined when the reference's mean relative drop under it "
        f"is at most {NEGLIGIBLE:g} (it improves, stays level or barely degrades), its CE when the reference's "
        f"mean error is at most {NEGLIGIBLE:g}; relative mCE and mCE average the defined corruptions, and "
        "'over' says how many; which corruptions those are is decided once on the measured reference curves and "
        "kept in every replicate of the interval. No reference-relative score is defined when the reference's "
        f"clean score is not well above chance, (M₀ − chance) / (1 − chance) < {CHANCE_MARGIN:g}; a row with "
        "such a clean score, or one whose method does not read a modality the family's corruptions change, is "
        "not scored (n/a). "
        "effective_robustness is Taori et al. 2020's, in the metric's units: mean_corrupted minus what the line "
        "fitted through every scored row's (clean, mean_corrupted) on logit axes predicts from the row's clean score. "
        "*_normalised: (M − chance) / (1 − chance), where the task knows its chance level. "
        "effective_robustness_multibench is MultiBench's (Liang et al. 2021): "
        "Σ over severity 0 and every corrupted severity s of M_s − (M^ref_s + M₀ − M^ref₀), the reference's "
        "curve shifted additively to the method's clean value; averaged over corruptions, not min–max normalised. "
    )


def _mmi_note(task: str, otherwise: str) -> str:
    """How ``task``'s MMI columns are formed (its ``mmi_note``), else ``otherwise`` (one column, the summary metric)."""
    return get_task(task).mmi_note or otherwise


def _mmi_notes(scores: pd.DataFrame) -> str:
    """': for <task> <how its MMI is formed>; …' over the tasks of ``scores``, in task order ('' without any)."""
    present = set(scores["task"]) if not scores.empty else set()
    notes = [
        f"for {task} {_mmi_note(task, 'on the summary metric, where it equals relative_drop')}"
        for task in task_names()
        if task in present
    ]
    return ": " + "; ".join(notes) if notes else ""


def _images(subset: Any) -> str:
    """What the grid measured on: the whole test split (``robustness.max_images: null``) or its first N images."""
    return "all test images" if subset is None else f"the first {subset} test images"


def robustness_markdown(scores: pd.DataFrame, drops: pd.DataFrame, reference_method: str, subset: Any) -> str:
    """Family summaries per task (methods × family/score), then relative drop per corruption."""
    parts = [
        "# FuseBench robustness",
        "",
        f"Scores on {_images(subset)}, mean ± sample std over seeds. "
        + _caption(reference_method)
        + "Formulas: docs/protocols.md, *Robustness*. "
        "Image noise, text noise and missing modality are reported separately, never averaged together. "
        "MMI (MultiModal Impact, Qiu et al. 2022) is the mean over the family's corruptions and severities "
        "of (clean − corrupted) / clean" + _mmi_notes(scores) + ".",
        "",
    ]
    if scores.empty:
        return "\n".join([*parts, "No robustness results."]) + "\n"
    for (dataset, task), block in scores.groupby(["dataset", "task"], sort=True):
        metric = block["metric"].iloc[0]
        columns = score_columns(block)
        parts += [f"## {dataset} — {task} ({metric})", ""]
        if note := _interval_note(block):
            parts += [note, ""]
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
            if note := _unscored_note(rows):
                parts += [note, ""]
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

    tables = []
    for (dataset, task, fam), block in scores.groupby(["dataset", "task", "family"], sort=True):
        frame = _family_table(block, score_columns(block))
        frame.columns = [
            {
                "effective_robustness_multibench": "effective robustness (MultiBench)",
                "effective_robustness": "effective robustness (Taori)",
            }.get(c, c.replace("_", " "))
            for c in frame.columns
        ]
        metric = block["metric"].iloc[0]
        caption = (
            f"Robustness of {task} ({metric}) to {fam} corruptions on {_images(subset)} "
            f"of {dataset}, {_family_set(block)}: mean $\\pm$ sample std over seeds; mean corrupted is "
            f"{metric}'s mean over the corruptions and their corrupted severities; CE, relative CE "
            f"and effective robustness (MultiBench's, Liang et al. 2021: the reference curve shifted additively "
            f"to the method's clean value, summed over severities) relative to the mean over seeds of "
            f"{reference_method}; a corruption's CE (relative CE) is undefined when the reference's mean error "
            f"(mean relative drop) under it is at most {NEGLIGIBLE:g}, and 'over' counts the corruptions averaged; "
            f"MMI (Qiu et al. 2022) is the mean relative drop, {_mmi_note(task, f'on {metric}')}; effective "
            "robustness (Taori) is Taori et al. 2020's, in the metric's units: mean corrupted minus the prediction of "
            "the line fitted on logit axes through every scored row's (clean, mean corrupted); rows whose clean "
            f"score is not well above chance ((M₀ − chance)/(1 − chance) < {CHANCE_MARGIN:g}) or whose method does "
            "not read the corrupted modality are not scored (n/a), and a reference below that rule defines no "
            "reference-relative score."
        )
        if note := _interval_note(block):
            caption += " " + note
        if note := _unscored_note(block):
            caption += " " + note
        tables.append(latex_table(frame, caption, f"tab:robustness-{dataset}-{task}-{fam}", provenance))
    return "\n".join(tables)
