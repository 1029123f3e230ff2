"""One command recovers after a kill: `make run` again continues where the run stopped.

A run killed with SIGKILL (or on a lost node) leaves Snakemake's lock and its incomplete-job
markers behind. The workflow profile (profiles/default/profile.yaml) reruns incomplete jobs,
`make run` removes the lock when no run can hold it, and a training job resumes from its last
training state, so the tables equal those of a run that never stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import REPO, SMOKE, SMOKE_TIMEOUT_S, run, snakemake

ONE_METHOD = {
    "methods": ["contrastive_clip"],
    "tasks": ["retrieval"],
    "pretrain": {"steps": 300, "checkpoint_every": 10},
    "validation": {"patience": None},  # every step runs: the kill must find a training state at step 290
}
"""The smoke profile cut to one pretraining job, long enough to be killed after its first training state
(early stopping off, so that it runs to its last training state; tests/test_early_stopping.py resumes with it on)."""
PRETRAIN = Path("results/smoke/scenes/pretrain/contrastive_clip/seed0")
STATE = PRETRAIN / "training_state.partial.safetensors"


def needs_make_and_proc() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    if not Path("/proc/self/mountinfo").exists():
        pytest.skip("no /proc: `make run` cannot prove a lock is stale here")


def make_run(workdir: Path, *snakemake_args: str) -> list[str]:
    """README's `make run` on ``workdir`` (smoke profile + one-method overlay), with this interpreter's Snakemake."""
    return [
        "make",
        "--no-print-directory",
        "-C",
        str(REPO),
        "--assume-old=.venv/.fusebench-installed",  # never reinstall the venv from a test
        "run",
        f"BIN={Path(sys.executable).parent}",
        "CORES=2",
        f"WORKDIR={workdir}",
        f"SNAKEMAKE_ARGS={' '.join(['--configfile', str(SMOKE), str(workdir / 'one.yaml'), *snakemake_args])}",
    ]


def prepared(workdir: Path) -> dict[str, str]:
    """The overlay and method files in ``workdir``; the environment to run make in."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "one.yaml").write_text(yaml.safe_dump(ONE_METHOD))
    shutil.copytree(REPO / "baselines", workdir / "baselines", dirs_exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # from `make test`
    return {**env, "FUSEBENCH_BASELINES": str(workdir / "baselines")}


def kill_when(path: Path, command: list[str], env: dict[str, str], log: Path) -> None:
    """Start ``command`` in its own process group; SIGKILL the whole group as soon as ``path`` exists."""
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + SMOKE_TIMEOUT_S
    try:
        while not path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the run was not killed: {path} did not appear while it ran\n{log.read_text()[-3000:]}")
            time.sleep(0.005)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group is gone if the run ended by itself
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main_table(workdir: Path) -> pd.DataFrame:
    return pd.read_csv(workdir / "results" / "smoke" / "tables" / "main.csv", comment="#")  # '#': run date


def test_make_run_after_a_kill_resumes_with_the_numbers_of_an_unbroken_run(tmp_path: Path) -> None:
    needs_make_and_proc()
    unbroken, killed = tmp_path / "unbroken", tmp_path / "killed"
    prepared(unbroken)
    result = snakemake(unbroken, overlays=(unbroken / "one.yaml",))  # the plain `snakemake` command
    assert result.returncode == 0, result.stderr[-4000:]

    env = prepared(killed)
    kill_when(killed / STATE, make_run(killed), env, killed / "run1.log")  # pretraining mid-way
    assert list((killed / ".snakemake" / "locks").glob("*.lock")), "the kill should leave Snakemake's lock"
    assert not (killed / PRETRAIN / "model.safetensors").exists()

    # The same command again, killed once the resumed job wrote its first output: an incomplete
    # output now exists, which stops a plain Snakemake run without the workflow profile.
    kill_when(killed / PRETRAIN / "model.safetensors", make_run(killed), env, killed / "run2.log")
    assert "make: removing the lock a stopped run left in" in (killed / "run2.log").read_text()
    plain = snakemake(killed, "--dry-run", "--workflow-profile", "none", overlays=(killed / "one.yaml",))
    said = plain.stdout + plain.stderr  # a dry run reports on stdout
    assert plain.returncode != 0 and "IncompleteFilesException" in said, said[-3000:]

    result = run(make_run(killed), env=env)  # the same command, nothing added
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "make: removing the lock a stopped run left in" in result.stdout
    train = json.loads((killed / PRETRAIN / "result.json").read_text())["train"]
    last_state = ONE_METHOD["pretrain"]["steps"] - ONE_METHOD["pretrain"]["checkpoint_every"]
    assert train["resumed_from"] == last_state  # its incomplete model was deleted, its training state kept
    assert not (killed / STATE).exists()  # removed once the model is written
    pd.testing.assert_frame_equal(main_table(killed), main_table(unbroken), check_exact=True)


def test_make_run_keeps_the_lock_of_a_run_working_in_the_folder(tmp_path: Path) -> None:
    """A process named snakemake working in the folder: its lock is left to Snakemake to enforce."""
    needs_make_and_proc()
    env = prepared(tmp_path)
    lock = tmp_path / ".snakemake" / "locks" / "0.output.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("results/smoke/tables/main.csv\n")
    sleeper = subprocess.Popen(["snakemake", "600"], executable=shutil.which("sleep"), cwd=tmp_path)
    try:
        result = run(make_run(tmp_path, "--dry-run"), env=env, timeout=300)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"make: a run is working in {tmp_path.resolve()} (pid {sleeper.pid}); its lock stays" in result.stdout
    assert lock.exists()


def test_the_workflow_profile_reruns_incomplete_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Snakemake finds profiles/default/ beside the Snakefile from any folder: --rerun-incomplete is the default."""
    from snakemake.cli import parse_args

    monkeypatch.chdir(tmp_path)
    _, args = parse_args(["--snakefile", str(REPO / "Snakefile"), "--cores", "1", "--directory", str(tmp_path)])
    assert args.rerun_incomplete is True
    _, args = parse_args(["--snakefile", str(REPO / "Snakefile"), "--cores", "1", "--workflow-profile", "none"])
    assert args.rerun_incomplete is False
