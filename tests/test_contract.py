"""The method contract: every file in baselines/ runs pretrain → finetune → evaluate.

Parametrised over the files found, so a new method is tested without anyone writing a test.
`fusebench new-method` output must pass the same contract.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmark.config import TASKS, stage_spec
from benchmark.registry import load_method, method_names
from benchmark.stages import run_evaluate, run_finetune, run_pretrain, run_robustness
from tests.conftest import REPO


def _tiny_config(smoke_config: dict[str, Any]) -> dict[str, Any]:
    optim = {"steps": 6, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.0, "warmup_steps": 1,
             "grad_clip": 1.0, "checkpoint_every": 3}
    return {**smoke_config, "pretrain": optim, "finetune": {task: optim for task in TASKS},
            "evaluate": {**smoke_config["evaluate"], "batch_size": 16,
                         "retrieval": {**smoke_config["evaluate"]["retrieval"], "max_images": 12,
                                       "exhaustive_max_images": 6, "shortlist_k": 4}},
            "robustness": {**smoke_config["robustness"], "max_images": 8, "severities": [2],
                           "image": ["contrast"], "text": ["char_swap"], "missing": ["image", "text"]}}


def check_contract(method: str, config: dict[str, Any], data: Path, tokenizer: Path, out: Path) -> None:
    cls = load_method(method)
    assert cls.paper and cls.family and cls.__doc__, f"{method}: needs a docstring, family and paper"
    spec = stage_spec(config, "pretrain", dataset="scenes", method=method, seed=0)
    run_pretrain(spec, data, tokenizer, out / "pretrain")
    result = json.loads((out / "pretrain" / "result.json").read_text())
    assert result["efficiency"]["parameters"] > 0
    assert all(v == v for p in result["train"]["history"] for v in p.values()), "non-finite pretraining loss"
    for task in TASKS:
        spec = stage_spec(config, "finetune", dataset="scenes", method=method, seed=0, task=task)
        run_finetune(spec, data, tokenizer, out / "pretrain" / "model.safetensors", out / task)
        spec = stage_spec(config, "evaluate", dataset="scenes", method=method, seed=0, task=task)
        run_evaluate(spec, data, tokenizer, out / task / "model.safetensors", out / f"{task}.json")
        rows = json.loads((out / f"{task}.json").read_text())["rows"]
        assert rows and {r["method"] for r in rows} == {method}
        if task in cls.tasks:
            computed = [r for r in rows if r["status"] == "ok"]
            assert all(0.0 <= r["value"] <= 1.0 for r in computed), rows
            # only stats without ground truth on this set (COCO's medium/large areas) may be undefined
            undefined = {r["metric"] for r in rows if r["status"] != "ok"}
            assert all(r["value"] is None and r["status"].startswith("undefined") for r in rows if r["status"] != "ok")
            assert not undefined & {"AP", "AP50", "mIoU", "mean_R", "t2i_R@1"}, undefined
        else:
            assert all(r["value"] is None and r["status"].startswith("not applicable: ") for r in rows)
        spec = stage_spec(config, "robustness", dataset="scenes", method=method, seed=0, task=task)
        run_robustness(spec, data, tokenizer, out / task / "model.safetensors", out / f"{task}.robustness.json")
        rows = json.loads((out / f"{task}.robustness.json").read_text())["rows"]
        cells = {(r["corruption"], r["severity"]) for r in rows}
        assert cells == {("none", 0), ("contrast", 2), ("char_swap", 2), ("missing_image", 2), ("missing_text", 2)}
        for r in rows:  # every cell is measured, undefined, or says why it could not be run
            assert r["status"] == "ok" or r["status"].startswith(("not applicable: ", "undefined")), r
        if task == "grounding" and task in cls.tasks:
            missing = {r["corruption"]: r["status"] for r in rows if r["corruption"].startswith("missing") and r["metric"] == "AP"}
            assert all(s == "ok" or "cannot run without the" in s for s in missing.values()), missing


@pytest.mark.parametrize("method", method_names())
def test_method_contract(method: str, smoke_config: dict, tiny_dataset: Path, tiny_tokenizer_file: Path,
                         tmp_path: Path) -> None:
    check_contract(method, _tiny_config(smoke_config), tiny_dataset, tiny_tokenizer_file, tmp_path)


def test_new_method_template_passes_the_contract(
    smoke_config: dict, tiny_dataset: Path, tiny_tokenizer_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    result = subprocess.run([sys.executable, "-m", "benchmark", "new-method", "gated_fusion", "--dir", str(baselines)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert (baselines / "gated_fusion.py").is_file()
    again = subprocess.run([sys.executable, "-m", "benchmark", "new-method", "gated_fusion", "--dir", str(baselines)],
                           capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = subprocess.run([sys.executable, "-m", "benchmark", "new-method", "Gated-Fusion", "--dir", str(baselines)],
                         capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "lower_snake_case" in bad.stderr
    monkeypatch.setenv("FUSEBENCH_BASELINES", str(baselines))
    check_contract("gated_fusion", _tiny_config(smoke_config), tiny_dataset, tiny_tokenizer_file, tmp_path / "run")
