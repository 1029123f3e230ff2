"""Robustness summaries with published definitions, never normalised over the methods compared.

For one method, task metric M (higher is better, in [0, 1]), clean value M₀ and corrupted
values M_{c,s} for corruption c and severity s ∈ S (|S| severities, s_max the largest); r is
the reference method, whose curve M^r is the mean over its seeds (see
:mod:`benchmark.report.robustness`):

* relative drop ``D = mean_{c,s} (M₀ − M_{c,s}) / M₀`` (per family: image, text, missing);
* corruption error, ImageNet-C (Hendrycks & Dietterich 2019):
  ``CE_c = Σ_s (1 − M_{c,s}) / Σ_s (1 − M^r_{c,s})``, ``mCE = mean_c CE_c``;
* relative corruption error, ImageNet-C (same paper, "relative mCE"; there in error
  rates E = 1 − M, so E_s − E_clean = M₀ − M_s):
  ``relCE_c = Σ_s (M₀ − M_{c,s}) / Σ_s (M^r₀ − M^r_{c,s})``, ``relative mCE = mean_c relCE_c``;
* relative robustness, MultiBench (Liang et al. 2021, "MultiBench: Multiscale Benchmarks for
  Multimodal Representation Learning", NeurIPS Datasets and Benchmarks; code
  ``pliang279/MultiBench``, ``eval_scripts/robustness.py``, ``relative_robustness_helper``):
  the trapezoid area under the metric-vs-imperfection curve with the imperfection level scaled
  to [0, 1] (there s / s_max): ``AUC_c = (1/s_max) ∫₀^{s_max} M_c(s) ds``, averaged over c;
* effective robustness, MultiBench (same paper and file, ``effective_robustness_helper``): the
  metric beyond what the reference's curve *shifted additively* to this method's clean value
  predicts, summed over the imperfection levels:
  ``ER_c = Σ_{s ∈ {0} ∪ S} [M_{c,s} − (M^r_{c,s} + M₀ − M^r₀)]`` (the s = 0 term is 0),
  averaged over c. MultiBench's reference is late fusion (``robustness['LF']``), as FuseBench's
  default ``robustness.reference_method``. It is a sum, not a mean, as in MultiBench's code
  (``np.sum(f − beta_f)``): it grows with |S| (5 here, 10 noise levels in MultiBench).
  It is *not* Taori et al. 2020's effective robustness (a baseline fitted across many models);
* MultiModal Impact score, MMI (Qiu et al., "Benchmarking Robustness of Multimodal Image-Text
  Models under Distribution Shift", 2022, section on evaluation metrics): the mean relative
  drop of a score s under perturbation, over the perturbations p of one modality and their
  severities l, computed for each retrieval direction separately:
  ``MMI = (1/N) Σ_{p,l} (s₀ − s_{p,l}) / s₀``, N the number of (p, l) pairs. It is the
  relative drop D applied to one direction's score (see :func:`multimodal_impact`).

Departures, all deliberate: MultiBench min–max normalises relative and effective robustness over
the methods of its table (``maxmin_normalize``), which makes a method's score depend on which
others are compared; FuseBench reports them unnormalised. MultiBench has one curve per
(dataset, noisy modality); FuseBench averages the per-corruption values over a family.

**Undefined ratios.** A ratio whose denominator is zero or negligible is undefined (None),
never ±infinity or a sign-flipped number. With ε = :data:`NEGLIGIBLE` (0.01):

* ``relCE_c`` is undefined when the reference's mean relative drop under c is at most ε,
  i.e. ``Σ_s (M^r₀ − M^r_{c,s}) ≤ ε · |S| · M^r₀`` — a reference that improves under c
  (negative drop), does not degrade, or degrades by less than 1 % of its clean value on
  average (the ratio would then flip sign or explode on noise);
* ``CE_c`` is undefined when the reference's mean error under c is at most ε,
  ``Σ_s (1 − M^r_{c,s}) ≤ ε · |S|`` (a reference at or within 1 point of a perfect score);
* mCE and relative mCE average the *defined* corruptions, and say how many they cover
  (:class:`FamilyScore`); D, AUC and ER are always defined (D needs M₀ > 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Curve = Mapping[int, float]  # severity → metric value (severity 0 = clean)

NEGLIGIBLE = 0.01
"""ε: a reference drop (relCE) or error (CE) at most this, per severity and relative to its
scale (M^r₀ for relCE, 1 for CE), makes the ratio undefined."""


@dataclass(frozen=True)
class FamilyScore:
    """One summary of a family: its value (None = undefined), and over how many corruptions.

    ``defined`` of ``corruptions``: mCE and relative mCE average the corruptions whose CE / relCE
    is defined; every other score is defined on all of them (or on none).
    """

    value: float | None
    defined: int
    corruptions: int


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if abs(denominator) < 1e-12 else numerator / denominator


def _corrupted(curve: Curve) -> list[int]:
    return sorted(s for s in curve if s > 0)


def relative_drop(clean: float, corrupted: Sequence[float]) -> float | None:
    """Mean of (M₀ − M) / M₀ over the given corrupted values."""
    if not corrupted:
        return None
    return _ratio(float(np.mean([clean - value for value in corrupted])), clean)


def multimodal_impact(clean: float, perturbed: Sequence[float]) -> float | None:
    """MMI = (1/N) Σ_{p,l} (s₀ − s_{p,l}) / s₀ (Qiu et al. 2022): the mean relative drop of one score.

    Plain text: MMI = mean over every perturbation p and severity l of (clean score − score
    under p at l) / clean score. Qiu et al. compute it per modality (image or text
    perturbations) and, for retrieval, per direction (text retrieval, image retrieval); it is
    positive when perturbation hurts, 0 when it does not. None without perturbed scores or for
    a clean score of 0. The scores are taken as the caller gives them: FuseBench passes the mean
    of a direction's R@K, whose relative drop equals that of the direction's recall sum.
    """
    return relative_drop(clean, perturbed)


def _ce_denominator(reference: Curve, severities: list[int]) -> float:
    return sum(1 - reference[s] for s in severities)


def _relce_denominator(reference: Curve, severities: list[int]) -> float:
    return sum(reference[0] - reference[s] for s in severities)


def ce_defined(reference: Curve) -> bool:
    """Whether CE against this reference curve is defined: Σ_s (1 − M^r_s) > ε · |S|."""
    severities = _corrupted(reference)
    return bool(severities) and _ce_denominator(reference, severities) > NEGLIGIBLE * len(severities)


def relative_ce_defined(reference: Curve) -> bool:
    """Whether relative CE against this reference curve is defined: Σ_s (M^r₀ − M^r_s) > ε · |S| · M^r₀."""
    severities = _corrupted(reference)
    return bool(severities) and _relce_denominator(reference, severities) > NEGLIGIBLE * len(severities) * reference[0]


def corruption_error(curve: Curve, reference: Curve, checked: bool = True) -> float | None:
    """CE_c = Σ_s (1 − M_s) / Σ_s (1 − M^r_s) over the corrupted severities (s > 0).

    Undefined (None) when the reference's error is negligible: Σ_s (1 − M^r_s) ≤ ε · |S|. ``checked=False``
    skips that rule (the caller fixed where CE is defined, :func:`defined_corruptions`): None only for a zero
    denominator.
    """
    severities = _corrupted(curve)
    if not severities or (checked and not ce_defined(reference)):
        return None
    return _ratio(sum(1 - curve[s] for s in severities), _ce_denominator(reference, severities))


def relative_corruption_error(curve: Curve, reference: Curve, checked: bool = True) -> float | None:
    """relCE_c = Σ_s (M₀ − M_s) / Σ_s (M^r₀ − M^r_s) over the corrupted severities (s > 0).

    Undefined (None) when the reference does not degrade by more than a negligible amount:
    Σ_s (M^r₀ − M^r_s) ≤ ε · |S| · M^r₀ — it improves (the ratio would flip sign), stays
    level, or loses at most ε = 1 % of its clean value per severity on average. ``checked=False`` as
    :func:`corruption_error`.
    """
    severities = _corrupted(curve)
    if not severities or (checked and not relative_ce_defined(reference)):
        return None
    return _ratio(sum(curve[0] - curve[s] for s in severities), _relce_denominator(reference, severities))


def defined_corruptions(reference: Mapping[str, Curve]) -> dict[str, list[str]]:
    """``mCE`` / ``relative_mCE`` → the corruptions of ``reference`` on which CE / relative CE is defined.

    Decided once, on the measured reference curves, and passed to :func:`summarize_family` for every bootstrap
    replicate: the set a score averages over is then the same in the interval as in the point estimate (decided
    per replicate it changed from one replicate to the next, at the ε knife edge)."""
    return {
        "mCE": [name for name, curve in reference.items() if ce_defined(curve)],
        "relative_mCE": [name for name, curve in reference.items() if relative_ce_defined(curve)],
    }


def area_under_severity(curve: Curve) -> float:
    """Trapezoid area of M over severity 0…s_max, divided by s_max (a mean value of M).

    MultiBench's ``relative_robustness_helper`` with the imperfection level s / s_max.
    """
    severities = sorted(curve)
    if len(severities) < 2 or severities[0] != 0:
        raise ValueError(f"the curve needs the clean value (severity 0) and at least one severity, got {severities}")
    values = [curve[s] for s in severities]
    area = sum((b - a) * (values[i] + values[i + 1]) / 2 for i, (a, b) in enumerate(zip(severities, severities[1:])))
    return area / severities[-1]


def effective_robustness(curve: Curve, reference: Curve) -> float:
    """MultiBench's effective robustness: ER_c = Σ_s [M_s − (M^r_s + M₀ − M^r₀)], s over 0 and S.

    The reference curve shifted additively to this method's clean value predicts the method's
    curve; ER is the sum of what the method scores beyond that prediction (Liang et al. 2021,
    ``pliang279/MultiBench`` ``eval_scripts/robustness.py``, ``effective_robustness_helper``:
    ``beta_f = lf + (f[0] − lf[0]); np.sum(f − beta_f)``), without its min–max normalisation.
    """
    shift = curve[0] - reference[0]
    return float(sum(curve[s] - (reference[s] + shift) for s in sorted(curve)))


def _mean_defined(values: Sequence[float | None]) -> FamilyScore:
    """The mean of the defined values (None when there is none), with how many it covers."""
    defined = [v for v in values if v is not None]
    return FamilyScore(float(np.mean(defined)) if defined else None, len(defined), len(values))


def summarize_family(
    curves: Mapping[str, Curve],
    reference: Mapping[str, Curve] | None,
    defined: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, FamilyScore]:
    """All summaries over one family's corruptions (each curve includes severity 0).

    ``curves`` must be the set of corruptions every compared method ran (the caller restricts
    them, :func:`benchmark.report.robustness.summary_scores`); ``reference`` the reference
    method's curves for the same corruptions, or None (then the reference-relative scores are
    undefined). ``defined``: the corruptions mCE and relative mCE average over (:func:`defined_corruptions`
    of the measured reference; a bootstrap replicate passes the point estimate's); by default decided on
    ``reference`` itself.
    """
    n = len(curves)
    if not n:
        raise ValueError("a family summary needs at least one corruption")
    corrupted = [curve[s] for curve in curves.values() for s in _corrupted(curve)]
    clean = next(iter(curves.values()))[0]
    drop = relative_drop(clean, corrupted)
    summary = {
        "relative_drop": FamilyScore(drop, n if drop is not None else 0, n),
        "relative_robustness": FamilyScore(float(np.mean([area_under_severity(c) for c in curves.values()])), n, n),
    }
    if reference is None or any(name not in reference for name in curves):
        undefined = FamilyScore(None, 0, n)
        return {**summary, "mCE": undefined, "relative_mCE": undefined, "effective_robustness_multibench": undefined}
    if defined is None:
        defined = defined_corruptions({name: reference[name] for name in curves})
    ce, relce = set(defined["mCE"]), set(defined["relative_mCE"])
    return {
        **summary,
        "mCE": _mean_defined(
            [corruption_error(c, reference[name], checked=False) if name in ce else None for name, c in curves.items()]
        ),
        "relative_mCE": _mean_defined(
            [
                relative_corruption_error(c, reference[name], checked=False) if name in relce else None
                for name, c in curves.items()
            ]
        ),
        "effective_robustness_multibench": _mean_defined(
            [effective_robustness(c, reference[name]) for name, c in curves.items()]
        ),
    }


# ------------------------------------------------------------------------- scores a failing method cannot win

CHANCE_MARGIN = 0.1
"""A clean score is *well above chance* when its chance-normalised value (M₀ − chance) / (1 − chance) is at least
this: a tenth of the way from chance to a perfect score. Below it a row's robustness scores are undefined (a method
that does not work cannot lose what it never had), and a reference below it defines no relative mCE."""

LOGIT_CLIP = 1e-3
"""Accuracies are clipped to [ε, 1 − ε] before the logit (Taori et al. fit on probit/logit axes, where 0 and 1 have
no image)."""


def chance_normalised(value: float, chance: float) -> float:
    """(M − chance) / (1 − chance): 0 at chance, 1 at a perfect score (e.g. retrieval recall against its gallery)."""
    if not chance < 1:
        raise ValueError(f"chance level must be below 1, got {chance}")
    return (value - chance) / (1 - chance)


def well_above_chance(clean: float, chance: float | None, margin: float = CHANCE_MARGIN) -> bool:
    """Whether a clean score is at least ``margin`` of the way from chance to perfect; True when chance is unknown."""
    return chance is None or chance_normalised(clean, chance) >= margin


def logit(p: float | np.ndarray) -> np.ndarray:
    """log(p / (1 − p)) of p clipped to [ε, 1 − ε] (:data:`LOGIT_CLIP`)."""
    q = np.clip(np.asarray(p, dtype=float), LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(q / (1 - q))


def logit_baseline(clean: Sequence[float], corrupted: Sequence[float]) -> tuple[float, float] | None:
    """(slope, intercept) of the least-squares line logit(corrupted) ≈ slope · logit(clean) + intercept.

    Taori et al. 2020 ("Measuring Robustness to Natural Distribution Shifts in Image Classification", NeurIPS)
    fit this line across a testbed of models, one point per model (in-distribution vs shifted accuracy); FuseBench
    fits it across the rows of one (dataset, task, family), one point per (method, seed). None with fewer than two
    points or no spread in clean score (no line)."""
    x, y = logit(np.asarray(clean, dtype=float)), logit(np.asarray(corrupted, dtype=float))
    if len(x) < 2 or np.ptp(x) < 1e-9:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def effective_robustness_taori(clean: float, corrupted: float, baseline: tuple[float, float] | None) -> float | None:
    """ER = M_corrupted − σ(slope · logit(M₀) + intercept), in accuracy units (the metric's own, not logits):
    what a row scores under corruption beyond what the baseline fitted across all rows predicts from its clean
    score (Taori et al. 2020, their ρ vs τ decomposition: effective robustness is the shifted accuracy above the
    fitted line, reported in accuracy points). None without a baseline."""
    if baseline is None:
        return None
    slope, intercept = baseline
    predicted = 1 / (1 + np.exp(-(slope * float(logit(clean)) + intercept)))
    return float(corrupted - predicted)
