"""Discover methods from ``baselines/`` and ``$FUSEBENCH_BASELINES``: the file name is the method name, nothing to
register.

A method file must define exactly one :class:`FusionMethod` subclass; files starting with ``_`` are private
helpers. The methods are the built-in files of ``baselines/`` plus the files of ``$FUSEBENCH_BASELINES``, a file
there with a built-in's name overriding the built-in — the rule of every plug-in kind (:mod:`benchmark.plugins`);
:func:`method_path` is the file that defines a method. Listing names needs no import (the Snakefile does it
without torch); loading a method imports its file. What the workflow must know to schedule a
method — the stages it is trained in (``training_stages``) and the weights a published model reads
(``defaults["pretrained"]``) — is read from the file's syntax tree and those of its base classes
(:func:`declared_attributes` follows inheritance), so it needs no import either; :func:`load_method`
checks that the class agrees with what was read. Tasks and dataset adapters plug in the same
way (:mod:`benchmark.plugins`).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.errors import MethodError
from benchmark.paths import REPO_ROOT
from benchmark.plugins import (
    NAME_PATTERN,
    file_names,
    folder_from_env,
    import_file,
    module_name,
    plugin_names,
    single_subclass,
    user_file,
)

if TYPE_CHECKING:
    from benchmark.models.method import FusionMethod

__all__ = [
    "BUILTIN_METHODS",
    "NAME_PATTERN",
    "MethodSchedule",
    "built_from",
    "load_method",
    "method_names",
    "method_path",
    "method_schedule",
]

TRAINING_CHOICES = (("pretrain", "finetune"), ("finetune",), ())
"""What ``FusionMethod.training_stages`` may be: trained from scratch, fine-tuned from its own weights, zero-shot."""


BUILTIN_METHODS = REPO_ROOT / "baselines"
"""The built-in method files."""
METHODS_VARIABLE = "FUSEBENCH_BASELINES"
"""Names the user's folder of method files: they add to the built-ins, and override a built-in of the same name."""


def user_methods_dir() -> Path | None:
    """The folder ``$FUSEBENCH_BASELINES`` names, or None when it is unset."""
    return folder_from_env(METHODS_VARIABLE)


def method_names(directory: Path | None = None) -> list[str]:
    """The available methods, sorted: ``baselines/``'s files and ``$FUSEBENCH_BASELINES``'s (or ``directory``'s
    files alone)."""
    if directory is not None:
        return file_names(directory)
    return sorted(plugin_names(file_names(BUILTIN_METHODS), user_methods_dir()))


def method_path(name: str, directory: Path | None = None) -> Path:
    """The file that defines method ``name``: ``$FUSEBENCH_BASELINES/<name>.py`` when the user's folder has it
    (a new method, or an override of the built-in), else ``baselines/<name>.py``; with ``directory``, that
    folder's file. A :class:`MethodError` names an unknown method and the available ones."""
    if directory is not None:
        path = directory / f"{name}.py"
    else:
        path = user_file(user_methods_dir(), name) or BUILTIN_METHODS / f"{name}.py"
    if not path.is_file():
        where = directory or f"baselines/ or ${METHODS_VARIABLE}"
        raise MethodError(
            f"unknown method {name!r}: no {name}.py in {where}; available: {', '.join(method_names(directory))}"
        )
    return path


def built_from(record: Mapping[str, Any]) -> str:
    """The method file a job spec or checkpoint metadata is built from: a variant's ``base_method``, else its
    ``method`` (:func:`benchmark.config.grid.base_method`). Its random streams are named by this too, so a
    variant without overrides trains bit for bit as its base."""
    return str(record.get("base_method") or record["method"])


def load_method(name: str, directory: Path | None = None) -> type[FusionMethod]:
    """Import the file of method ``name`` (:func:`method_path`) and return its single FusionMethod subclass."""
    from benchmark.models.method import FusionMethod

    path = method_path(name, directory)
    module = import_file(path, module_name("fusebench_baselines", name, path))
    cls = single_subclass(module, FusionMethod, path, MethodError)
    cls.name = name
    if not cls.paper or not cls.family:
        raise MethodError(f"{path}: {cls.__name__} must set 'family' and 'paper'")
    if not (module.__doc__ or "").strip():
        raise MethodError(f"{path} needs a module docstring naming the paper it follows and where it departs from it")
    if not cls.__doc__:
        cls.__doc__ = module.__doc__
    schedule = method_schedule(name, directory)
    declared = declared_attributes(path).get("defaults")
    if declared != NOT_LITERAL and declared is not None and declared != cls.defaults:
        raise MethodError(
            f"{path}: {cls.__name__}.defaults is {cls.defaults!r} but its class body, read without importing the "
            f"file, says {declared!r}; write the defaults as a literal dict (extending a base's with "
            "{**Base.defaults, ...})"
        )
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
    """``training_stages`` and ``defaults["pretrained"]`` of method ``name``'s file, read without importing it.

    Read by :func:`declared_attributes`: a method inherits them from its base (``PublishedMethod`` is zero-shot
    and reads ``"pretrained"`` weights) or assigns literals in its class body; :func:`load_method` refuses a
    class that disagrees with what was read.
    """
    path = method_path(name, directory)
    return _schedule_of(path, path.stat().st_mtime_ns)


