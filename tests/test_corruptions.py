"""Corruptions: identity at severity 0, monotone with severity, seeded, rates as configured."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.corruptions.image import IMAGE_CORRUPTIONS, corrupt_images
from benchmark.corruptions.text import (
    LEXICAL_OPERATIONS,
    TEXT_CORRUPTIONS,
    WORD_RATES,
    corrupt_text,
    corrupt_text_counted,
)
from benchmark.data.dataset import load_split


@pytest.fixture(scope="module")
def images(tiny_dataset: Path) -> tuple[torch.Tensor, list[int]]:
    split = load_split(tiny_dataset, "train")
    return split.images[:32], split.image_ids[:32]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.float() - b.float()) ** 2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


NOT_MONOTONE_IN_PSNR = ("glass_blur", "motion_blur", "frost", "elastic_transform", "spatter", "saturate")
"""ImageNet-C's own tables for these do not degrade PSNR step by step; tests/test_imagenet_c.py checks their
documented ordering instead. motion_blur: CIFAR-10-C's severities 3 and 4 (these 32-px images) share σ = 2, and
radius 6 → 8 only adds taps of weight < e⁻¹⁸, so they differ by their random angles alone."""


@pytest.mark.parametrize("name", [n for n in IMAGE_CORRUPTIONS if n not in NOT_MONOTONE_IN_PSNR])
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
    assert torch.equal(out, corrupt_images(batch.clone(), name, 3, ids))  # same seed → identical
    # per-example seeding: an image is corrupted the same whatever batch it is in
    assert torch.equal(corrupt_images(batch[5:9], name, 3, ids[5:9]), out[5:9])


RANDOM_IMAGE_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "glass_blur",
    "motion_blur",
    "snow",
    "frost",
    "fog",
    "elastic_transform",
    "spatter",
    "occlusion",
)
"""Corruptions that draw noise, an angle or a position; the others are deterministic functions of the pixels."""

COARSE_DRAWS = ("motion_blur",)
"""One angle, and ImageMagick rounds the taps to whole pixels: two ids' angles a degree or two apart can blur alike."""


@pytest.mark.parametrize("name", RANDOM_IMAGE_CORRUPTIONS)
def test_random_image_corruption_draws_per_example_id(name: str, images) -> None:
    """The seed is the example id, not the pixels: one image under two ids gets two different draws."""
    batch, _ = images
    same_image = batch[:1].repeat(4, 1, 1, 1)
    out = corrupt_images(same_image, name, 5, [101, 102, 103, 104])
    distinct = len({bytes(o.numpy().tobytes()) for o in out})
    assert distinct >= 2 if name in COARSE_DRAWS else distinct == 4, f"{name}: ids did not change the draw"
    # ... while the same id gives the same draw, whatever the batch position
    assert torch.equal(
        corrupt_images(same_image[:2], name, 5, [7, 7])[0], corrupt_images(same_image[:2], name, 5, [7, 7])[1]
    )


@pytest.mark.parametrize("name", sorted(set(IMAGE_CORRUPTIONS) - set(RANDOM_IMAGE_CORRUPTIONS)))
def test_deterministic_image_corruption_ignores_the_example_id(name: str, images) -> None:
    batch, ids = images
    assert torch.equal(corrupt_images(batch[:4], name, 3, ids[:4]), corrupt_images(batch[:4], name, 3, [9, 8, 7, 6]))


def test_unknown_corruption_and_severity_are_rejected(images) -> None:
    batch, ids = images
    with pytest.raises(ValueError, match="unknown image corruption 'hail'"):
        corrupt_images(batch, "hail", 1, ids)
    with pytest.raises(ValueError, match="severity must be 0–5"):
        corrupt_images(batch, "contrast", 6, ids)
    with pytest.raises(ValueError, match="unknown text corruption"):
        corrupt_text("a red circle", "leetspeak", 1, 0)


SENTENCES = [
    "a small red circle left of a large blue square",
    "three objects: two green triangles and an orange diamond",
    "the purple square is above the yellow circle",
    "a scene with a cyan cross and a white object",
]


