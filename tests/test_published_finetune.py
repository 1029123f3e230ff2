"""A method trained only by fine-tuning (``training_stages = ("finetune",)``): a published CLIP fine-tuned for
retrieval from its own weights, with no FuseBench pretraining job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmark.config import stage_spec
from benchmark.stages import run_evaluate, run_finetune

PLUGIN = '''"""CLIP fine-tuned for retrieval from its published weights (a test plug-in).

Follows Radford et al., ICML 2021: symmetric InfoNCE over the batch at a fixed temperature 0.07
(CLIP learns the temperature; fixed here to keep the plug-in minimal).
"""

from typing import Any

import torch
import torch.nn.functional as F

from benchmark.paths import REPO_ROOT
from benchmark.registry import load_method

Base = load_method("published_dual_encoder", REPO_ROOT / "baselines")


class FinetunedCLIP(Base):
    family = "dual encoder"
    paper = "Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021"
    training_stages = ("finetune",)
    defaults = {"objectives": {}, "pretrained": None, "text_padding": None, "max_length": None}

    def retrieval_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        logits = self.embed_image(batch["image"]) @ self.embed_text(batch["text"]).t() / 0.07
        target = torch.arange(len(logits), device=logits.device)
        return {"itc": (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2}
'''


@pytest.fixture()
def plugin_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import shutil

    from tests.conftest import REPO

    folder = tmp_path / "baselines"
    shutil.copytree(REPO / "baselines", folder)
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
