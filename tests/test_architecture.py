"""The layers of docs/architecture.md are enforced: import-linter's contracts (pyproject.toml) pass on the package and
fail on a copy of it that imports upwards or in a cycle, naming the import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.import_audit import HEAVY, TORCH_KIN, Package

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_copy(tmp_path: Path, edit: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on a copy of ``benchmark/`` and ``pyproject.toml``, after appending ``edit[1]`` to the module
    at ``edit[0]``; the copy shadows the installed package on PYTHONPATH."""
    shutil.copytree(REPO / "benchmark", tmp_path / "benchmark", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    if edit is not None:
        module, line = edit
        path = tmp_path / module
        path.write_text(path.read_text() + f"\n{line}\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_package_keeps_its_layers(tmp_path: Path) -> None:
    result = lint_copy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, line, broken",
    [
        (
            "benchmark/data/images.py",
            "from benchmark.stages import run_data",
            "benchmark.data.images -> benchmark.stages",
        ),
        ("benchmark/metrics/retrieval.py", "from benchmark.models import method", "benchmark.metrics.retrieval"),
        ("benchmark/paths.py", "from benchmark.io import read_json", "benchmark.paths -> benchmark.io"),
        ("benchmark/report/figures.py", "from benchmark.report import plots", "No import cycles"),
    ],
    ids=["data-imports-stages", "metrics-imports-models", "foundation-imports-core", "report-cycle"],
)
def test_an_upward_import_or_a_cycle_fails_lint(tmp_path: Path, module: str, line: str, broken: str) -> None:
    """An import inside a function counts too: the forbidden line is appended at the end of the module, and the
    same holds for one indented in a function (grimp reads every import statement)."""
    result = lint_copy(tmp_path, (module, line))
    assert result.returncode == 1, result.stdout
    assert "0 broken" not in result.stdout and broken in result.stdout, result.stdout


def test_a_function_local_upward_import_fails_lint(tmp_path: Path) -> None:
    body = "def _hidden():\n    from benchmark.config import load_config\n\n    return load_config"
    result = lint_copy(tmp_path, ("benchmark/data/tokenizer.py", body))
    assert result.returncode == 1 and "benchmark.data.tokenizer -> benchmark.config" in result.stdout, result.stdout


def test_test_modules_share_helpers_and_never_import_each_other() -> None:
    """Shared test code lives in tests/helpers.py (and the fixture builders beside it): a test module importing
    another test module, or conftest, would tie their tests together (issue 22, item 8)."""
    import ast

    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                if parts[0] == "tests" and any(p.startswith("test_") or p == "conftest" for p in parts[1:]):
                    offenders.append(f"{path.relative_to(REPO)}: imports {name}")
    assert offenders == []


def test_function_local_imports_follow_the_rule() -> None:
    """A function-local import stays only where it keeps a heavy module (torch, numpy, ...) out of what the
    Snakefile and ``fusebench --help`` import, or where a ``# local: <reason>`` comment says why; every other
    import is at the top of its module, where import-linter and a reader see it."""
    package = Package(REPO)
    bad = [f"{item.path.relative_to(REPO)}:{item.line} imports {item.targets[0]}" for item in package.violations()]
    assert not bad, "function-local imports without a reason (move them to the top):\n" + "\n".join(bad)


def test_the_light_path_imports_no_heavy_module() -> None:
    """What the Snakefile and the CLI's start-up import reaches no heavy module at top level (read from the syntax
    tree), and importing the CLI's entry point in a fresh interpreter loads none of them."""
    package = Package(REPO)
    heavy = {module: package.heavy_roots(module) for module in package.light_path()}
    assert not {module: roots for module, roots in heavy.items() if roots}
    probe = "import sys, benchmark.cli.entry; print(sorted(set(m.split('.')[0] for m in sys.modules) & HEAVY))"
    code = f"HEAVY = {sorted(HEAVY)!r}\n{probe}".replace("& HEAVY", "& set(HEAVY)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_planning_a_run_imports_no_torch() -> None:
    """The task and dataset plug-ins ``load_config`` imports by name, and what they import at top level, reach no
    module of torch's kin (``TORCH_KIN``): the Snakefile plans a run without loading torch."""
    package = Package(REPO)
    heavy = {module: package.heavy_roots(module) & TORCH_KIN for module in package.plan_path()}
    assert not {module: roots for module, roots in heavy.items() if roots}


def test_the_rule_names_an_unexplained_local_import(tmp_path: Path) -> None:
    """The scan fails on a local import of a light module, passes it with a ``# local:`` reason, and allows a heavy
    import only in a module on the light path."""
    shutil.copytree(REPO / "benchmark", tmp_path / "benchmark", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "benchmark" / "metrics" / "retrieval.py"
    original = target.read_text()
    shutil.copytree(REPO / "workflows" / "rules", tmp_path / "workflows" / "rules")
    shutil.copy(REPO / "Snakefile", tmp_path / "Snakefile")
    hidden = "\n\ndef _hidden():\n    {}\n\n    return 0\n"
    target.write_text(original + hidden.format("from benchmark.errors import ConfigError"))
    bad = Package(tmp_path).violations()
    assert [(item.path, item.targets) for item in bad] == [(target, ("benchmark.errors",))]
    assert bad[0].line == len(original.splitlines()) + 4
    target.write_text(original + hidden.format("import math  # local: a plug-in file"))
    assert Package(tmp_path).violations() == []
    target.write_text(original + hidden.format("import torch"))  # metrics.retrieval: the retrieval task imports it
    assert Package(tmp_path).violations() == []  # so planning a run (load_config) would load torch without this
    target.write_text(original)
    stopping = tmp_path / "benchmark" / "train" / "stopping.py"
    stopping.write_text(stopping.read_text() + hidden.format("import torch"))  # on neither path
    assert len(Package(tmp_path).violations()) == 1
    light = tmp_path / "benchmark" / "hashing.py"
    light.write_text(light.read_text() + hidden.format("import torch"))  # the Snakefile imports hashing
    assert len(Package(tmp_path).violations()) == 1
    light.write_text(light.read_text() + hidden.format("import json"))  # light: belongs at the top
    assert len(Package(tmp_path).violations()) == 2
