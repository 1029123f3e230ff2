"""Plug-ins are files: a method, a task or a dataset adapter is one Python file, nothing to register.

The file name is the plug-in's name. Built-in tasks and dataset adapters are listed in one
table each (``benchmark/tasks/__init__.py``, ``benchmark/datasets/__init__.py``); more come from a
folder named by an environment variable — ``$FUSEBENCH_BASELINES`` (methods, default
``baselines/``), ``$FUSEBENCH_TASKS``, ``$FUSEBENCH_DATASETS`` — so a user adds one without
touching the package. Listing names needs no import (the Snakefile lists methods without
torch); loading imports the file and returns its single subclass of the contract's base class.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
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
    """Built-in plug-ins (name → module) plus the files of an optional folder, of one contract."""

    def __init__(self, what: str, base: str, builtins: dict[str, str], env_variable: str) -> None:
        self.what = what  # "task", "dataset adapter"
        self.base = base  # "module:Class" of the contract, imported on first load
        self.builtins = builtins
        self.env_variable = env_variable

    def folder(self) -> Path | None:
        return folder_from_env(self.env_variable)

    def names(self) -> list[str]:
        """Every available name: built-ins first, then the folder's files."""
        extra = file_names(self.folder())
        clash = sorted(set(extra) & set(self.builtins))
        if clash:
            raise ConfigError(
                f"{self.what} file(s) {clash} in ${self.env_variable} = {self.folder()} "
                f"reuse built-in {self.what} names; rename the file(s)"
            )
        return [*self.builtins, *extra]

    def source(self, name: str) -> Path:
        """The file that defines ``name``."""
        if name in self.builtins:
            spec = importlib.util.find_spec(self.builtins[name])
            assert spec and spec.origin
            return Path(spec.origin)
        folder = self.folder()
        path = folder / f"{name}.py" if folder else None
        if path is None or not path.is_file():
            raise ConfigError(f"unknown {self.what} {name!r}; available: {', '.join(self.names())}")
        return path

    def load(self, name: str) -> type:
        """Import the plug-in and return its class, its ``name`` set from the file name."""
        module_name, _, class_name = self.base.partition(":")
        base = getattr(importlib.import_module(module_name), class_name)
        path = self.source(name)
        if name in self.builtins:
            module = importlib.import_module(self.builtins[name])
        else:
            # the module name carries the file's path, so another folder's file of the same name is another module
            digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
            try:
                module = import_file(path, f"fusebench_{self.env_variable.lower()}.{name}_{digest}")
            except Exception as exc:
                raise ConfigError(f"{self.what} file {path} cannot be imported: {type(exc).__name__}: {exc}") from None
        cls = single_subclass(module, base, path)
        cls.name = name
        cls.source = str(path)
        return cls
