"""Discover methods from ``baselines/``: the file name is the method name, nothing to register.

A file ``baselines/<name>.py`` must define exactly one :class:`FusionMethod` subclass. Files
starting with ``_`` are private helpers. Listing names needs no import (the Snakefile does it
without torch); loading a method imports its file. What the workflow must know to schedule a
method — the stages it is trained in (``training_stages``) and the weights a published model reads
(``defaults["pretrained"]``) — is read from the file's syntax tree, so it needs no import either;
:func:`load_method` checks that the class agrees with what was read. Tasks and dataset adapters plug in the same
way (:mod:`benchmark.plugins`).
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.paths import REPO_ROOT
from benchmark.plugins import NAME_PATTERN, file_names, folder_from_env, import_file, single_subclass

if TYPE_CHECKING:
    from benchmark.models.method import FusionMethod

__all__ = ["NAME_PATTERN", "MethodSchedule", "baselines_dir", "load_method", "method_names", "method_schedule"]

TRAINING_CHOICES = (("pretrain", "finetune"), ("finetune",), ())
"""What ``FusionMethod.training_stages`` may be: trained from scratch, fine-tuned from its own weights, zero-shot."""


def baselines_dir() -> Path:
    """``$FUSEBENCH_BASELINES`` if set, else ``baselines/`` at the repository root."""
    return folder_from_env("FUSEBENCH_BASELINES") or REPO_ROOT / "baselines"


def method_names(directory: Path | None = None) -> list[str]:
    """Names of the method files, sorted."""
    return file_names(directory or baselines_dir())


def load_method(name: str, directory: Path | None = None) -> type[FusionMethod]:
    """Import ``baselines/<name>.py`` and return its single FusionMethod subclass."""
    from benchmark.errors import MethodError
    from benchmark.models.method import FusionMethod

    directory = directory or baselines_dir()
    path = directory / f"{name}.py"
    if not path.is_file():
        raise MethodError(
            f"unknown method {name!r}: {path} does not exist; available: {', '.join(method_names(directory))}"
        )
    module = import_file(path, f"fusebench_baselines.{name}")
    cls = single_subclass(module, FusionMethod, path, MethodError)
    cls.name = name
    if not cls.paper or not cls.family:
        raise MethodError(f"{path}: {cls.__name__} must set 'family' and 'paper'")
    if not (module.__doc__ or "").strip():
        raise MethodError(f"{path} needs a module docstring naming the paper it follows and where it departs from it")
    if not cls.__doc__:
        cls.__doc__ = module.__doc__
    schedule = method_schedule(name, directory)
    if tuple(cls.training_stages) != schedule.training_stages:
        raise MethodError(
            f"{path}: {cls.__name__}.training_stages is {tuple(cls.training_stages)!r} but the file's class body says "
            f"{schedule.training_stages!r}; write 'training_stages = {tuple(cls.training_stages)!r}' in the class body "
            "(the workflow reads it without importing the file)"
        )
    return cls


@dataclass(frozen=True)
class MethodSchedule:
    """What the workflow needs to know about a method before importing it."""

    training_stages: tuple[str, ...] = ("pretrain", "finetune")  # stages it is trained in
    published: bool = False  # its defaults have a "pretrained" key (weights it reads)
    pretrained: Any = None  # that key's default, when a literal

    @property
    def zero_shot(self) -> bool:
        return not self.training_stages


def method_schedule(name: str, directory: Path | None = None) -> MethodSchedule:
    """``training_stages`` and ``defaults["pretrained"]`` of ``baselines/<name>.py``, read without importing it.

    Both must be literals in the class body (``training_stages = ()``, ``defaults = {..., "pretrained": None}``)
    when the method changes them; :func:`load_method` refuses a class that disagrees.
    """
    path = (directory or baselines_dir()) / f"{name}.py"
    return _schedule_of(path, path.stat().st_mtime_ns if path.is_file() else 0)


@functools.cache
def _schedule_of(path: Path, _mtime: int) -> MethodSchedule:
    from benchmark.errors import MethodError

    if not path.is_file():
        raise MethodError(f"unknown method: {path} does not exist")
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: dict[str, Any] = {}
    for node in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for statement in node.body:
            target, value = _assignment(statement)
            if target == "training_stages":
                try:
                    found["training_stages"] = tuple(ast.literal_eval(value))
                except ValueError:
                    raise MethodError(
                        f"{path}: 'training_stages' must be a literal tuple, e.g. () or ('finetune',)"
                    ) from None
            elif target == "defaults" and isinstance(value, ast.Dict):
                for key, item in zip(value.keys, value.values):
                    if isinstance(key, ast.Constant) and key.value == "pretrained":
                        found["published"] = True
                        try:
                            found["pretrained"] = ast.literal_eval(item)
                        except ValueError:
                            found["pretrained"] = "<not a literal>"
    schedule = MethodSchedule(**found)
    if schedule.training_stages not in TRAINING_CHOICES:
        raise MethodError(
            f"{path}: training_stages = {schedule.training_stages!r} is not supported; "
            f"choose one of {', '.join(repr(c) for c in TRAINING_CHOICES)}"
        )
    return schedule


def _assignment(statement: ast.stmt) -> tuple[str | None, ast.expr | None]:
    """(name, value) of ``name = value`` or ``name: T = value`` in a class body."""
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
        return statement.targets[0].id, statement.value
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value is not None:
        return statement.target.id, statement.value
    return None, None
