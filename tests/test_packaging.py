"""Packaging: pins agree between pyproject.toml and environment.yml; the CLI is declared."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.helpers import REPO


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", requirement.strip())
        assert match, f"not an exact pin: {requirement!r}"
        pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_environment_yml_pins_match_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert _pins(project["dependencies"]) == _pins(pip_section)
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert project["requires-python"] == ">=" + python.split("=", 1)[1]


def test_console_script_and_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["name"] == "fusebench"
    assert project["project"]["scripts"] == {"fusebench": "benchmark.cli:main"}


def test_every_rule_declares_the_conda_env() -> None:
    for path in (REPO / "workflows" / "rules").glob("*.smk"):
        text = path.read_text()
        assert text.count("\nrule ") == text.count("        CONDA_ENV"), path.name
