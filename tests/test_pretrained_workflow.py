"""The smoke workflow with pretrained towers and zero-shot published models, end to end through Snakemake.

Sources are tiny models saved here (no network): a timm ViT in timm's hub layout at 48 px (the smoke
data is 32 px, so every image is resized on the device to the tower's own resolution), a BERT folder
with its own WordPiece vocabulary, and the tiny CLIP / OWL-ViT checkpoints of
``tests/published_fixtures.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.helpers import planned_jobs, snakemake
from tests.pretrained_fixtures import save_bert

LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *LETTERS, *(f"##{c}" for c in LETTERS)]
"""Every lower-case word splits into letters: a tiny but complete WordPiece vocabulary."""
VIT = {"img_size": 48, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}


def save_vit(folder: Path) -> Path:
    """A tiny timm ViT in timm's hub layout (config.json with its architecture and args, model.safetensors)."""
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **VIT)
    save_for_hf(model, str(folder), safe_serialization=True, model_args=VIT)
    return folder


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    from tests.published_fixtures import build_clip, build_owlvit

    workdir = tmp_path_factory.mktemp("pretrained_workflow")
    weights = {
        "vision": save_vit(workdir / "weights" / "vit"),
        "text": save_bert(workdir / "weights" / "bert", VOCAB, layers=1, positions=64),
        "clip": build_clip(workdir / "weights" / "clip"),
        "owlvit": build_owlvit(workdir / "weights" / "owlvit"),
    }
    overlay = workdir / "pretrained.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "methods": ["contrastive_clip", "early_concat", "published_dual_encoder", "published_detector"],
                "model": {
                    "vision": {"init": str(weights["vision"]), "lr_multiplier": 0.5},
                    "text": {"init": str(weights["text"])},
                },
                "method_overrides": {
                    "early_concat": {"model": {"text": {"init": "random"}}},
                    "published_dual_encoder": {"pretrained": str(weights["clip"])},
                    "published_detector": {"pretrained": str(weights["owlvit"])},
                },
            }
        )
    )
    dry = planned_jobs(snakemake(workdir, "--dry-run", overlays=(overlay,)))
    result = snakemake(workdir, overlays=(overlay,))
    assert result.returncode == 0, result.stderr[-4000:]
    (workdir / "planned.json").write_text(json.dumps(dry))
    return workdir, {**weights, "overlay": overlay}


def test_zero_shot_methods_schedule_no_training_jobs(pretrained_run: tuple[Path, dict[str, Path]]) -> None:
    workdir, _ = pretrained_run
    jobs = json.loads((workdir / "planned.json").read_text())
    assert jobs["pretrain"] == 2 and jobs["finetune"] == 4  # contrastive_clip and early_concat, two tasks each
    assert jobs["evaluate"] == 8 and jobs["robustness"] == 8  # every method, both tasks
    # one WordPiece trained on the captions (early_concat), one exported from the BERT folder (contrastive_clip)
    assert jobs["tokenizer"] == 1 and jobs["pretrained_tokenizer"] == 1
    out = workdir / "results" / "smoke" / "scenes"
    assert sorted(p.name for p in (out / "pretrain").iterdir()) == ["contrastive_clip", "early_concat"]
    assert not (out / "finetune" / "retrieval" / "published_dual_encoder").exists()


def test_pretrained_towers_are_recorded_with_their_sha256(pretrained_run: tuple[Path, dict[str, Path]]) -> None:
    workdir, weights = pretrained_run
    out = workdir / "results" / "smoke" / "scenes"
    result = json.loads((out / "eval" / "retrieval" / "contrastive_clip" / "seed0.json").read_text())
    sources = result["protocol"]["weights"]
    for tower in ("vision", "text"):
        files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in weights[tower].iterdir() if p.is_file()}
        assert sources[tower]["init"] == str(weights[tower]) and sources[tower]["files"] == files
    # early_concat's text tower is random (per-method override): only the vision tower is recorded
    early = json.loads((out / "eval" / "retrieval" / "early_concat" / "seed0.json").read_text())
    assert set(early["protocol"]["weights"]) == {"vision"}
    exported = json.loads((workdir / "results" / "smoke" / "tokenizers").glob("bert_*.json").__next__().read_text())
    assert set(exported["model"]["vocab"]) == set(VOCAB)  # the BERT folder's own vocabulary, not a trained one


