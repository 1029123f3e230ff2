"""The task contract: everything task-specific lives in one ``Task`` subclass, one file per task.

The framework (stages, robustness grid, statistics, tables, plots, efficiency) asks the task and
never branches on its name — the pattern of LAVIS's ``lavis/tasks/*.py`` and benchopt's objective
file, except that a task reaches a model only through the method contract
(:mod:`benchmark.models.method`). A task file is importable without torch (the Snakefile reads
the class attributes); heavy imports happen inside the methods.

Declarations (class attributes):

* ``requires`` — the dataset parts the task reads (``images``, ``captions``, ``instances``,
  ``refs``); a dataset serves the task when it provides all of them.
* ``table_metrics`` — the summary table's columns, in order (``main.csv`` keeps every metric);
  ``headline_metrics`` — compared pairwise in ``comparisons.csv`` and plotted;
  ``subset_metrics`` — reported again on the seen and the held-out subsets of a test split that
  tags them (a compositional split, :mod:`benchmark.metrics.compositional`), as extra rows
  ``<metric>@seen`` / ``<metric>@held_out``; never table columns, never in the robustness grid.
* ``abbreviation`` — the task's part of LaTeX macro names (``\\fbCrossAttentionDetAPMean``);
  ``percent`` — table values are fractions shown as %.
* ``references`` — reference rows (name → what it is); ``reference_settings`` — the
  ``evaluate.<task>`` keys they depend on (their stage spec).
* ``bootstrap_unit`` — what one resampled test unit is (the item records' unit; documentation).
* ``prediction_metric`` — a metric that is 0 for a method that never predicts (grounding: ``T-acc``, no box
  ever scored above the threshold), or None: such a row cannot be a column's best (its N-acc is perfect).
* ``training_unit`` — what a fine-tuning batch draws, one per row (``images``, or e.g. ``expressions``):
  ``finetune.<task>.batch_size`` may not exceed the training split's count of them. Only ``images`` can be
  checked from the configuration before any job; every unit is checked when the job starts.
* ``efficiency`` — ``(key, label)`` of the forward FLOPs counted per example in the efficiency
  table, or None.
* ``settings_schema`` — JSON schema of ``evaluate.<task>`` (validated with the configuration).
* ``validates_pretraining`` — a pretraining job is also validated by this task's metrics on val (with the
  main table's ``evaluate.<task>`` settings) for a method :meth:`Task.measures_pretraining` accepts; the
  learning-curve figure draws its first headline metric beside the val loss.
* ``opt_in`` — ``tasks: all`` leaves the task out; it runs where ``tasks`` names it (a task that must not
  join existing runs by itself, e.g. ``matching``).
* ``subset_note`` — how the task scores a seen / held-out subset (compositional captions), e.g. "ranks the
  full test gallery for the subset's queries"; ``mmi_note`` — how its MMI columns are formed when it groups
  metrics (:meth:`Task.robustness_groups`), '' for one MMI column on the summary metric.
* ``defaults`` — config blocks a plug-in task brings (``finetune``, ``evaluate``,
  ``summary_metric``) when the configuration has none; built-in tasks keep theirs in
  ``workflows/config/default.yaml`` with every other default.

Methods (override the ones marked *required*):

* ``metric_names(settings)`` *required* — every metric an evaluation reports;
* ``training_data(split, tokenizer, device, ctx)`` — fine-tuning batches (``.batch(step, size, seed)``);
* ``evaluate(model, split, tokenizer, device, batch_size, settings, **missing)`` *required* —
  ``(metrics, protocol record, per-item records)``, the ``subset_metrics`` rows included when
  the split is tagged (``split.tagged``);
* ``items(arrays)`` *required* — per-item records as bootstrap :class:`~benchmark.metrics.bootstrap.ItemScores`;
  ``chance(arrays)`` — each metric's chance level from those records (default: none);
* ``reference_rows(data_dir, settings)`` — ``({row name: metrics}, protocol)``;
* ``robustness_subset(split, max_images)`` — the test subset the robustness grid measures, and
  ``subset_settings(settings, test_size)`` — the evaluation settings used on it (the main table's protocol; also
  validation's), ``robustness_settings(settings, test_size)`` — the grid's (default: ``subset_settings``), and
  ``robustness_metric(summary, measured)`` — the name the grid measured the summary metric under;
* ``missing_modality(subset, corruption, severity)`` — keyword arguments of ``evaluate`` that
  withhold a modality, or a string saying why the task cannot be measured so;
* ``robustness_groups(metric_names, summary)`` — MMI column suffix → the metrics averaged into it (default:
  one column on the summary metric; retrieval: one per direction);
* ``chance_level(metric, items)`` — the metric's value for a method that does not work (chance), given one
  evaluation's per-item records (or None when there are none): a row whose clean score is not well above it gets
  no robustness score (:mod:`benchmark.report.robustness`); None = unknown (default);
* ``protocol_counts(protocol)`` — what an evaluation's numbers are computed on, phrased from its protocol
  record for the table captions (default: every count in the record);
* ``not_applicable_reason(method)`` — why a method (class or instance) cannot do the task, or None
  (default: the method's own answer, from its ``tasks``); ``losses(model, batch)`` — the fine-tuning losses
  (default: the method's ``task_losses``); ``measures_pretraining(model)`` — see ``validates_pretraining``;
* ``forward_example(model, example)`` — one forward pass on one example (FLOP counting).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from benchmark.data.standard_form import DATASET_PARTS
from benchmark.errors import ConfigError

"""What a dataset can provide and a task can require (see :mod:`benchmark.datasets.base`)."""

REQUIRED_ATTRIBUTES = ("requires", "table_metrics", "headline_metrics", "abbreviation")
REQUIRED_METHODS = ("metric_names", "evaluate", "items")


class Task:
    """Base class of every task; see the module docstring for the contract."""

    name: ClassVar[str] = ""  # set from the file name by the registry
    source: ClassVar[str] = ""  # the file it was loaded from
    title: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    table_metrics: ClassVar[tuple[str, ...]] = ()
    headline_metrics: ClassVar[tuple[str, ...]] = ()
    subset_metrics: ClassVar[tuple[str, ...]] = ()
    abbreviation: ClassVar[str] = ""
    percent: ClassVar[bool] = True
    references: ClassVar[dict[str, str]] = {}
    reference_settings: ClassVar[tuple[str, ...]] = ()
    bootstrap_unit: ClassVar[str] = ""
    prediction_metric: ClassVar[str | None] = None
    training_unit: ClassVar[str] = "images"
    efficiency: ClassVar[tuple[str, str] | None] = None
    settings_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    defaults: ClassVar[dict[str, Any]] = {}
    validates_pretraining: ClassVar[bool] = False
    opt_in: ClassVar[bool] = False
    subset_note: ClassVar[str] = ""
    mmi_note: ClassVar[str] = ""

    # -- what it reports ------------------------------------------------------------------------
    def metric_names(self, settings: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def reference_note(self) -> str:
        """One sentence per reference row, for table captions."""
        return " ".join(f"{name} {description}." for name, description in self.references.items())

    def protocol_counts(self, protocol: dict[str, Any]) -> str | None:
        """What one evaluation's numbers are computed on (``"16 test images and their 32 captions"``), from its
        protocol record; None when the record says nothing countable. Default: every integer count in it."""
        counts = [f"{value:,} {key}" for key, value in protocol.items() if type(value) is int]
        return ", ".join(counts) or None

    # -- which methods ----------------------------------------------------------------------------
    def not_applicable_reason(self, method: Any) -> str | None:
        """Why ``method`` (a :class:`~benchmark.models.method.FusionMethod` class or instance) cannot do this
        task, or None when it can. Default: the method's own answer (the tasks its file lists)."""
        return method.not_applicable_reason(self.name)

    def measures_pretraining(self, model: Any) -> bool:
        """Whether a pretraining job of ``model`` is validated by this task's metrics (``validates_pretraining``)."""
        return self.validates_pretraining and self.not_applicable_reason(model) is None

    # -- training -------------------------------------------------------------------------------
    def training_data(self, split: Any, tokenizer: Any, device: Any, ctx: Any) -> Any:
        """Fine-tuning batches: image–text pairs (with the method's concept targets) by default."""
        from benchmark.data.sampling import ImageTextData

        return ImageTextData.from_split(split, tokenizer, device, ctx.concepts)

    def losses(self, model: Any, batch: Any) -> Any:
        """Named fine-tuning losses of ``model`` on one ``training_data`` batch: the method's ``task_losses``."""
        return model.task_losses(self.name, batch)

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(
        self,
        model: Any,
        split: Any,
        tokenizer: Any,
        device: Any,
        batch_size: int,
        settings: dict[str, Any],
        **missing: Any,
    ) -> tuple[dict[str, float | None], dict[str, Any], dict[str, Any]]:
        raise NotImplementedError

    def items(self, arrays: dict[str, Any]) -> Any:
        raise NotImplementedError

    def chance(self, arrays: dict[str, Any]) -> dict[str, float]:
        """metric → its chance level in the evaluation whose per-item records are ``arrays``, for the metrics that
        have one (recorded as ``protocol.chance`` of evaluation and robustness results); none by default."""
        return {}

    def reference_rows(
        self, data_dir: Path, settings: dict[str, Any]
    ) -> tuple[dict[str, dict[str, float | None]], dict[str, Any]]:
        """Rows that need no training (chance, text-blind detectors); none by default."""
        return {}, {}

    # -- robustness -----------------------------------------------------------------------------
    def robustness_subset(self, split: Any, max_images: int | None) -> Any:
        """The first ``max_images`` test images with their texts (the same subset for every method), measured
        as a whole: without seen / held-out tags, so no subset metric enters the robustness grid."""
        return split.head(max_images).untagged()

    def subset_settings(self, settings: dict[str, Any], test_size: int) -> dict[str, Any]:
        """Evaluation settings on the robustness subset, given the main table's test split of ``test_size``
        items: the same protocol as the main table (a task that cuts its test set itself undoes that here)."""
        return settings

    def robustness_settings(self, settings: dict[str, Any], test_size: int) -> dict[str, Any]:
        """Evaluation settings of the robustness grid (default: :meth:`subset_settings`); a task whose grid
        measures another protocol than validation (retrieval: fixed candidate sets) says so here."""
        return self.subset_settings(settings, test_size)

    def robustness_metric(self, summary: str, measured: Any) -> str:
        """The name under which the grid measured the summary metric ``summary``, given the metric names it
        ``measured`` (default: the same name)."""
        return summary

    def missing_modality(self, subset: Any, corruption: str, severity: int) -> dict[str, Any] | str:
        """``evaluate`` keyword arguments withholding the modality, or why the task cannot be measured so."""
        return f"{self.name} does not define a missing-modality protocol"

    def robustness_groups(self, metric_names: list[str], summary: str) -> dict[str, list[str]]:
        """MMI column suffix → the metrics whose per-cell mean its score is taken on (MultiModal Impact,
        :mod:`benchmark.report.robustness`); '' names the plain ``MMI`` column. Default: the summary metric."""
        return {"": [summary]} if summary in metric_names else {}

    def chance_level(self, metric: str, items: Any | None) -> float | None:
        """``metric``'s chance level on the test set ``items`` (:meth:`items` records of one evaluation, None when
        there are none), or None when the task does not know it: then no row is judged near chance."""
        return None

    # -- efficiency -----------------------------------------------------------------------------
    def forward_example(self, model: Any, example: dict[str, Any]) -> Any:
        """Run the task's forward computation on one example (counted by the FLOP counter)."""
        raise NotImplementedError


