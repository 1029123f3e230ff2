"""Robustness summary scores per run and their two-level intervals: the computations behind the tables
(the definitions and choices are in :mod:`benchmark.report.robustness`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.corruptions.families import family, modality
from benchmark.errors import DataFileError
from benchmark.metrics.bootstrap import (
    LEVEL,
    RESAMPLES,
    ItemScores,
    batch_metrics,
    percentile_interval,
    resample_seeds,
    resample_weights,
    seed_t_replicates,
)
from benchmark.metrics.robustness import (
    chance_normalised,
    defined_corruptions,
    effective_robustness_taori,
    logit_baseline,
    multimodal_impact,
    relative_drop,
    summarize_family,
    well_above_chance,
)
from benchmark.results import Cell, item_cells, read_cell_items
from benchmark.seeding import derive_seed
from benchmark.tasks import get_task

SCORES = (
    "clean",
    "mean_corrupted",
    "relative_drop",
    "mCE",
    "relative_mCE",
    "relative_robustness",
    "effective_robustness",
    "effective_robustness_multibench",
)
RAW = ("clean", "mean_corrupted", "clean_normalised", "mean_corrupted_normalised")
"""The measured metric itself (and chance-normalised, where the task knows its chance): kept for every row; every
other score (the robustness scores) is undefined for a row not scored on the family (:meth:`_TaskGrid.unscored`)."""
NORMALISED = {"clean_normalised": "clean", "mean_corrupted_normalised": "mean_corrupted"}
COVERED = {"mCE": "mCE over", "relative_mCE": "relative_mCE over"}  # score → its coverage column
FAMILIES = ("image", "text", "missing")
Key = tuple[Any, ...]  # (dataset, task, method, seed)
Values = dict[Cell, list[float]]
"""(corruption, severity) → one value per replicate (a single one: the measured value); NaN = not measured."""
Curves = dict[str, dict[int, float]]
"""corruption → severity → the summary metric, the clean value at severity 0."""
CellItems = dict[Key, Mapping[Cell, ItemScores]]
"""(dataset, task, method, seed) → (corruption, severity) → the cell's per-item records."""


@dataclass
class _Run:
    """What the scores of one (dataset, task, method, seed) read, per cell: the summary metric and each MMI
    column's cell score (the mean of its metrics), as measured or on each bootstrap replicate."""

    summary: Values
    mmi: dict[str, Values]
    reads: list[str]  # the metrics these come from: the summary metric, then the MMI columns'
    components: dict[str, list[str]]  # MMI column → its metrics (:func:`mmi_components`)


def _run_from_rows(block: pd.DataFrame, summary: str, task: str) -> _Run:
    """The run as its tidy rows measured it (None → NaN)."""
    cells: dict[Cell, dict[str, float]] = {}
    for corruption, severity, metric, value in zip(
        block["corruption"], block["severity"], block["metric"], block["value"]
    ):
        number = math.nan if value is None or pd.isna(value) else float(value)
        cells.setdefault((str(corruption), int(severity)), {})[str(metric)] = number
    components = mmi_components({m for values in cells.values() for m in values}, summary, task)
    return _run({cell: {m: [v] for m, v in values.items()} for cell, values in cells.items()}, summary, components)


def _run(cells: dict[Cell, dict[str, list[float]]], summary: str, components: dict[str, list[str]]) -> _Run:
    """A run from each cell's metric values (a list per metric, one value per replicate) and its MMI columns."""
    nan = [math.nan] * len(next(iter(next(iter(cells.values())).values())))
    mmi = {
        column: {cell: _cell_score([values.get(m, nan) for m in metrics]) for cell, values in cells.items()}
        for column, metrics in components.items()
    }
    reads = list(dict.fromkeys([summary, *(m for metrics in components.values() for m in metrics)]))
    return _Run({cell: values.get(summary, nan) for cell, values in cells.items()}, mmi, reads, components)


def _cell_score(metrics: list[list[float]]) -> list[float]:
    """The mean of a cell's metrics, per replicate; NaN where one is missing or NaN (not applicable)."""
    return np.mean(np.asarray(metrics, dtype=float), axis=0).tolist()