def test_tables_mark_zero_shot_rows_and_name_the_weights(pretrained_run: tuple[Path, dict[str, Path]]) -> None:
    workdir, weights = pretrained_run
    tables = workdir / "results" / "smoke" / "tables"
    frame = pd.read_csv(tables / "main.csv", comment="#")
    clip = frame[(frame["method"] == "published_dual_encoder") & (frame["task"] == "retrieval")]
    assert (clip["status"] == "ok").all() and clip["value"].between(0, 1).all()
    owl = frame[(frame["method"] == "published_detector") & (frame["task"] == "grounding")]
    assert (owl["status"].isin(["ok"]) | owl["status"].str.startswith("undefined")).all()
    assert (
        frame[(frame["method"] == "published_dual_encoder") & (frame["task"] == "grounding")]["status"]
        .str.startswith("not applicable: ")
        .all()
    )
    markdown = (tables / "main.md").read_text()
    for method in ("published_dual_encoder", "published_detector"):
        assert re.search(rf"^\| {method} +\| zero-shot +\|", markdown, flags=re.M), method
    assert re.search(r"^\| contrastive_clip +\| 1 +\|", markdown, flags=re.M)
    assert f"published_dual_encoder (zero-shot; model from {weights['clip']}" in markdown
    assert f"vision from {weights['vision']}" in markdown
    robustness = pd.read_csv(tables / "robustness.csv", comment="#")
    owl_noise = robustness[
        (robustness["method"] == "published_detector") & (robustness["corruption"] == "gaussian_noise")
    ]
    assert len(owl_noise) and (owl_noise["status"] == "ok").any()


def test_editing_published_weights_reruns_only_their_evaluation(pretrained_run: tuple[Path, dict[str, Path]]) -> None:
    workdir, weights = pretrained_run
    config = weights["clip"] / "config.json"
    text, stat = config.read_bytes(), config.stat()
    try:
        config.write_bytes(text + b"\n")  # an edited file (Snakemake ignores a newer time with the same content)
        jobs = planned_jobs(snakemake(workdir, "--dry-run", overlays=(weights["overlay"],)))
    finally:
        config.write_bytes(text)
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert jobs == {"evaluate": 2, "robustness": 2, "aggregate": 1, "plots": 1, "all": 1}, jobs


def test_a_method_fine_tuned_from_its_own_weights_schedules_no_pretraining(
    pretrained_run: tuple[Path, dict[str, Path]],
) -> None:
    """``training_stages = ("finetune",)``: fine-tuning (from the published weights), evaluation and robustness."""
    from tests.helpers import PLUGIN

    workdir, weights = pretrained_run
    plugin = workdir / "baselines" / "finetuned_clip.py"
    plugin.write_text(PLUGIN)
    methods = yaml.safe_load(weights["overlay"].read_text())["methods"]
    overlay = workdir / "finetuned.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "methods": [*methods, "finetuned_clip"],
                "method_overrides": {"finetuned_clip": {"pretrained": str(weights["clip"])}},
            }
        )
    )
    try:
        jobs = planned_jobs(snakemake(workdir, "--dry-run", overlays=(weights["overlay"], overlay)))
    finally:
        plugin.unlink()
    grid = 2  # retrieval and grounding (grounding is n/a for it, and says so)
    assert jobs == {"finetune": grid, "evaluate": grid, "robustness": grid, "aggregate": 1, "plots": 1, "all": 1}