def check_task(cls: type[Task]) -> None:
    """Raise ConfigError naming the file and the missing part of an incomplete task."""

    where = cls.source or cls.__module__
    missing = [a for a in REQUIRED_ATTRIBUTES if not getattr(cls, a)]
    missing += [f"{m}()" for m in REQUIRED_METHODS if getattr(cls, m) is getattr(Task, m)]
    if missing:
        raise ConfigError(f"task file {where}: {cls.__name__} lacks required part(s) {', '.join(missing)}")
    if cls.efficiency and cls.forward_example is Task.forward_example:
        raise ConfigError(f"task file {where}: {cls.__name__} declares 'efficiency' but lacks forward_example()")
    unknown = sorted(set(cls.requires) - set(DATASET_PARTS))
    if unknown:
        raise ConfigError(
            f"task file {where}: 'requires' names unknown dataset part(s) {unknown}; known: {', '.join(DATASET_PARTS)}"
        )
    check_schema(cls.settings_schema, f"task file {where}: 'settings_schema'")


def check_schema(schema: dict[str, Any], where: str) -> None:
    """A plug-in's JSON schema must itself be valid (a typo there would fail mid-validation)."""

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ConfigError(f"{where} is not a valid JSON schema: {exc.message}") from None


def check_task_table(tasks: list[Task]) -> None:
    """Names that end up side by side in one table or macro file must be unique across tasks."""

    for what, values in (
        ("reference row", [(t, r) for t in tasks for r in t.references]),
        ("abbreviation", [(t, t.abbreviation) for t in tasks]),
        ("efficiency key", [(t, t.efficiency[0]) for t in tasks if t.efficiency]),
    ):
        seen: dict[str, Task] = {}
        for task, value in values:
            if value in seen and seen[value] is not task:
                raise ConfigError(
                    f"task file {task.source}: {what} {value!r} is also used by task {seen[value].name!r} "
                    f"({seen[value].source}); choose another"
                )
            seen[value] = task
