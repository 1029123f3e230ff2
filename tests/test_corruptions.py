"""Corruptions: identity at severity 0, monotone with severity, seeded, rates as configured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.corruptions.image import IMAGE_CORRUPTIONS, corrupt_images
from benchmark.corruptions.text import TEXT_CORRUPTIONS, WORD_RATES, corrupt_text, corrupt_text_counted
from benchmark.data.dataset import load_split


@pytest.fixture(scope="module")
def images(tiny_dataset: Path) -> tuple[torch.Tensor, list[int]]:
    split = load_split(tiny_dataset, "train")
    return split.images[:32], split.image_ids[:32]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.float() - b.float()) ** 2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("name", list(IMAGE_CORRUPTIONS))
def test_image_corruption_is_identity_at_zero_and_worsens_with_severity(name: str, images) -> None:
    batch, ids = images
    assert torch.equal(corrupt_images(batch, name, 0, ids), batch)
    scores = [psnr(corrupt_images(batch, name, s, ids), batch) for s in range(1, 6)]
    assert all(a > b for a, b in zip(scores, scores[1:])), f"{name}: PSNR by severity {scores}"


@pytest.mark.parametrize("name", list(IMAGE_CORRUPTIONS))
def test_image_corruption_is_seeded_per_example_and_keeps_dtype(name: str, images) -> None:
    batch, ids = images
    out = corrupt_images(batch, name, 3, ids)
    assert out.dtype == torch.uint8 and out.shape == batch.shape
    assert torch.equal(out, corrupt_images(batch.clone(), name, 3, ids))       # same seed → identical
    # per-example seeding: an image is corrupted the same whatever batch it is in
    assert torch.equal(corrupt_images(batch[5:9], name, 3, ids[5:9]), out[5:9])


def test_unknown_corruption_and_severity_are_rejected(images) -> None:
    batch, ids = images
    with pytest.raises(ValueError, match="unknown image corruption 'fog'"):
        corrupt_images(batch, "fog", 1, ids)
    with pytest.raises(ValueError, match="severity must be 0–5"):
        corrupt_images(batch, "contrast", 6, ids)
    with pytest.raises(ValueError, match="unknown text corruption"):
        corrupt_text("a red circle", "leetspeak", 1, 0)


SENTENCES = [
    "a small red circle left of a large blue square", "three objects: two green triangles and an orange diamond",
    "the purple square is above the yellow circle", "a scene with a cyan cross and a white object",
]


@pytest.mark.parametrize("name", TEXT_CORRUPTIONS)
def test_text_corruption_rate_matches_the_severity(name: str) -> None:
    for severity, rate in enumerate(WORD_RATES, start=1):
        changed = eligible = 0
        for k in range(600):
            _, c, e = corrupt_text_counted(SENTENCES[k % len(SENTENCES)], name, severity, example_id=k)
            changed, eligible = changed + c, eligible + e
        assert eligible > 2000
        assert changed / eligible == pytest.approx(rate, abs=0.02), f"{name} severity {severity}"


@pytest.mark.parametrize("name", TEXT_CORRUPTIONS)
def test_text_corruption_identity_seeding_and_change(name: str) -> None:
    text = SENTENCES[0]
    assert corrupt_text(text, name, 0, 7) == text
    assert corrupt_text(text, name, 5, 7) == corrupt_text(text, name, 5, 7)
    outputs = {corrupt_text(text, name, 5, k) for k in range(20)}
    assert len(outputs) > 1 and any(o != text for o in outputs)
    assert all(o.strip() for o in outputs)  # never empty


def test_word_delete_keeps_a_word() -> None:
    assert all(corrupt_text("circle", "word_delete", 5, k) == "circle" for k in range(50))
