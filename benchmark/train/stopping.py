"""Early stopping on the validation curve, and whether a run that reached its step cap was still improving.

A training job watches one or more val metrics (:class:`StoppingRule`): fine-tuning its task's summary
metric; pretraining its val objective (lower is better) and, where measured, its val retrieval — both,
because a method can improve one while the other sits on a plateau (early concat's retrieval stays at chance
for hundreds of steps while its objective falls; late fusion's pretraining never moves retrieval). With
``patience`` set, the job stops — *converged* — once ``patience`` validation points in a row have beaten the
best value so far of *no* watched metric by more than ``min_delta`` (per metric, the Keras rule: its best
moves only on such a gain), counted from the first point that improved on an earlier one: a curve that has
not yet left its starting value has not converged, it has not started (a method at chance that takes off
late, as late fusion's fine-tuning does, is not cut before it does). Its step cap (``steps`` or the
budget's amount) is a safety net, and a job that reaches it stops for the *cap*. ``patience=None`` never
stops early: the job runs to its cap, as before.

The state (each metric's best value, points since any improved, whether one ever did) is a function of the
curve alone and travels in the training state (:meth:`EarlyStopping.state`), so a resumed job stops at the
same step as an unbroken one.

**Still improving at the cap** (:func:`still_improving`): for some watched metric, the least-squares line
through its last ``patience + 1`` points (at least :data:`MIN_TREND_POINTS`; :data:`TREND_POINTS_OFF`
without early stopping) — the window early stopping judges — rises, in the better direction, by more than
``min_delta`` over their span. Such a run would not have been judged converged; the tables mark its rows.
A curve measured only before the first step and at the last says nothing about convergence (unknown, None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

TREND_POINTS_OFF = 4
"""Points the still-improving trend is fitted on when early stopping is off (``patience=None``)."""

MIN_TREND_POINTS = 3
"""Fewest points a trend is fitted on: two, the untrained model and the last step, would always rise."""

CONVERGED, CAP = "converged", "cap"
"""Why a job stopped: no improvement for ``patience`` points, or its step cap."""


@dataclass(frozen=True)
class StoppingRule:
    """The val metrics a job watches, each with its direction (``(name, higher_is_better)``), and when it
    stops (``patience=None``: at the cap only)."""

    metrics: tuple[tuple[str, bool], ...]
    patience: int | None = None
    min_delta: float = 0.0

    @property
    def trend_points(self) -> int:
        """Points the still-improving trend is fitted on: the window early stopping judges."""
        return max(self.patience + 1, MIN_TREND_POINTS) if self.patience else TREND_POINTS_OFF

    def describe(self) -> dict[str, Any]:
        return {
            "metrics": {name: "higher" if higher else "lower" for name, higher in self.metrics},
            "patience": self.patience,
            "min_delta": self.min_delta,
            "trend_points": self.trend_points,
        }


class EarlyStopping:
    """The running state of :class:`StoppingRule` over a job's validation points."""

    def __init__(self, rule: StoppingRule, state: dict[str, Any] | None = None) -> None:
        self.rule = rule
        state = state or {}
        self.best: dict[str, float] = dict(state.get("best", {}))
        self.since: int = int(state.get("since", 0))
        self.started: bool = bool(state.get("started", False))

    def update(self, point: dict[str, float]) -> None:
        """Take the next validation point; a non-finite value is no improvement."""
        improved = False
        for name, higher in self.rule.metrics:
            if name not in point:
                raise KeyError(f"early stopping watches {name!r}, not measured; got {sorted(point)}")
            value = float(point[name])
            best = self.best.get(name)
            sign = 1.0 if higher else -1.0
            if math.isfinite(value) and (best is None or sign * (value - best) > self.rule.min_delta):
                self.best[name] = value
                improved = True
                self.started = self.started or best is not None
        self.since = 0 if improved else self.since + 1

    @property
    def converged(self) -> bool:
        return self.rule.patience is not None and self.started and self.since >= self.rule.patience

    def state(self) -> dict[str, Any]:
        """What a resumed job needs to continue the rule (JSON)."""
        return {"best": dict(self.best), "since": self.since, "started": self.started}


def trend_rise(curve: list[dict[str, float]], rule: StoppingRule) -> dict[str, float | None]:
    """Per watched metric, how much the least-squares line through its last ``rule.trend_points`` finite points
    rises over their span, in the better direction (positive: improving); None with fewer than
    :data:`MIN_TREND_POINTS`."""
    return {name: _rise(curve, name, higher, rule.trend_points) for name, higher in rule.metrics}


def _rise(curve: list[dict[str, float]], name: str, higher_is_better: bool, count: int) -> float | None:
    points = [(float(p["step"]), float(p[name])) for p in curve if name in p and math.isfinite(float(p[name]))]
    points = points[-count:]
    if len(points) < MIN_TREND_POINTS:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    rise = slope * (points[-1][0] - points[0][0])
    return rise if higher_is_better else -rise


def still_improving(curve: list[dict[str, float]], rule: StoppingRule) -> bool | None:
    """Whether some watched curve still rose by more than ``min_delta`` over its last points (None: too few)."""
    rises = [rise for rise in trend_rise(curve, rule).values() if rise is not None]
    return None if not rises else any(rise > rule.min_delta for rise in rises)
