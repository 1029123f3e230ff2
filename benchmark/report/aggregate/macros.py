"""One LaTeX macro per reported number (``macros.tex``)."""

from __future__ import annotations

import pandas as pd

from benchmark.report.aggregate.efficiency import efficiency_columns
from benchmark.report.tables import (
    macro_name,
    number,
)
from benchmark.tasks import get_task


def macro_definitions(
    stats: pd.DataFrame, robustness: pd.DataFrame | None, efficiency: pd.DataFrame
) -> list[tuple[str, str]]:
    """(name, displayed value) for every number in the tables."""
    definitions: list[tuple[str, str]] = []
    for _, row in stats.sort_values(["dataset", "task", "method", "metric"]).iterrows():
        if pd.isna(row["mean"]):
            continue  # undefined or not applicable: nothing a paper could cite
        scale = 100.0 if get_task(row["task"]).percent else 1.0
        base = (row["method"], get_task(row["task"]).abbreviation, row["metric"])
        prefix = (row["dataset"],) if stats["dataset"].nunique() > 1 else ()
        definitions.append((macro_name(*prefix, *base, "mean"), number(row["mean"], scale)))
        if not row["reference"]:
            definitions.append((macro_name(*prefix, *base, "std"), number(row["std"], scale)))
            definitions.append((macro_name(*prefix, *base, "ci low"), number(row["ci_low"], scale)))
            definitions.append((macro_name(*prefix, *base, "ci high"), number(row["ci_high"], scale)))
            definitions.append((macro_name(*prefix, *base, "seeds"), str(int(row["n"]))))
    if robustness is not None and not robustness.empty:
        summary = (
            robustness.groupby(["dataset", "task", "method", "family", "score"])["value"]
            .agg(["mean", "std"])
            .reset_index()
        )
        for _, row in summary.iterrows():
            prefix = (row["dataset"],) if summary["dataset"].nunique() > 1 else ()
            base = (
                *prefix,
                row["method"],
                get_task(row["task"]).abbreviation,
                "robust",
                row["family"],
                row["score"],
            )
            definitions.append((macro_name(*base, "mean"), number(row["mean"], 1.0, 3)))
            definitions.append((macro_name(*base, "std"), number(row["std"], 1.0, 3)))
    columns = efficiency_columns()
    for _, row in efficiency.iterrows():
        for key, (_, scale, digits) in columns.items():
            if key in efficiency and not pd.isna(row.get(key)):
                definitions.append((macro_name(row["method"], "eff", key), number(row[key], scale, digits)))
    return definitions
