"""Discover methods from ``baselines/``: the file name is the method name, nothing to register.

A file ``baselines/<name>.py`` must define exactly one :class:`FusionMethod` subclass. Files
starting with ``_`` are private helpers. Listing names needs no import (the Snakefile does it
without torch); loading a method imports its file.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.config import REPO_ROOT

if TYPE_CHECKING:
    from benchmark.models.method import FusionMethod

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


def baselines_dir() -> Path:
    """``$FUSEBENCH_BASELINES`` if set, else ``baselines/`` at the repository root."""
    return Path(os.environ.get("FUSEBENCH_BASELINES", REPO_ROOT / "baselines"))


def method_names(directory: Path | None = None) -> list[str]:
    """Names of the method files, sorted."""
    directory = directory or baselines_dir()
    return sorted(p.stem for p in directory.glob("*.py") if NAME_PATTERN.match(p.stem))


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
    module_name = f"fusebench_baselines.{name}"
    if module_name in sys.modules:
        module = sys.modules[module_name]
    else:
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[module_name]
            raise
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, FusionMethod)
        and obj.__module__ == module_name
        and not inspect.isabstract(obj)
    ]
    if len(classes) != 1:
        raise MethodError(
            f"{path} must define exactly one FusionMethod subclass, found {[c.__name__ for c in classes]}"
        )
    cls = classes[0]
    cls.name = name
    if not cls.paper or not cls.family:
        raise MethodError(f"{path}: {cls.__name__} must set 'family' and 'paper'")
    if not (module.__doc__ or "").strip():
        raise MethodError(f"{path} needs a module docstring naming the paper it follows and where it departs from it")
    if not cls.__doc__:
        cls.__doc__ = module.__doc__
    return cls