ELIGIBLE: dict[str, Callable[[str], bool]] = {
    # Written from the documented definitions, independently of the implementation: a word is
    # eligible when the operation can change it.
    "keyboard": lambda w: any(c.isalpha() for c in w),
    "ocr": lambda w: any(
        key in w for key in ("o", "l", "i", "e", "a", "s", "b", "g", "z", "t", "m", "rn", "c", "u", "d")
    ),
    "char_insert": lambda w: True,
    "char_substitute": lambda w: any(c.isalpha() for c in w),
    "char_swap": lambda w: any(a != b for a, b in zip(w, w[1:])),
    "char_delete": lambda w: len(w) >= 2,
}


def words_changed(before: str, after: str, name: str) -> int:
    """Words that really differ in the output (not the function's own counter).

    Character operations keep the word count, so words are compared by position. A deletion
    changes ``len(before) − len(after)`` words. A swap is counted by inversions: the output
    is a permutation of distinct input words, and each swap of a word with its right
    neighbour adds exactly one inversion (see :func:`expected_swap_rate` for the one case
    where two swaps cancel).
    """
    a, b = before.split(), after.split()
    if name == "word_delete":
        return len(a) - len(b)
    if name == "word_swap":
        position = {w: i for i, w in enumerate(a)}
        order = [position[w] for w in b]
        return sum(order[i] > order[j] for i in range(len(order)) for j in range(i + 1, len(order)))
    assert len(a) == len(b), (before, after)
    return sum(x != y for x, y in zip(a, b))


def expected_swap_rate(rate: float, words: int) -> float:
    """Inversions per word of ``word_swap``: each selected word adds one inversion, except that
    when the second-to-last word is swapped rightwards and the last word is then selected (it
    swaps with its left neighbour), the second swap undoes the first: 2 inversions fewer with
    probability rate²."""
    return rate - 2 * rate**2 / words


DISTINCT = [  # distinct words per sentence, so a permutation identifies every word
    "a small red circle left of one large blue square near the edge",
    "three objects two green triangles and an orange diamond on grey canvas",
    "the purple square is above some yellow circle beside a white cross",
]


@pytest.mark.parametrize("name", [n for n in TEXT_CORRUPTIONS if n not in LEXICAL_OPERATIONS])
def test_text_corruption_rate_matches_the_severity(name: str) -> None:
    """The fraction of eligible words that really change in the output matches the severity's rate
    (the lexical operations, which insert words, are measured in tests/test_text_perturbations.py)."""
    sentences = DISTINCT if name == "word_swap" else SENTENCES
    for severity, rate in enumerate(WORD_RATES, start=1):
        changed = eligible = expected = 0.0
        for k in range(600):
            text = sentences[k % len(sentences)]
            out, _, reported_eligible = corrupt_text_counted(text, name, severity, example_id=k)
            words = text.split()
            n = sum(map(ELIGIBLE[name], words)) if name in ELIGIBLE else len(words)
            assert reported_eligible == n, f"{name}: eligible words of {text!r}"
            changed += words_changed(text, out, name)
            eligible += n
            expected += n * (expected_swap_rate(rate, len(words)) if name == "word_swap" else rate)
        assert eligible > 2000
        assert changed / eligible == pytest.approx(expected / eligible, abs=0.02), f"{name} severity {severity}"


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


@pytest.mark.parametrize("corruption", ["missing_image", "missing_text"])
def test_missing_modality_withholds_a_fraction_severity_over_five(corruption: str) -> None:
    """README: the modality is withheld for a seeded fraction severity/5 of the test examples."""
    from benchmark.corruptions.families import missing_mask

    ids = list(range(3000))
    for severity in range(1, 6):
        mask = missing_mask(ids, corruption, severity)
        assert mask.dtype == torch.bool and mask.shape == (len(ids),)
        assert mask.float().mean().item() == pytest.approx(severity / 5, abs=0.02), severity
        assert torch.equal(mask, missing_mask(ids, corruption, severity))  # seeded
    assert bool(missing_mask(ids, corruption, 5).all())
