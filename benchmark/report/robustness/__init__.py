"""Robustness tables: per-seed summary scores by family, then mean ± std over seeds and a 95 % interval.

Input: the tidy rows of the robustness jobs (corruption ≠ "none", plus the clean subset at
severity 0). For each (dataset, task, method, seed) and the task's summary metric, every
corruption gives a curve severity → metric; a family's scores (image, text, missing — never
averaged together) come from :func:`benchmark.metrics.robustness.summarize_family`, beside
``mean_corrupted``, the mean metric under corruption: ``mean_{c,s} M_{c,s}`` over the family's
corruptions c and their corrupted severities s (the clean value left out).

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
same rows, per family and over the same corruptions: one column per group of metrics the task names
(``Task.robustness_groups``; retrieval: ``MMI_t2i``, ``MMI_i2t``, each on the mean of that direction's R@K
in every (corruption, severity) cell, as Qiu et al. report it per retrieval direction); for a task
without groups one ``MMI`` column on its summary metric, where it equals ``relative_drop`` by definition.

**Intervals** (given the per-item records of the robustness jobs, :func:`load_cell_items`): the
two-level bootstrap of :mod:`benchmark.metrics.bootstrap` applied to the whole computation. Each
replicate b draws the seeds of every method with replacement (methods with as many seeds draw
alike) and the test units once — the task's ``bootstrap_unit``, the same draw in every
(corruption, severity) cell, for every method and seed, since every cell scores the same subset —
re-scores every cell of every drawn seed on the drawn units, recomputes the reference's mean curve
from *its* drawn seeds, every seed's family scores against it, and their mean over the drawn
seeds (over those where the score is defined, as the table's mean). ``ci_low`` / ``ci_high``:
the 95 % percentile interval of the B seed-means; the same on every seed's row of a (method,
family, score). A method without records for every cell it measured has none (NaN).

The long score table has, per (dataset, task, method, seed, family, score): ``value``,
``defined`` (corruptions the score is defined on), ``corruptions`` (the family's common set),
``of`` (the family's corruptions in the grid), ``left_out`` (those not in the common set) and,
with records, ``ci_low`` / ``ci_high``.
"""

from benchmark.report.robustness.scores import (
    RobustnessScores,
    common_corruptions,
    load_cell_items,
    mmi_components,
    robustness_scores,
    summary_scores,
)
from benchmark.report.robustness.tables import robustness_latex, robustness_markdown

__all__ = [
    "RobustnessScores",
    "common_corruptions",
    "load_cell_items",
    "mmi_components",
    "robustness_latex",
    "robustness_markdown",
    "robustness_scores",
    "summary_scores",
]
