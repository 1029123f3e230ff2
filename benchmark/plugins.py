"""Plug-ins are files: a method, a task or a dataset adapter is one Python file, nothing to register.

The file name is the plug-in's name. The built-ins are the files of ``baselines/`` (methods) and
one table each (``benchmark/tasks/__init__.py``, ``benchmark/datasets/__init__.py``). One rule for
all three kinds: a folder named by an environment variable — ``$FUSEBENCH_BASELINES`` (methods),
``$FUSEBENCH_TASKS``, ``$FUSEBENCH_DATASETS`` — **adds** its files to the built-ins, and a file
there with a built-in's name **overrides** that built-in (the user's file is the one loaded, and
the one the workflow tracks). So a user adds or replaces a plug-in without touching the package.
Listing names needs no import (the Snakefile lists methods without torch); loading imports the file
and returns its single subclass of the contract's base class.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmark.errors import ConfigError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
"""A plug-in name becomes a file name, a Snakemake wildcard and a table row: lower_snake_case."""


def folder_from_env(variable: str) -> Path | None:
    """The plug-in folder named by ``variable``, or None when it is unset or empty."""
    value = os.environ.get(variable, "").strip()
    return Path(value) if value else None


def file_names(directory: Path | None) -> list[str]:
    """Plug-in names of the ``*.py`` files in ``directory`` (``_private.py`` helpers excluded), sorted."""
    if directory is None or not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.py") if NAME_PATTERN.match(p.stem))


def plugin_names(builtins: Iterable[str], folder: Path | None) -> list[str]:
    """The rule for every kind: the built-ins in their order, then the folder's other files (sorted); a folder
    file named like a built-in overrides it in place, so it is listed once."""
    builtins = list(builtins)
    return [*builtins, *(name for name in file_names(folder) if name not in builtins)]


def user_file(folder: Path | None, name: str) -> Path | None:
    """``folder/<name>.py`` when the user's folder has it (it then wins over a built-in of that name), else None."""
    if folder is None or not NAME_PATTERN.match(name):
        return None
    path = folder / f"{name}.py"
    return path if path.is_file() else None


def module_name(prefix: str, name: str, path: Path) -> str:
    """The module a plug-in file is imported as: it carries the file's path, so an overriding file and the built-in
    it overrides (or another folder's file of the same name) are different modules, each imported once."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return f"{prefix}.{name}_{digest}"


def import_file(path: Path, module_name: str) -> Any:
    """Import ``path`` as ``module_name`` once per process (later calls return the same module)."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[module_name]
        raise
    return module


def single_subclass(module: Any, base: type, where: str | Path, error: type[Exception] = ConfigError) -> type:
    """The one concrete subclass of ``base`` defined in ``module``; an error naming ``where`` otherwise."""
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, base)
        and obj is not base
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
    ]
    if len(classes) != 1:
        raise error(f"{where} must define exactly one {base.__name__} subclass, found {[c.__name__ for c in classes]}")
    return classes[0]


class PluginTable:
    """Built-in plug-ins (name → module) plus the files of an optional folder, of one contract; a folder file with a
    built-in's name overrides the built-in (:func:`plugin_names`)."""

    def __init__(self, what: str, base: str, builtins: dict[str, str], env_variable: str) -> None:
        self.what = what  # "task", "dataset adapter"
        self.base = base  # "module:Class" of the contract, imported on first load
        self.builtins = builtins
        self.env_variable = env_variable

    def folder(self) -> Path | None:
        return folder_from_env(self.env_variable)

    def names(self) -> list[str]:
        """Every available name: built-ins first (overridden ones in their place), then the folder's new files."""
        return plugin_names(self.builtins, self.folder())

    def user_file(self, name: str) -> Path | None:
        """The user's file of ``name`` in the folder (a new plug-in or an override of a built-in), else None."""
        return user_file(self.folder(), name)

    def source(self, name: str) -> Path:
        """The file that defines ``name``: the user's file when the folder has one, else the built-in's module."""
        path = self.user_file(name)
        if path is not None:
            return path
        if name in self.builtins:
            spec = importlib.util.find_spec(self.builtins[name])
            assert spec and spec.origin
            return Path(spec.origin)
        raise ConfigError(f"unknown {self.what} {name!r}; available: {', '.join(self.names())}")

    def load(self, name: str) -> type:
        """Import the plug-in and return its class, its ``name`` set from the file name."""
        module, class_name = self.base.partition(":")[::2]
        base = getattr(importlib.import_module(module), class_name)
        path = self.source(name)
        if self.user_file(name) is None:
            plugin = importlib.import_module(self.builtins[name])
        else:
            try:
                plugin = import_file(path, module_name(f"fusebench_{self.env_variable.lower()}", name, path))
            except Exception as exc:
                raise ConfigError(f"{self.what} file {path} cannot be imported: {type(exc).__name__}: {exc}") from None
        cls = single_subclass(plugin, base, path)
        cls.name = name
        cls.source = str(path)
        return cls
