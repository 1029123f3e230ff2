"""Discover methods from ``baselines/``: the file name is the method name, nothing to register.

A file ``baselines/<name>.py`` must define exactly one :class:`FusionMethod` subclass. Files
starting with ``_`` are private helpers. Listing names needs no import (the Snakefile does it
without torch); loading a method imports its file. Tasks and dataset adapters plug in the same
way (:mod:`benchmark.plugins`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.config import REPO_ROOT
from benchmark.plugins import NAME_PATTERN, file_names, folder_from_env, import_file, single_subclass

if TYPE_CHECKING:
    from benchmark.models.method import FusionMethod

__all__ = ["NAME_PATTERN", "baselines_dir", "load_method", "method_names"]


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
    return cls
