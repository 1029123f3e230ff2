"""A method trained only by fine-tuning (``training_stages = ("finetune",)``): a published CLIP fine-tuned for
retrieval from its own weights, with no FuseBench pretraining job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmark.config import stage_spec
from benchmark.stages import run_evaluate, run_finetune
from tests.helpers import PLUGIN


@pytest.fixture()
def plugin_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "baselines"  # adds its method to the built-ins
    folder.mkdir()
    (folder / "finetuned_clip.py").write_text(PLUGIN)
    monkeypatch.setenv("FUSEBENCH_BASELINES", str(folder))
    return folder


def test_finetuned_from_own_weights_without_pretraining(
    plugin_folder: Path, smoke_config: dict[str, Any], tiny_dataset: Path, tiny_tokenizer_file: Path, tmp_path: Path
) -> None:
    from benchmark.registry import method_schedule
    from tests.published_fixtures import build_clip

    weights = build_clip(tmp_path / "clip")
    assert method_schedule("finetuned_clip").training_stages == ("finetune",)
    optim = {**smoke_config["finetune"]["retrieval"], "steps": 30, "batch_size": 8, "lr": 1e-3, "warmup_steps": 1}
    config = {
        **smoke_config,
        "finetune": {**smoke_config["finetune"], "retrieval": optim},
        "method_overrides": {"finetuned_clip": {"pretrained": str(weights)}},
    }
    job = {"dataset": "scenes", "method": "finetuned_clip", "seed": 0, "task": "retrieval"}
    spec = stage_spec(config, "finetune", **job)
    assert "pretrained_on" not in spec and spec["overrides"] == {"pretrained": str(weights)}
    run_finetune(spec, tiny_dataset, tiny_tokenizer_file, None, tmp_path / "finetune")
    trained = json.loads((tmp_path / "finetune" / "result.json").read_text())
    history = [step["loss"] for step in trained["train"]["history"]]
    assert history[-1] < history[0], history  # the published weights learn on the task
    assert trained["weights"]["model"]["source"] == str(weights)
    spec = stage_spec(config, "evaluate", **job)
    assert not spec.get("zero_shot")
    run_evaluate(spec, tiny_dataset, tiny_tokenizer_file, tmp_path / "finetune" / "model.safetensors", tmp_path / "e")
    result = json.loads((tmp_path / "e").read_text())
    assert {r["status"] for r in result["rows"]} == {"ok"}
    assert result["protocol"]["weights"]["model"]["source"] == str(weights)
