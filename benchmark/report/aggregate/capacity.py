"""Matched capacity: each row's trainable parameters, and whether the fusion rows are within ±10 % of each other.

A difference between two fusion rows is attributable to fusion only if the rows have about the same capacity
(issue 23, item 3; docs/protocols.md, "Matched capacity"). The count is the one the training job recorded
(``efficiency.trainable_parameters``: the parameters the optimiser updates; ``parameters`` for a result written
before that key existed) in the fine-tuning result of the (dataset, task) the table shows. The unimodal
references (family ``unimodal reference``: image_only, text_only) read one modality and are left out of the band.
"""

from __future__ import annotations

from typing import Any

CAPACITY_BAND = 0.10
"""The fusion rows' trainable parameters are matched when the largest is at most (1 + band) × the smallest."""
UNMATCHED_FAMILIES = ("unimodal reference",)
"""Families left out of the band: they read one modality, so no fusion comparison is made with them."""


def row_parameters(training: list[dict[str, Any]], dataset: str, task: str) -> dict[str, tuple[int, str]]:
    """Per row of (``dataset``, ``task``): (trainable parameters, family), from its fine-tuning results (the
    largest over seeds; they agree unless a seed could not build the model)."""
    rows: dict[str, tuple[int, str]] = {}
    for record in training:
        spec = record.get("spec", {})
        if spec.get("stage") != "finetune" or (spec.get("dataset"), spec.get("task")) != (dataset, task):
            continue
        efficiency = record.get("efficiency") or {}
        count = efficiency.get("trainable_parameters", efficiency.get("parameters", record.get("parameters")))
        if not isinstance(count, int) or record.get("status") == "not applicable":
            continue
        family = str((record.get("method") or {}).get("family", ""))
        previous = rows.get(spec["method"], (0, family))[0]
        rows[spec["method"]] = (max(previous, count), family)
    return rows


def capacity_note(rows: dict[str, tuple[int, str]]) -> str:
    """The caption sentence on capacity: the fusion rows' range, and whether it is within the band."""
    fusion = {method: count for method, (count, family) in rows.items() if family not in UNMATCHED_FAMILIES}
    if len(fusion) < 2:
        return ""
    low, high = min(fusion, key=fusion.__getitem__), max(fusion, key=fusion.__getitem__)
    span = f"{fusion[low] / 1e6:.2f} M ({low}) to {fusion[high] / 1e6:.2f} M ({high})"
    band = f"±{CAPACITY_BAND * 100:g} %"
    if within_band(fusion):
        return f"Trainable parameters of the fusion rows within {band} of each other ({span})."
    return (
        f"Capacity not matched: trainable parameters of the fusion rows range from {span}, more than "
        f"{band} apart, so their differences are not attributable to fusion alone."
    )


def within_band(counts: dict[str, int]) -> bool:
    """Whether the largest of ``counts`` is at most (1 + :data:`CAPACITY_BAND`) × the smallest."""
    return max(counts.values()) <= (1 + CAPACITY_BAND) * min(counts.values())