@functools.cache
def _schedule_of(path: Path, _mtime: int) -> MethodSchedule:
    declared = declared_attributes(path)
    found: dict[str, Any] = {}
    if "training_stages" in declared:
        try:
            found["training_stages"] = tuple(declared["training_stages"])
        except TypeError:
            raise MethodError(f"{path}: 'training_stages' must be a literal tuple, e.g. () or ('finetune',)") from None
    defaults = declared.get("defaults")
    if isinstance(defaults, dict) and "pretrained" in defaults:
        found["published"] = True
        found["pretrained"] = defaults["pretrained"]
    schedule = MethodSchedule(**found)
    if schedule.training_stages not in TRAINING_CHOICES:
        raise MethodError(
            f"{path}: training_stages = {schedule.training_stages!r} is not supported; "
            f"choose one of {', '.join(repr(c) for c in TRAINING_CHOICES)}"
        )
    return schedule


NOT_LITERAL = "<not a literal>"
"""What the reader records for a class attribute (or a ``defaults`` value) it cannot evaluate without importing."""
READ_ATTRIBUTES = ("training_stages", "defaults")
"""The class attributes the workflow reads from a method's syntax tree."""


def declared_attributes(path: Path, class_name: str | None = None) -> dict[str, Any]:
    """``training_stages`` and ``defaults`` of the method class in ``path`` (or of ``class_name`` there), read from
    the syntax trees of its file and of its base classes' modules, without importing any of them.

    The reader follows inheritance as Python does: an attribute the class does not assign comes from its first
    base that has it (a base defined in the same file, or imported from a ``benchmark`` module, whose source is
    found under the package without importing it). A ``defaults`` dict may extend a base's with
    ``{**Base.defaults, "key": value}``, so a published method states only what it adds. A value that is not a
    literal is recorded as :data:`NOT_LITERAL`; :func:`load_method` checks that the imported class agrees.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    imported = _imported_names(tree)
    if class_name is None:
        class_name = _method_class_name(classes, imported)
    node = classes.get(class_name or "")
    if node is None:  # re-exported by this module (``from benchmark.models import FusionMethod``): follow it
        return _module_class_attributes(imported.get(class_name or ""), class_name)
    bases = [_base_attributes(base, path, classes, imported) for base in node.bases]
    attributes: dict[str, Any] = {}
    for base in reversed(bases):  # the first base wins, as in Python's method resolution for single chains
        attributes.update(base)
    for statement in node.body:
        target, value = _assignment(statement)
        if target in READ_ATTRIBUTES and value is not None:
            attributes[target] = _evaluate(
                value, {b.id: a for b, a in zip(node.bases, bases) if isinstance(b, ast.Name)}
            )
    return attributes


def _method_class_name(classes: dict[str, ast.ClassDef], imported: dict[str, str]) -> str | None:
    """The class of a method file: the one derived, directly or through the file's own classes, from a class
    imported from ``benchmark.models`` (FusionMethod, PublishedMethod); helper modules (``nn.Module``) are not.
    Without such a class (its base is computed at run time), the last class of the file."""

    def is_method(name: str, seen: frozenset[str] = frozenset()) -> bool:
        bases = [b.id for b in classes[name].bases if isinstance(b, ast.Name)]
        return any(
            imported.get(b, "").startswith("benchmark.models")
            or (b in classes and b not in seen and is_method(b, seen | {name}))
            for b in bases
        )

    methods = [name for name in classes if is_method(name)]
    if methods:
        return methods[-1]
    return list(classes)[-1] if classes else None  # a base the reader cannot see (e.g. one loaded at run time)


def _imported_names(tree: ast.Module) -> dict[str, str]:
    """Name → module of every ``from benchmark... import Name`` at the top level of ``tree``."""
    return {
        alias.asname or alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("benchmark.")
        for alias in node.names
    }


def _base_attributes(
    base: ast.expr, path: Path, classes: dict[str, ast.ClassDef], imported: dict[str, str]
) -> dict[str, Any]:
    """The read attributes of one base class: defined in the same file, or in a ``benchmark`` module."""
    if not isinstance(base, ast.Name):
        return {}
    if base.id in classes:
        return declared_attributes(path, base.id)
    return _module_class_attributes(imported.get(base.id), base.id)


def _module_class_attributes(module: str | None, class_name: str | None) -> dict[str, Any]:
    """The read attributes of ``class_name`` in the ``benchmark`` module ``module``, found without importing it."""
    if module is None or class_name is None:
        return {}
    source = REPO_ROOT.joinpath(*module.split("."))
    source = source / "__init__.py" if source.is_dir() else source.with_suffix(".py")
    return declared_attributes(source, class_name) if source.is_file() else {}


def _evaluate(value: ast.expr, bases: dict[str, dict[str, Any]]) -> Any:
    """A literal, or a dict display whose ``**Base.defaults`` entries unpack a base's read ``defaults``."""
    if isinstance(value, ast.Dict):
        result: dict[Any, Any] = {}
        for key, item in zip(value.keys, value.values):
            if key is None:  # **mapping
                spread = _spread(item, bases)
                if spread is None:
                    return NOT_LITERAL
                result.update(spread)
                continue
            try:
                result[ast.literal_eval(key)] = _evaluate(item, bases)
            except ValueError:
                return NOT_LITERAL
        return result
    try:
        return ast.literal_eval(value)
    except ValueError:
        return NOT_LITERAL


def _spread(item: ast.expr, bases: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The read ``defaults`` of ``Base`` for ``**Base.defaults`` (``Base`` one of the class's bases), else None."""
    if isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name) and item.attr == "defaults":
        defaults = bases.get(item.value.id, {}).get("defaults")
        return dict(defaults) if isinstance(defaults, dict) else None
    return None


def _assignment(statement: ast.stmt) -> tuple[str | None, ast.expr | None]:
    """(name, value) of ``name = value`` or ``name: T = value`` in a class body."""
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
        return statement.targets[0].id, statement.value
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value is not None:
        return statement.target.id, statement.value
    return None, None
