"""The SLURM workflow profile (``profiles/slurm/``), by dry runs that cannot reach a cluster.

A dry run with ``executor: slurm`` loads the plugin, which may query SLURM but must submit nothing
(installed, the plugin asks ``scontrol show config`` on every Snakemake run, with or without the
profile, and copes with its failure). Every SLURM command is therefore a stub on PATH that records its
call and fails loudly; the tests check that no submission was attempted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO, SMOKE

SLURM_COMMANDS = ("sbatch", "srun", "salloc", "squeue", "sacct", "scancel", "sinfo", "scontrol", "sacctmgr", "sshare")
SUBMITTING = ("sbatch", "srun", "salloc")
GPU_RULES = ("pretrain", "finetune", "evaluate", "robustness")
"""The rules declaring the ``gpu`` resource (workflows/rules/train.smk, evaluate.smk)."""
PLACEHOLDERS = {
    "FUSEBENCH_SLURM_ACCOUNT": "test_account",
    "FUSEBENCH_SLURM_PARTITION": "test_cpu",
    "FUSEBENCH_SLURM_GPU_PARTITION": "test_gpu",
}


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The smoke dry run with the SLURM profile and without it, under SLURM stubs that log and fail."""
    root = tmp_path_factory.mktemp("slurm")
    stubs, calls = root / "slurm-stubs", root / "slurm-calls.log"
    stubs.mkdir()
    for name in SLURM_COMMANDS:
        stub = stubs / name
        stub.write_text(
            f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n'
            f'echo "stub {name}: no SLURM here, and a dry run must not submit" >&2\nexit 1\n'
        )
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}", **PLACEHOLDERS}
    slurm = dry_run(root / "with-profile", env, "--workflow-profile", "profiles/slurm")
    local = dry_run(root / "default", env)
    return {"slurm": slurm, "local": local, "calls": calls.read_text().splitlines() if calls.exists() else []}


def dry_run(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``snakemake -n`` on the smoke profile, from the checkout (as the README runs it), in ``workdir``."""
    command = [sys.executable, "-m", "snakemake", "-n", *args, "--directory", str(workdir), "--configfile", str(SMOKE)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def job_resources(result: subprocess.CompletedProcess) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job a dry run lists."""
    text = result.stdout + result.stderr
    jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", text, flags=re.M)
    return [(rule, dict(item.split("=", 1) for item in resources.split(", "))) for rule, resources in jobs]


def job_counts(result: subprocess.CompletedProcess) -> dict[str, int]:
    table = (result.stdout + result.stderr).split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M) if rule != "total"}


class _Resources(dict):
    """What the plugin reads of a job's resources: ``get`` and attribute access."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


def test_the_slurm_dry_run_plans_the_smoke_grid_and_submits_nothing(dry_runs: dict[str, Any]) -> None:
    slurm = dry_runs["slurm"]
    assert "Using workflow specific profile profiles/slurm" in slurm.stderr  # a wrong path is ignored silently
    assert job_counts(slurm) == job_counts(dry_runs["local"])
    assert {"pretrain", "finetune", "evaluate", "robustness", "aggregate"} <= set(job_counts(slurm))
    # the plugin may query SLURM, never submit
    assert not [call for call in dry_runs["calls"] if call.split()[0] in SUBMITTING], dry_runs["calls"]


def test_gpu_rules_request_one_gpu_on_the_gpu_partition_and_the_rest_none(dry_runs: dict[str, Any]) -> None:
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    jobs = job_resources(dry_runs["slurm"])
    assert {rule for rule, _ in jobs} >= {*GPU_RULES, "dataset", "aggregate"}
    for rule, resources in jobs:
        assert resources["slurm_account"] == "test_account"  # the placeholder, expanded from the environment
        gpu = rule in GPU_RULES
        assert resources["slurm_partition"] == ("test_gpu" if gpu else "test_cpu"), rule
        assert int(resources.get("gpu", 0)) == int(gpu), rule
        assert "gres" not in resources  # `gres` and `gpu` must not be combined (the plugin's docs)
        # what the plugin adds to the job's sbatch command line
        assert set_gres_string(type("Job", (), {"resources": _Resources(resources)})()) == (" --gpus=1" if gpu else "")


def test_without_the_profile_the_local_default_is_unchanged(dry_runs: dict[str, Any]) -> None:
    local = dry_runs["local"]
    assert "Using workflow specific profile profiles/default" in local.stderr
    assert "profiles/slurm" not in local.stderr
    jobs = job_resources(local)
    assert {rule for rule, _ in jobs} >= set(GPU_RULES)
    for rule, resources in jobs:
        assert "slurm_account" not in resources and "slurm_partition" not in resources, rule
        assert int(resources.get("gpu", 0)) == 0, rule  # the smoke profile's device: auto declares no GPU


def test_the_slurm_profile_keeps_what_the_default_profile_sets() -> None:
    """``--workflow-profile`` replaces profiles/default/, so the SLURM profile must restate its settings."""
    default = yaml.safe_load((REPO / "profiles" / "default" / "profile.yaml").read_text())
    slurm = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert slurm["executor"] == "slurm"
    assert {key: slurm.get(key) for key in default} == default
