"""The dataset contract: one adapter file per dataset kind, producing or reading the standard form.

Every later stage reads one on-disk form, FuseBench's *standard form* (see
:mod:`benchmark.data.standard_form`): ``images/<split>/``, COCO-style ``annotations/instances_<split>.json``,
``captions_<split>.json``, ``refs_<split>.json`` and ``manifest.json`` with the sha256 of every
file. An adapter either **builds** it into the run's data folder (``generates = True``, e.g. the
synthetic scenes) or **reads** an existing one in place from a user-given path
(``generates = False``), checking it first. ``datasets.<name>.kind`` in the configuration picks
the adapter; the rest of that block is the adapter's configuration, validated against its
``config_schema`` with the rest of the configuration, before any job (the pattern of benchopt's
``datasets/*.py`` and LAVIS's dataset builders).

Declarations (class attributes):

* ``description`` — one line for ``fusebench list-datasets``;
* ``provides`` — the parts of the standard form it delivers (``images``, ``captions``,
  ``instances``, ``refs``); a task runs on the dataset when it requires no other part. The
  manifest's ``parts`` says which files the standard form holds (every part when absent);
* ``tasks`` — optionally, the tasks it is meant for (each must be servable, else an error);
  None = every task whose parts it provides;
* ``config_schema`` — JSON schema of ``datasets.<name>`` (``kind`` included);
* ``generates`` — builds into the run (True) or reads in place (False);
* ``defaults`` — the defaults of its keys (:meth:`DatasetAdapter.settings` fills them in), which enter the
  configuration, hence the data job's spec, when it is completed.

Methods: ``check(spec)`` (problems a schema cannot express, as ``(key, message)``), ``inputs(spec)`` (user files whose
change must re-run the dataset's jobs), ``data_dir(spec, build_dir)`` (where the standard form is
read from), ``prepare(spec, build_dir)`` *required* (build it, or verify it; returns a record with
per-split counts), ``image_size(spec)`` (when the configuration fixes it), ``train_images(spec)`` (the most
training images the configuration allows, when it says: a batch larger than that is refused before any job).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

from benchmark.data.standard_form import DATASET_PARTS
from benchmark.errors import ConfigError
from benchmark.tasks.base import check_schema


class DatasetAdapter:
    """Base class of every dataset adapter; see the module docstring for the contract."""

    kind: ClassVar[str] = ""  # set from the file name by the registry
    source: ClassVar[str] = ""
    description: ClassVar[str] = ""
    provides: ClassVar[tuple[str, ...]] = ()
    tasks: ClassVar[tuple[str, ...] | None] = None
    config_schema: ClassVar[dict[str, Any]] = {}
    generates: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {}
    """The adapter's defaults of its keys, one place: filled into ``datasets.<name>`` when the configuration is
    completed (:func:`benchmark.config.load.completed`), so they are part of the data job's spec and a changed
    default re-runs exactly the jobs of the datasets it applies to, as a task's or a method's defaults do."""

    def settings(self, spec: dict[str, Any]) -> dict[str, Any]:
        """``spec`` with every default filled in (the configuration is completed with this)."""

        return {**copy.deepcopy(self.defaults), **spec}

    def check(self, spec: dict[str, Any]) -> list[tuple[str, str]]:
        """Problems with ``spec`` that the JSON schema cannot express, as (key within the block, message)."""
        return []

    def inputs(self, spec: dict[str, Any]) -> list[Path]:
        """User files the dataset is read from; their change re-runs everything downstream."""
        return []

    def data_dir(self, spec: dict[str, Any], build_dir: Path) -> Path:
        """Where the standard form lives: the run's ``build_dir`` for generated data."""
        return build_dir

    def prepare(self, spec: dict[str, Any], build_dir: Path) -> dict[str, Any]:
        """Build (or verify) the standard form; return ``{"splits": {split: counts}, ...}``."""
        raise NotImplementedError

    def image_size(self, spec: dict[str, Any]) -> int | None:
        """The image side the configuration fixes, if any (checked against the ViT patch size)."""
        return None

    def train_images(self, spec: dict[str, Any]) -> int | None:
        """The most images the training split can hold under ``spec`` (a subset, the official size, the
        generated count), or None when only the built data can tell. A training batch larger than this is a
        configuration error found before any job starts; the job checks the exact size again."""
        return None


def check_adapter(cls: type[DatasetAdapter], task_requirements: dict[str, tuple[str, ...]]) -> None:
    """Raise ConfigError naming the file and the part an adapter lacks or the task it cannot serve."""

    where = cls.source or cls.__module__
    missing = [a for a in ("description", "provides", "config_schema") if not getattr(cls, a)]
    if cls.prepare is DatasetAdapter.prepare:
        missing.append("prepare()")
    if missing:
        raise ConfigError(f"dataset adapter file {where}: {cls.__name__} lacks required part(s) {', '.join(missing)}")

    check_schema(cls.config_schema, f"dataset adapter file {where}: 'config_schema'")
    unknown = sorted(set(cls.provides) - set(DATASET_PARTS))
    if unknown:
        raise ConfigError(
            f"dataset adapter file {where}: 'provides' names unknown part(s) {unknown}; "
            f"known: {', '.join(DATASET_PARTS)}"
        )
    for task in cls.tasks or ():
        if task not in task_requirements:
            raise ConfigError(
                f"dataset adapter file {where}: declares unknown task {task!r}; "
                f"available: {', '.join(task_requirements)}"
            )
        lacking = [part for part in task_requirements[task] if part not in cls.provides]
        if lacking:
            raise ConfigError(
                f"dataset adapter file {where}: declares task {task!r} but does not provide {', '.join(lacking)} "
                f"(task {task!r} requires {', '.join(task_requirements[task])}; provides: {', '.join(cls.provides)})"
            )


def served_tasks(cls: type[DatasetAdapter], task_requirements: dict[str, tuple[str, ...]]) -> list[str]:
    """The tasks the adapter serves, in task order: declared ones, or all whose parts it provides."""
    if cls.tasks is not None:
        return [t for t in task_requirements if t in cls.tasks]
    return [t for t, parts in task_requirements.items() if set(parts) <= set(cls.provides)]