def _curves(values: Values, replicate: int) -> Curves:
    """corruption → {severity: value}, each with the clean value at severity 0; n/a corruptions dropped."""
    clean = values.get(("none", 0), [math.nan])[replicate]
    if math.isnan(clean):
        return {}
    curves: Curves = {}
    for (corruption, severity), cell in values.items():
        if corruption != "none":
            curves.setdefault(corruption, {0: clean})[severity] = cell[replicate]
    # not applicable (e.g. a method that cannot run without the text) at some severity: left out
    return {name: curve for name, curve in curves.items() if not any(math.isnan(v) for v in curve.values())}


def mmi_components(metrics: Iterable[str], summary: str, task: str) -> dict[str, list[str]]:
    """MMI column → the metrics averaged into its score: ``MMI_<group>`` per group the task names
    (``Task.robustness_groups``, e.g. per retrieval direction), ``MMI`` for its unnamed group (the summary metric)."""
    groups = get_task(task).robustness_groups(sorted(set(metrics)), summary)
    return {f"MMI_{group}" if group else "MMI": list(members) for group, members in groups.items()}


def _family_mmi(values: Values, replicate: int, common: dict[str, list[str]]) -> dict[str, tuple[float | None, int]]:
    """family → (MMI, corruptions used) over the family's common corruptions that ran at every severity."""
    clean = values.get(("none", 0), [math.nan])[replicate]
    if math.isnan(clean):
        return {}
    cells = [(corruption, cell_values[replicate]) for (corruption, _), cell_values in values.items()]
    unusable = {corruption for corruption, value in cells if math.isnan(value)}
    out = {}
    for fam, members in common.items():
        usable = set(members) - unusable
        perturbed = [value for corruption, value in cells if corruption in usable]
        if perturbed:
            out[fam] = (multimodal_impact(clean, perturbed), len(usable))
    return out


def _coverage(defined: int, common: list[str], grid: list[str]) -> dict[str, Any]:
    left_out = [c for c in grid if c not in common]
    return {"defined": defined, "corruptions": len(common), "of": len(grid), "left_out": ", ".join(left_out)}


def common_corruptions(curves_by_key: dict[Key, Curves]) -> dict[str, list[str]]:
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
    """The summary scores, then the MMI columns present (one per group of the task's metrics)."""
    return [*SCORES, *[s for s in dict.fromkeys(scores["score"]) if s not in SCORES]]


def _mean_curves(curves: list[Curves]) -> Curves:
    """corruption → severity → mean over the given seeds' curves (the corruptions all of them ran)."""
    if not curves:
        return {}
    names = set.intersection(*(set(c) for c in curves))
    return {n: {s: float(np.mean([c[n][s] for c in curves])) for s in curves[0][n]} for n in names}


