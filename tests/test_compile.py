"""``compile``: the training step runs through torch.compile with the configured backend.

The ``eager`` backend captures the same graph as inductor (dynamo) but runs it without generating code,
so the losses must equal the uncompiled run's; inductor itself needs a C++ compiler or a GPU and is the
paper profile's choice (``scripts/gpu-check.sh`` runs it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.config import load_config, stage_spec
from benchmark.hashing import config_hash
from benchmark.stages import run_pretrain


def test_a_compiled_training_step_trains_like_the_eager_one(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path
) -> None:
    config = {**smoke_config, "pretrain": {**smoke_config["pretrain"], "steps": 10, "batch_size": 16}}
    plain = stage_spec(config, "pretrain", dataset="scenes", method="contrastive_clip", seed=0)
    compiled = stage_spec(
        {**config, "compile": "eager"}, "pretrain", dataset="scenes", method="contrastive_clip", seed=0
    )
    assert "compile" not in plain and compiled["compile"] == "eager"
    assert config_hash(plain) != config_hash(compiled)
    for name, spec in (("plain", plain), ("compiled", compiled)):
        run_pretrain(spec, tiny_dataset, tiny_tokenizer_file, tmp_path / name)
    history = {
        n: json.loads((tmp_path / n / "result.json").read_text())["train"]["history"] for n in ("plain", "compiled")
    }
    assert [p["loss"] for p in history["compiled"]] == pytest.approx([p["loss"] for p in history["plain"]], rel=1e-5)


def test_compile_is_off_by_default_and_on_in_the_paper_profile() -> None:
    assert load_config()["compile"] is None
    assert load_config([Path("workflows/config/paper.yaml")])["compile"] == "inductor"
