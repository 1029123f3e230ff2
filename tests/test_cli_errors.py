"""The CLI's exit codes (README, benchmark.errors.EXIT_CODES) through a real stage: 1 for a crash inside a method,
with its traceback; 2 for a configuration error; 3 for a missing input; 5 for a non-finite loss (4, a mismatched
input: tests/test_mislabelled_inputs.py). Snakemake and users rely on them to tell a bug from a bad config or a
missing file; a known failure ends with one line, its traceback shown only with ``-v``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, config_args, fusebench_process, job_args

CRASHING_METHOD = '''"""Test stub whose pretraining crashes, written by tests/test_cli_errors.py."""

from typing import Any

import torch

from benchmark.models import BuildContext, FusionMethod


class Crashing(FusionMethod):
    family = "test stub"
    paper = "none: it crashes"
    defaults: dict[str, Any] = {"objectives": {"itc": 1.0}}

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__(ctx, **overrides)
        self.weight = torch.nn.Parameter(torch.zeros(1))  # something to optimise

    def pretrain_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        raise RuntimeError("boom inside the method")
'''

DIVERGING_METHOD = CRASHING_METHOD.replace(
    'raise RuntimeError("boom inside the method")', 'return {"itc": self.weight.sum() / 0.0 * 0.0}'
)

METHOD = "cli_crashing_stub"


def _pretrain(
    tmp_path: Path, data: Path, tokenizer: Path, *extra: str, source: str = CRASHING_METHOD, verbose: bool = False
) -> subprocess.CompletedProcess[str]:
    """``python -m benchmark pretrain`` of a stub method (crashing by default), as by hand (README "Every stage by
    hand")."""
    baselines = tmp_path / "baselines"
    baselines.mkdir(exist_ok=True)
    (baselines / f"{METHOD}.py").write_text(source)
    argv = [*(["-v"] if verbose else []), "pretrain", *config_args(), *extra]
    argv += job_args(METHOD, data, tmp_path / "out", tokenizer)
    return fusebench_process(*argv, env={**os.environ, "FUSEBENCH_BASELINES": str(baselines)})


def test_crash_inside_a_method_exits_1_with_its_traceback(
    tmp_path: Path, tiny_dataset: Path, tiny_tokenizer_file: Path
) -> None:
    result = _pretrain(tmp_path, tiny_dataset, tiny_tokenizer_file)
    assert result.returncode == 1, result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "in pretrain_losses" in result.stderr  # the method's own frame is shown
    assert "fusebench: pretrain failed: RuntimeError: boom inside the method" in result.stderr.splitlines()
    assert not (tmp_path / "out" / "model.safetensors").exists()
    assert not (tmp_path / "out" / "result.json").exists()


@pytest.mark.parametrize(
    "problem, code, message",
    [
        ("config", 2, "fusebench: configuration error: "),
        ("data", 3, "fusebench: input error: "),
    ],
    ids=["config-error-exits-2", "missing-data-exits-3"],
)
def test_config_and_input_errors_exit_2_and_3_without_a_traceback(
    tmp_path: Path, tiny_dataset: Path, tiny_tokenizer_file: Path, problem: str, code: int, message: str
) -> None:
    missing = tmp_path / "no_such_data"
    if problem == "config":
        result = _pretrain(tmp_path, tiny_dataset, tiny_tokenizer_file, "--set", "pretrain.lr=fast")
    else:
        result = _pretrain(tmp_path, missing, tiny_tokenizer_file)
    assert result.returncode == code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert ("pretrain.lr" if problem == "config" else str(missing)) in result.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("verbose", [False, True], ids=["one-line", "traceback-with-v"])
def test_non_finite_loss_exits_5_with_one_line(
    tmp_path: Path, tiny_dataset: Path, tiny_tokenizer_file: Path, verbose: bool
) -> None:
    result = _pretrain(tmp_path, tiny_dataset, tiny_tokenizer_file, source=DIVERGING_METHOD, verbose=verbose)
    assert result.returncode == 5, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"fusebench: training diverged: pretrain {METHOD} seed=0: non-finite loss at step 0")
    assert ("Traceback (most recent call last)" in result.stderr) == verbose
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_commands_that_write_act_on_the_checkout_of_the_current_directory(tmp_path: Path) -> None:
    """``new-method`` writes into the checkout holding the current directory, not the one the
    imported package comes from; outside any checkout it refuses, naming both paths."""

    fusebench = Path(sys.executable).parent / "fusebench"  # the console script: imports the installed package
    other = tmp_path / "other_clone"
    for marker in ("benchmark", "baselines", "workflows"):
        (other / marker).mkdir(parents=True)
    (other / "Snakefile").write_text("# a FuseBench checkout\n")
    env = {k: v for k, v in os.environ.items() if k != "FUSEBENCH_BASELINES"}
    result = subprocess.run(
        [str(fusebench), "new-method", "my_fusion"],
        capture_output=True,
        text=True,
        cwd=other / "workflows",
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (other / "baselines" / "my_fusion.py").is_file()
    assert not (REPO / "baselines" / "my_fusion.py").exists()
    outside = tmp_path / "not_a_checkout"
    outside.mkdir()
    result = subprocess.run(
        [str(fusebench), "new-method", "my_fusion"], capture_output=True, text=True, cwd=outside, env=env, timeout=120
    )
    assert result.returncode == 2
    assert str(outside) in result.stderr and str(REPO) in result.stderr