class _TaskGrid:
    """What the scores of one (dataset, task) share: its summary metric, the corruptions of the grid and
    the common set per family (:func:`common_corruptions`), from the measured runs; the metric's chance level;
    and, decided once on the measured values (never per bootstrap replicate), which rows are not scored on which
    family and why (:attr:`unscored`)."""

    def __init__(
        self,
        summary: str,
        runs: dict[Key, _Run],
        chance: float | None = None,
        modalities: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.summary = summary
        self.chance = chance
        self.curves = {key: _curves(run.summary, 0) for key, run in runs.items()}
        self.common = common_corruptions(self.curves)
        names = sorted({c for run in runs.values() for c, _ in run.summary if c != "none"})
        self.grid = {fam: [n for n in names if family(n) == fam] for fam in FAMILIES}
        self.unscored: dict[Key, dict[str, str]] = {
            key: self._unscored(key, (modalities or {}).get(key[2])) for key in runs
        }
        self.defined: dict[str, dict[str, list[str]]] = {}

    def _unscored(self, key: Key, reads: Sequence[str] | None) -> dict[str, str]:
        """family → why row ``key`` gets no robustness score on it: it does not read a modality the family's
        corruptions change (image_only on text corruptions), or its clean score is not well above chance."""
        out: dict[str, str] = {}
        curves = self.curves[key]
        clean = next(iter(curves.values()))[0] if curves else None
        for fam, names in self.common.items():
            unread = sorted({modality(n) for n in names} - set(reads or ("image", "text")))
            if unread:
                out[fam] = f"does not read the {' and '.join(unread)}"
            elif clean is not None and not well_above_chance(clean, self.chance):
                out[fam] = f"clean {self.summary} {clean:.3f} is not well above chance ({self.chance:.3f})"
        return out

    def fix_reference(self, reference: Curves) -> Curves:
        """The reference's curves the scores are taken against, decided on the measured values: none (every
        reference-relative score undefined) when its clean score is not well above chance; and the corruptions
        on which its CE and relative CE are defined, per family (:func:`defined_corruptions`), kept for every
        bootstrap replicate."""
        clean = next(iter(reference.values()))[0] if reference else None
        if clean is None or not well_above_chance(clean, self.chance):
            self.defined = {}
            return {}
        self.defined = {
            fam: defined_corruptions({n: reference[n] for n in names if n in reference})
            for fam, names in self.common.items()
        }
        return reference

    def scores(
        self, key: Key, run: _Run, replicate: int, curves: Curves, reference: Curves
    ) -> dict[tuple[str, str], Any]:
        """(family, score) → (value, corruptions it is defined on) of one run's ``replicate`` (its ``curves``):
        the MMI columns, then the family summaries against the ``reference`` curves (all but the raw metric
        None on a family the row is not scored on); effective robustness is added over all rows
        (:meth:`add_effective_robustness`)."""
        out: dict[tuple[str, str], Any] = {}
        unscored = self.unscored.get(key, {})
        for column, values in run.mmi.items():
            for fam, result in _family_mmi(values, replicate, self.common).items():
                out[(fam, column)] = (None, 0) if fam in unscored else result
        for fam, names in self.common.items():
            if any(name not in curves for name in names):
                continue  # no curve: failed, or not applicable (or a resample on which the metric is undefined)
            members = {name: curves[name] for name in names}
            ref_members = {n: reference[n] for n in names if n in reference}
            corrupted = [v for curve in members.values() for s, v in curve.items() if s > 0]
            clean = next(iter(members.values()))[0]
            out[(fam, "clean")] = (clean, len(names))
            out[(fam, "mean_corrupted")] = (sum(corrupted) / len(corrupted), len(names))
            if self.chance is not None and self.chance > 0:
                for score, raw in NORMALISED.items():
                    out[(fam, score)] = (chance_normalised(out[(fam, raw)][0], self.chance), len(names))
            complete = len(ref_members) == len(names)
            family_scores = summarize_family(members, ref_members if complete else None, self.defined.get(fam))
            for score, result in family_scores.items():
                out[(fam, score)] = (None, 0) if fam in unscored else (result.value, result.defined)
        return out

    def add_effective_robustness(self, scores: dict[Key, dict[tuple[str, str], Any]]) -> None:
        """Taori et al.'s effective robustness of every row, in place: per family, the line fitted on logit axes
        through (clean, mean_corrupted) of every row scored on it (every method and seed), and each such row's
        mean_corrupted minus the line's prediction from its clean score, in the metric's units."""
        for fam in self.common:
            scored = [k for k, out in scores.items() if (fam, "mean_corrupted") in out and fam not in self.unscored[k]]
            clean = [scores[k][(fam, "clean")][0] for k in scored]
            corrupted = [scores[k][(fam, "mean_corrupted")][0] for k in scored]
            baseline = logit_baseline(clean, corrupted)
            for key, out in scores.items():
                if (fam, "mean_corrupted") not in out:
                    continue
                value = None
                if key in scored:
                    value = effective_robustness_taori(
                        out[(fam, "clean")][0], out[(fam, "mean_corrupted")][0], baseline
                    )
                out[(fam, "effective_robustness")] = (
                    value,
                    out[(fam, "mean_corrupted")][1] if value is not None else 0,
                )


@dataclass
class RobustnessScores:
    """The robustness tables: family scores per seed, relative drop per corruption per seed, and per (method,
    corruption, severity) cell the summary metric's seed-mean with its two-level interval (with records)."""

    scores: pd.DataFrame
    drops: pd.DataFrame
    cells: pd.DataFrame


def summary_scores(
    frame: pd.DataFrame,
    reference_method: str,
    summary_metric: dict[str, str],
    cell_items: CellItems | None = None,
    resamples: int = RESAMPLES,
    modalities: Mapping[str, Sequence[str]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long table of family scores per seed, long table of relative drop per corruption per seed):
    :func:`robustness_scores` without the per-cell table."""
    result = robustness_scores(frame, reference_method, summary_metric, cell_items, resamples, modalities)
    return result.scores, result.drops


def robustness_scores(
    frame: pd.DataFrame,
    reference_method: str,
    summary_metric: dict[str, str],
    cell_items: CellItems | None = None,
    resamples: int = RESAMPLES,
    modalities: Mapping[str, Sequence[str]] | None = None,
) -> RobustnessScores:
    """Every family summary is over the family's common corruptions (:func:`common_corruptions`) and
    against the reference method's mean curve over its seeds (module docstring). With
    ``cell_items`` (:func:`load_cell_items`), each score and each cell gets its two-level bootstrap interval
    (``ci_low``, ``ci_high``; ``resamples`` replicates). ``modalities``: method → the modalities it reads
    (``FusionMethod.modalities``; both when not given): a row is not scored on a family whose corruptions change a
    modality it does not read. A row whose clean score is not well above the task's chance level
    (``Task.chance_level``) is not scored either; the ``unscored`` column says why.
    """
    frame = frame[frame["task"].isin(list(summary_metric))]
    runs: dict[Key, _Run] = {
        tuple(key): _run_from_rows(block, summary_metric[key[1]], key[1])
        for key, block in frame.groupby(["dataset", "task", "method", "seed"], sort=True)
    }
    mmi_rows, family_rows, drops, cells = [], [], [], []
    for keys in _by_task(runs).values():
        summary = summary_metric[keys[0][1]]
        chance = _chance(keys, summary, cell_items)
        grid = _TaskGrid(summary, {k: runs[k] for k in keys}, chance, modalities)
        reference = grid.fix_reference(
            _mean_curves([grid.curves[k] for k in keys if k[2] == reference_method and grid.curves[k]])
        )
        intervals, cell_intervals = (
            _intervals(grid, keys, runs, cell_items, reference_method, resamples) if cell_items else ({}, {})
        )
        measured = {key: grid.scores(key, runs[key], 0, grid.curves[key], reference) for key in keys}
        grid.add_effective_robustness(measured)
        for key in keys:
            for (fam, score), (value, defined) in measured[key].items():
                row = {
                    **dict(zip(("dataset", "task", "method", "seed"), key)),
                    "family": fam,
                    "metric": grid.summary,
                    "score": score,
                    "value": value,
                    **_coverage(defined if value is not None else 0, grid.common[fam], grid.grid[fam]),
                    "unscored": "" if score in RAW else grid.unscored[key].get(fam, ""),
                }
                if cell_items is not None:
                    row["ci_low"], row["ci_high"] = intervals.get((key[2], fam, score), (math.nan, math.nan))
                    row["ci_resamples"] = resamples
                (family_rows if score in SCORES or score in NORMALISED else mmi_rows).append(row)
            for name, curve in grid.curves[key].items():
                drops.append(
                    {
                        **dict(zip(("dataset", "task", "method", "seed"), key)),
                        "family": family(name),
                        "corruption": name,
                        "relative_drop": relative_drop(curve[0], [v for s, v in curve.items() if s > 0]),
                    }
                )
        cells += _cell_rows(grid, keys, runs, cell_intervals, resamples if cell_items else None)
    return RobustnessScores(pd.DataFrame(mmi_rows + family_rows), pd.DataFrame(drops), pd.DataFrame(cells))


def _chance(keys: list[Key], summary: str, cell_items: CellItems | None) -> float | None:
    """The summary metric's chance level on the grid's test subset (``Task.chance_level``), from the records of a
    clean cell when there are any (every cell scores the same subset)."""
    task = get_task(keys[0][1])
    for key in keys:
        records = (cell_items or {}).get(key, {})
        if ("none", 0) in records:
            return task.chance_level(summary, records[("none", 0)])
    return task.chance_level(summary, None)


def _cell_rows(
    grid: _TaskGrid,
    keys: list[Key],
    runs: dict[Key, _Run],
    intervals: dict[tuple[Any, Cell], tuple[float, float]],
    resamples: int | None,
) -> list[dict[str, Any]]:
    """Per (method, corruption, severity): the summary metric's mean and sample std over seeds, chance-normalised
    where the task knows its chance, and the two-level interval of the seed-mean (NaN without records)."""
    by_method: dict[Any, list[Key]] = {}
    for key in keys:
        by_method.setdefault(key[2], []).append(key)
    rows = []
    for method, seeds in by_method.items():
        cells = sorted({cell for key in seeds for cell in runs[key].summary}, key=lambda c: (c[0] != "none", c))
        for cell in cells:
            values = [runs[k].summary[cell][0] for k in seeds if cell in runs[k].summary]
            values = [v for v in values if not math.isnan(v)]
            if not values:
                continue
            low, high = intervals.get((method, cell), (math.nan, math.nan))
            row = {
                "dataset": keys[0][0],
                "task": keys[0][1],
                "method": method,
                "corruption": cell[0],
                "severity": cell[1],
                "family": "none" if cell[0] == "none" else family(cell[0]),
                "metric": grid.summary,
                "seeds": len(values),
                "mean": float(np.mean(values)),
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                "ci_low": low,
                "ci_high": high,
            }
            if grid.chance is not None and grid.chance > 0:
                row["chance"] = grid.chance
                row["mean_normalised"] = chance_normalised(row["mean"], grid.chance)
            if resamples is not None:
                row["ci_resamples"] = resamples
            rows.append(row)
    return rows


def _by_task(runs: dict[Key, _Run]) -> dict[tuple[Any, Any], list[Key]]:
    """(dataset, task) → its (dataset, task, method, seed) keys, in order."""
    out: dict[tuple[Any, Any], list[Key]] = {}
    for key in runs:
        out.setdefault((key[0], key[1]), []).append(key)
    return out


def _intervals(
    grid: _TaskGrid,
    keys: list[Key],
    runs: dict[Key, _Run],
    cell_items: CellItems,
    reference_method: str,
    resamples: int,
) -> tuple[dict[tuple[Any, str, str], tuple[float, float]], dict[tuple[Any, Cell], tuple[float, float]]]:
    """(method, family, score) → the 95 % two-level bootstrap interval of its seed-mean (module docstring), and
    (method, cell) → that of the summary metric's seed-mean in the cell.

    A method is bootstrapped when every seed it has scores for kept the records of every cell it
    measured; without the reference's, the reference-relative scores get no interval."""

    by_method: dict[Any, list[Key]] = {}
    for key in keys:  # each method's measured seeds, in seed order: drawn in pairs across methods
        if grid.curves[key]:
            by_method.setdefault(key[2], []).append(key)
    bootstrapped = {
        method: seeds
        for method, seeds in by_method.items()
        if all(_measured(runs[k]) <= set(cell_items.get(k, {})) for k in seeds)
    }
    if not bootstrapped:
        return {}, {}
    measured = [k for seeds in bootstrapped.values() for k in seeds]
    seed = derive_seed("robustness bootstrap", *keys[0][:2])
    units = cell_items[measured[0]][next(iter(_measured(runs[measured[0]])))].units  # the same in every cell
    weights = resample_weights(units, resamples, seed)
    replicated = {k: _run_from_items(cell_items[k], runs[k], grid.summary, weights) for k in measured}
    draws = {method: resample_seeds(len(seeds), resamples, seed) for method, seeds in bootstrapped.items()}
    reference = bootstrapped.get(reference_method, [])
    per_seed: dict[tuple[Any, str, str], np.ndarray] = {}
    for b in range(resamples):
        curves = {k: _curves(run.summary, b) for k, run in replicated.items()}
        ref = _mean_curves([curves[reference[j]] for j in draws[reference_method][b]]) if reference else {}
        if not grid.defined:  # the measured reference is near chance: no reference-relative score
            ref = {}
        replicate = {key: grid.scores(key, replicated[key], b, curves[key], ref) for key in measured}
        grid.add_effective_robustness(replicate)
        for method, seeds in bootstrapped.items():
            for s, key in enumerate(seeds):
                for (fam, score), (value, _) in replicate[key].items():
                    values = per_seed.setdefault((method, fam, score), np.full((len(seeds), resamples), math.nan))
                    values[s, b] = math.nan if value is None else value
    scores = {
        name: percentile_interval(seed_t_replicates(values, seed, skip_undefined=True), LEVEL)
        for name, values in per_seed.items()
    }
    cells = {
        (method, cell): percentile_interval(
            seed_t_replicates(np.array([replicated[k].summary[cell] for k in seeds]), seed, skip_undefined=True),
            LEVEL,
        )
        for method, seeds in bootstrapped.items()
        for cell in replicated[seeds[0]].summary
    }
    return scores, cells


def _measured(run: _Run) -> set[Cell]:
    """The cells a run measured (its summary metric has a value; a not-applicable cell has none)."""
    return {cell for cell, values in run.summary.items() if not math.isnan(values[0])}


def _run_from_items(items: dict[Cell, ItemScores], measured: _Run, summary: str, weights: np.ndarray) -> _Run:
    """The run re-scored on each row of ``weights`` (resampled units); a cell it did not measure stays NaN."""
    nan = [math.nan] * len(weights)
    cells: dict[Cell, dict[str, list[float]]] = {}
    for cell in measured.summary:
        replicated: dict[str, np.ndarray] = {}
        if cell in items:
            records = items[cell]
            if records.units != weights.shape[1]:
                raise ValueError(
                    f"robustness cell {cell} has {records.units} test units, other cells {weights.shape[1]}: "
                    "the jobs of one (dataset, task) scored different test subsets"
                )
            replicated = batch_metrics(records, weights)
        cells[cell] = {m: replicated[m].tolist() if m in replicated else nan for m in measured.reads}
    return _run(cells, summary, measured.components)


class _JobRecords(Mapping[Cell, ItemScores]):
    """One robustness job's per-item records, read cell by cell from its file when asked: a job's file holds
    every cell's (megabytes for grounding) and the intervals read each cell once, one at a time."""

    def __init__(self, path: Path, task: Any) -> None:

        self._path, self._task = path, task
        self._cells = item_cells(path)

    def __getitem__(self, cell: Cell) -> ItemScores:

        if cell not in self._cells:
            raise KeyError(cell)
        return self._task.items(read_cell_items(self._path, cell)[cell])

    def __iter__(self) -> Iterator[Cell]:
        return iter(self._cells)

    def __len__(self) -> int:
        return len(self._cells)


def load_cell_items(results: Sequence[tuple[Path, dict[str, Any]]]) -> CellItems:
    """(dataset, task, method, seed) → (corruption, severity) → per-item records (read when used), of the
    robustness results (path, record) whose record names its items file (``items``, beside it)."""

    out: CellItems = {}
    for path, record in results:
        spec = record.get("spec", {})
        if not record.get("items") or spec.get("stage") != "robustness":
            continue  # written before robustness jobs kept their records: no interval
        file = Path(path).parent / record["items"]
        if not file.is_file():
            raise DataFileError(f"per-item records missing for {path}: expected {file}")
        out[(spec["dataset"], spec["task"], spec["method"], spec["seed"])] = _JobRecords(file, get_task(spec["task"]))
    return out
