"""Which table rows rest on a job that stopped at its step cap while its val curve was still improving.

A training record says why its job stopped (``train.stop_reason``: ``converged`` by early stopping, or
``cap``) and, at the cap, whether the watched val curve was still improving (``train.still_improving``,
:mod:`benchmark.train.stopping`). A main-table row (dataset, task, method) is marked :data:`CAPPED_MARK`
when one of its fine-tuning jobs, or the pretraining job one started from, was: its number measures
where the cap cut the curve, not where the method converges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CAPPED_MARK = "‡"
CAPPED_NOTE = (
    "‡ stopped at its step cap while still improving on val ({runs}): the least-squares line through the last "
    "{rule} of the watched val metric rose by more than min_delta over them (docs/protocols.md, Convergence)."
)


@dataclass
class Capped:
    """(dataset, task) → the methods whose row is marked; and the note saying which jobs and by which rule."""

    rows: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    runs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    rules: dict[tuple[str, str], set[tuple[int, float]]] = field(default_factory=dict)

    def methods(self, dataset: str, task: str) -> set[str]:
        return self.rows.get((dataset, task), set())

    def note(self, dataset: str, task: str) -> str:
        """The footnote of (``dataset``, ``task``)'s table; '' when no row is marked."""
        if not self.methods(dataset, task):
            return ""
        rule = " or ".join(
            f"{points} points (min_delta {delta:g})" for points, delta in sorted(self.rules[(dataset, task)])
        )
        return CAPPED_NOTE.format(runs="; ".join(self.runs[(dataset, task)]), rule=rule)


def _flagged(record: dict[str, Any]) -> bool:
    train = record.get("train") or {}
    return train.get("stop_reason") == "cap" and bool(train.get("still_improving"))


def _rule(record: dict[str, Any]) -> tuple[int, float]:
    stopping = ((record.get("train") or {}).get("validation") or {}).get("stopping") or {}
    return int(stopping.get("trend_points", 0)), float(stopping.get("min_delta", 0.0))


def capped_rows(training: list[dict[str, Any]]) -> Capped:
    """The rows to mark, from the training records of the run (pretraining and fine-tuning)."""
    pretraining = {
        (spec["dataset"], spec["method"], spec["seed"]): record
        for record in training
        if (spec := record.get("spec", {})).get("stage") == "pretrain" and _flagged(record)
    }
    capped = Capped()
    for record in training:
        spec = record.get("spec", {})
        if spec.get("stage") != "finetune":
            continue
        key = (spec["dataset"], spec["task"])
        origin = pretraining.get((spec.get("pretrained_on", spec["dataset"]), spec["method"], spec["seed"]))
        for stage, flagged in (("pretraining", origin), ("fine-tuning", record if _flagged(record) else None)):
            if flagged is not None:
                capped.rows.setdefault(key, set()).add(spec["method"])
                run = f"{spec['method']} seed {spec['seed']} {stage}"
                if run not in capped.runs.setdefault(key, []):
                    capped.runs[key].append(run)
                capped.rules.setdefault(key, set()).add(_rule(flagged))
    return capped
