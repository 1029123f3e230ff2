"""The function-local import rule of docs/architecture.md, read from the syntax tree of ``benchmark/``.

A function-local import is allowed only (a) for a heavy module kept out of the light path (what the Snakefile and
``fusebench --help`` import), from a module on that path, or (b) with a ``# local: <reason>`` comment on its
first line. Heavy means a third-party module in ``HEAVY`` or a ``benchmark`` module that imports one, directly or
through other modules, at its top level.

A second, wider path is the *planning path*: the task and dataset plug-in modules that ``load_config`` imports by
name (no import statement shows it) and what they import at top level. Planning a run must not load torch and its
kin (``TORCH_KIN``), so those, and only those, may be imported function-locally there."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

# What planning a run (the Snakefile's load_config, which reads every task's and adapter's defaults) must not load:
# torch and its kin.
TORCH_KIN = frozenset(
    {
        "torch",
        "torchvision",
        "timm",
        "transformers",
        "tokenizers",
        "datasets",
        "evaluate",
        "pycocotools",
        "safetensors",
        "huggingface_hub",
        "webdataset",
    }
)
# Third-party modules neither light entry point imports today (measured with ``python -X importtime``): torch and
# its kin, and the smaller ones that still cost tens of milliseconds at ``fusebench --help`` (numpy, PIL, jsonschema).
HEAVY = TORCH_KIN | {"matplotlib", "pandas", "scipy", "PIL", "numpy", "jsonschema", "braceexpand"}
# Plug-in packages whose modules load_config imports by name through PluginTable.load.
PLUGIN_PACKAGES = ("benchmark.tasks", "benchmark.datasets")
LOCAL_REASON = re.compile(r"#\s*local:\s*\S")
ENTRY_MODULES = ("benchmark.cli.entry",)
SNAKEMAKE_FILES = ("Snakefile", "workflows/rules/*.smk")


@dataclass(frozen=True)
class LocalImport:
    """One import statement inside a function."""

    module: str  # the importing module
    path: Path
    line: int
    end_line: int
    targets: tuple[str, ...]  # absolute names the statement imports (a submodule where ``from X import sub``)
    reason: bool  # a ``# local:`` comment on its first line


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> tuple[str, ...]:
    if isinstance(node, ast.Import):
        return tuple(alias.name for alias in node.names)
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    names = [base]
    names += [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
    return tuple(names)


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _in_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class Package:
    """Every module of the package, its top-level imports and its function-local imports."""

    def __init__(self, repo: Path, package: str = "benchmark") -> None:
        self.repo = repo
        self.paths = {module_name(repo, p): p for p in sorted((repo / package).rglob("*.py"))}
        known = set(self.paths)
        self.top: dict[str, set[str]] = {}
        self.local: list[LocalImport] = []
        for module, path in self.paths.items():
            text = path.read_text()
            lines = text.splitlines()
            tree = ast.parse(text, filename=str(path))
            is_package = path.name == "__init__.py"
            top: set[str] = set()
            self._walk(tree, module, path, is_package, known, lines, top, in_function=False)
            self.top[module] = top

    def _walk(self, node, module, path, is_package, known, lines, top, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and not in_function and _in_type_checking(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                targets = _targets(child, module, is_package, known)
                if in_function:
                    reason = bool(LOCAL_REASON.search(lines[child.lineno - 1]))
                    end = child.end_lineno or child.lineno
                    self.local.append(LocalImport(module, path, child.lineno, end, targets, reason))
                else:
                    top.update(targets)
                continue
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            self._walk(child, module, path, is_package, known, lines, top, inside)

    def _edges(self, module: str) -> set[str]:
        """The modules importing ``module`` runs: its top-level imports and their parent packages."""
        out: set[str] = set()
        for target in self.top.get(module, ()):
            out.update(_parents(target))
        out.discard(module)
        return out

    def heavy_roots(self, name: str) -> set[str]:
        """The heavy third-party modules importing ``name`` pulls in at top level."""
        found: set[str] = set()
        seen: set[str] = set()
        stack = _parents(name)
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            if current.split(".")[0] in HEAVY:
                found.add(current.split(".")[0])
            elif current in self.paths:
                stack.extend(self._edges(current))
        return found

    def light_path(self) -> set[str]:
        """The package modules the CLI's start-up and the Snakefile import, at top level, all the way down."""
        roots = list(ENTRY_MODULES)
        pattern = re.compile(r"^\s*(?:from|import)\s+(benchmark[\w.]*)", re.MULTILINE)
        for glob in SNAKEMAKE_FILES:
            for path in sorted(self.repo.glob(glob)):
                roots += pattern.findall(path.read_text())
        return self._reached([parent for root in roots for parent in _parents(root)])

    def plan_path(self) -> set[str]:
        """The package modules planning a run imports at top level: the plug-in modules and all they import."""
        return self._reached([m for m in self.paths if m.startswith(tuple(f"{p}." for p in PLUGIN_PACKAGES))])

    def _reached(self, roots: list[str]) -> set[str]:
        """The package modules importing ``roots`` runs, at top level, all the way down."""
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            current = stack.pop()
            if current in seen or current not in self.paths:
                continue
            seen.add(current)
            stack.extend(self._edges(current))
        return seen

    def verdict(self, item: LocalImport, light: set[str], plan: set[str] = frozenset()) -> str | None:
        """Why a local import may stay, or None where it must move to the top."""
        if item.reason:
            return "reason"
        if item.module in light and any(self.heavy_roots(t) for t in item.targets):
            return "heavy"
        if item.module in plan and any(self.heavy_roots(t) & TORCH_KIN for t in item.targets):
            return "torch"
        return None

    def violations(self) -> list[LocalImport]:
        light, plan = self.light_path(), self.plan_path()
        return [item for item in self.local if self.verdict(item, light, plan) is None]
