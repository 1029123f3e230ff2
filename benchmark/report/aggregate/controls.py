"""The controls table (``tables/controls.md`` / ``.tex``): each configured pair of rows, what differs between
them, and their paired difference with its interval.

A control pair (``control_pairs`` in the configuration; docs/protocols.md, "Controls") names two rows that
should differ in one thing — usually fusion, e.g. early_concat against cross_attention trained on the same
objectives (a variant). The table states, from the training results, everything that does differ: fusion (the
method's family), the pretraining objectives, trainable parameters (beyond ±10 %,
:mod:`benchmark.report.aggregate.capacity`), the steps used and the learning rates. The differences are those of
``comparisons.csv`` (:func:`benchmark.report.statistics.method_statistics`: Δ = a − b, its 95 % two-level paired
bootstrap interval and two-sided bootstrap probability), with the per-seed differences (seed k of a minus seed k
of b) beside them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from benchmark.report.aggregate.capacity import within_band
from benchmark.report.tables import footer_text, latex_table, number
from benchmark.tasks import get_task

ATTRIBUTES = ("fusion", "objectives", "trainable parameters", "steps used", "learning rate")
"""What the table compares between a pair's rows, in its order."""


def _describe_row(training: list[dict[str, Any]], method: str) -> dict[str, str]:
    """A row's attributes, each as the text the table shows (seeds that agree are shown once)."""
    found: dict[str, set[str]] = {name: set() for name in ATTRIBUTES}
    counts: list[int] = []
    for record in training:
        spec = record.get("spec", {})
        if spec.get("method") != method or record.get("status") == "not applicable":
            continue
        stage = spec.get("stage")
        label = "pretrain" if stage == "pretrain" else f"{spec.get('task')}"
        train = record.get("train") or {}
        steps = train.get("steps_used", train.get("steps"))
        if steps is not None:
            found["steps used"].add(f"{label} {steps}")
        if (spec.get("optim") or {}).get("lr") is not None:
            found["learning rate"].add(f"{label} {spec['optim']['lr']:g}")
        if stage != "pretrain":
            continue
        found["fusion"].add(str((record.get("method") or {}).get("family", "?")))
        objectives = record.get("objectives")
        if isinstance(objectives, dict):
            found["objectives"].add(" + ".join(f"{k.upper()}" for k, v in sorted(objectives.items()) if v))
        efficiency = record.get("efficiency") or {}
        count = efficiency.get("trainable_parameters", efficiency.get("parameters"))
        if isinstance(count, int):
            counts.append(count)
    described = {name: "; ".join(sorted(values)) or "—" for name, values in found.items()}
    described["trainable parameters"] = f"{max(counts) / 1e6:.3f} M" if counts else "—"
    described["_parameters"] = str(max(counts)) if counts else ""
    return described


def _differs(name: str, a: dict[str, str], b: dict[str, str]) -> bool:
    if name == "trainable parameters":
        if not a["_parameters"] or not b["_parameters"]:
            return False
        return not within_band({"a": int(a["_parameters"]), "b": int(b["_parameters"])})
    return a[name] != b[name]


def _seed_deltas(frame: pd.DataFrame, dataset: str, task: str, metric: str, a: str, b: str, scale: float) -> str:
    """Seed k of ``a`` minus seed k of ``b`` on the clean test set, for the seeds both have."""
    clean = frame[
        (frame["corruption"] == "none")
        & (frame["dataset"] == dataset)
        & (frame["task"] == task)
        & (frame["metric"] == metric)
    ]
    values = {m: clean[clean["method"] == m].set_index("seed")["value"].dropna() for m in (a, b)}
    seeds = sorted(set(values[a].index) & set(values[b].index))
    return ", ".join(f"{values[a][s] * scale - values[b][s] * scale:+.1f}" for s in seeds) or "—"


