"""Robustness summaries with published definitions, never normalised over the methods compared.

For one method, task metric M (higher is better, in [0, 1]), clean value M₀ and corrupted
values M_{c,s} for corruption c and severity s ∈ S:

* relative drop ``D = mean_{c,s} (M₀ − M_{c,s}) / M₀`` (per family: image, text, missing);
* corruption error, ImageNet-C (Hendrycks & Dietterich 2019), against a reference method r:
  ``CE_c = Σ_s (1 − M_{c,s}) / Σ_s (1 − M^r_{c,s})``, ``mCE = mean_c CE_c``;
* relative corruption error: ``relCE_c = Σ_s (M₀ − M_{c,s}) / Σ_s (M^r₀ − M^r_{c,s})``,
  ``relative mCE = mean_c relCE_c``;
* relative robustness, MultiBench-style (Liang et al. 2021) but without its min–max
  normalisation across methods: the area under the metric-vs-severity curve, severity 0
  (clean) to the largest, by the trapezoid rule, divided by the severity range:
  ``AUC_c = (1/s_max) ∫₀^{s_max} M_c(s) ds``, averaged over corruptions;
* effective robustness against the reference (after Taori et al. 2020): the area beyond what
  the reference's curve, scaled to this method's clean value, predicts:
  ``ER_c = AUC_c − M₀ · AUC^r_c / M^r₀``, averaged over corruptions;
* MultiModal Impact score, MMI (Qiu et al., "Benchmarking Robustness of Multimodal Image-Text
  Models under Distribution Shift", 2022, section on evaluation metrics): the mean relative
  drop of a score s under perturbation, over the perturbations p of one modality and their
  severities l, computed for each retrieval direction separately:
  ``MMI = (1/N) Σ_{p,l} (s₀ − s_{p,l}) / s₀``, N the number of (p, l) pairs. It is the
  relative drop D applied to one direction's score (see :func:`multimodal_impact`).

A ratio whose denominator is zero (a reference that never degrades, a method at 0) is
undefined and returned as None rather than infinity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Curve = Mapping[int, float]  # severity → metric value (severity 0 = clean)


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if abs(denominator) < 1e-12 else numerator / denominator


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


def corruption_error(curve: Curve, reference: Curve) -> float | None:
    """CE_c = Σ_s (1 − M_s) / Σ_s (1 − M^r_s) over the corrupted severities (s > 0)."""
    severities = [s for s in curve if s > 0]
    return _ratio(sum(1 - curve[s] for s in severities), sum(1 - reference[s] for s in severities))


def relative_corruption_error(curve: Curve, reference: Curve) -> float | None:
    """relCE_c = Σ_s (M₀ − M_s) / Σ_s (M^r₀ − M^r_s)."""
    severities = [s for s in curve if s > 0]
    return _ratio(sum(curve[0] - curve[s] for s in severities), sum(reference[0] - reference[s] for s in severities))


def area_under_severity(curve: Curve) -> float:
    """Trapezoid area of M over severity 0…s_max, divided by s_max (a mean value of M)."""
    severities = sorted(curve)
    if len(severities) < 2 or severities[0] != 0:
        raise ValueError(f"the curve needs the clean value (severity 0) and at least one severity, got {severities}")
    values = [curve[s] for s in severities]
    area = sum((b - a) * (values[i] + values[i + 1]) / 2 for i, (a, b) in enumerate(zip(severities, severities[1:])))
    return area / severities[-1]


def effective_robustness(curve: Curve, reference: Curve) -> float | None:
    """ER_c = AUC_c − M₀ · AUC^r_c / M^r₀."""
    scale = _ratio(curve[0], reference[0])
    return None if scale is None else area_under_severity(curve) - scale * area_under_severity(reference)


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined and len(defined) == len(values) else None


def summarize_family(curves: Mapping[str, Curve], reference: Mapping[str, Curve] | None) -> dict[str, float | None]:
    """All summaries over one family's corruptions (each curve includes severity 0)."""
    corrupted = [curve[s] for curve in curves.values() for s in curve if s > 0]
    clean = next(iter(curves.values()))[0] if curves else float("nan")
    summary: dict[str, float | None] = {
        "relative_drop": relative_drop(clean, corrupted) if curves else None,
        "relative_robustness": float(np.mean([area_under_severity(c) for c in curves.values()])) if curves else None,
    }
    comparable = reference is not None and all(name in reference for name in curves) and bool(curves)
    summary["mCE"] = _mean([corruption_error(c, reference[n]) for n, c in curves.items()]) if comparable else None
    summary["relative_mCE"] = (
        _mean([relative_corruption_error(c, reference[n]) for n, c in curves.items()]) if comparable else None
    )
    summary["effective_robustness"] = (
        _mean([effective_robustness(c, reference[n]) for n, c in curves.items()]) if comparable else None
    )
    return summary