def control_rows(
    pairs: list[dict[str, str]], frame: pd.DataFrame, comparisons: pd.DataFrame, training: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per pair: its rows' attributes, what differs beyond what it should, and its differences per
    (dataset, task, headline metric) from ``comparisons`` (empty when a row has no results)."""
    out = []
    for pair in pairs:
        a, b = pair["a"], pair["b"]
        rows = {a: _describe_row(training, a), b: _describe_row(training, b)}
        differs = [name for name in ATTRIBUTES if _differs(name, rows[a], rows[b])]
        differences = []
        if not comparisons.empty:
            block = comparisons[(comparisons["a"] == a) & (comparisons["b"] == b)]
            for _, row in block.sort_values(["dataset", "task", "metric"]).iterrows():
                scale = 100.0 if get_task(row["task"]).percent else 1.0
                differences.append(
                    {
                        "dataset": row["dataset"],
                        "task": row["task"],
                        "metric": row["metric"],
                        "Δ = a − b": number(row["delta"], scale),
                        "95 % interval": f"[{number(row['low'], scale)}, {number(row['high'], scale)}]",
                        "per seed": _seed_deltas(frame, row["dataset"], row["task"], row["metric"], a, b, scale),
                        "bootstrap prob.": f"{row['boot_prob_two_sided']:.3f}"
                        if not np.isnan(row["boot_prob_two_sided"])
                        else "n/a",
                    }
                )
        out.append({**pair, "rows": rows, "differs": differs, "differences": differences})
    return out


def _attribute_frame(control: dict[str, Any]) -> pd.DataFrame:
    a, b = control["a"], control["b"]
    return pd.DataFrame(
        [
            {
                "": name,
                a: control["rows"][a][name],
                b: control["rows"][b][name],
                "differs": "yes" if name in control["differs"] else "",
            }
            for name in ATTRIBUTES
        ]
    )


def _verdict(control: dict[str, Any]) -> str:
    """Whether the pair differs only in what it should (fusion counts as its family)."""
    extra = [name for name in control["differs"] if name != control["differ"]]
    if not extra:
        return f"The rows differ only in {control['differ']} (of {', '.join(ATTRIBUTES)})."
    return f"The rows should differ only in {control['differ']}, but also differ in: {', '.join(extra)}."


def controls_markdown(controls: list[dict[str, Any]], provenance: dict[str, Any]) -> str:
    """controls.md: one section per pair; a note when no pair is configured."""
    parts = [
        "# FuseBench controls",
        "",
        "Each pair of rows should differ in one thing (configuration `control_pairs`; docs/protocols.md, "
        "'Controls'). Δ = a − b of the seed-means, with the 95 % two-level paired bootstrap interval and "
        "two-sided bootstrap probability of comparisons.csv (seeds, then test units, resampled; a bootstrap "
        "probability is not a p-value); per seed: seed k of a minus seed k of b. Percent metrics in points.",
        "",
    ]
    if not controls:
        parts += ["No control pairs are configured.", ""]
    for control in controls:
        a, b = control["a"], control["b"]
        parts += [f"## {a} vs {b} (should differ in: {control['differ']})", "", _verdict(control), ""]
        parts += [_attribute_frame(control).to_markdown(index=False), ""]
        if control["differences"]:
            parts += [pd.DataFrame(control["differences"]).to_markdown(index=False), ""]
        else:
            parts += ["No paired differences: a row of this pair has no test results in this run.", ""]
    parts += ["---", footer_text(provenance)]
    return "\n".join(parts) + "\n"


def controls_latex(controls: list[dict[str, Any]], provenance: dict[str, Any]) -> str:
    """controls.tex: per pair, what its rows are and its differences, as two tables."""
    if not controls:
        return f"% FuseBench controls — {footer_text(provenance)}\n% no control pairs are configured\n"
    tables = []
    for index, control in enumerate(controls):
        a, b = control["a"], control["b"]
        title = f"Control pair {a} vs {b} (should differ in {control['differ']})"
        tables.append(
            latex_table(_attribute_frame(control), f"{title}. {_verdict(control)}", f"tab:control-{index}", provenance)
        )
        if control["differences"]:
            caption = f"{title}: Δ = a − b with its 95 % two-level paired bootstrap interval and per seed."
            tables.append(
                latex_table(pd.DataFrame(control["differences"]), caption, f"tab:control-{index}-delta", provenance)
            )
    return "\n".join(tables)
