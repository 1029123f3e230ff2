"""Objectives on tiny batches: shapes, finiteness, masking rules, and that each loss falls."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmark.data.concepts import concept_vocabulary
from benchmark.data.dataset import load_split
from benchmark.data.grounding import attribute_vocabulary
from benchmark.data.sampling import ImageTextData
from benchmark.data.tokenizer import load_tokenizer, special_token_ids
from benchmark.models.method import BuildContext
from benchmark.objectives import (
    info_nce,
    itm_loss,
    itm_loss_swap,
    mask_tokens,
    mim_loss,
    mlm_loss,
    random_patch_mask,
    sample_negatives,
)
from benchmark.objectives.masking import IGNORE
from benchmark.registry import load_method

SPECIAL = [0, 1, 2, 3, 4]  # pad, unk, cls, sep, mask
MASK_ID = 4


def test_info_nce_bounds() -> None:
    assert info_nce(torch.zeros(8, 8)).item() == pytest.approx(math.log(8))
    assert info_nce(100 * torch.eye(8)).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="square"):
        info_nce(torch.zeros(3, 4))


def test_negatives_are_never_the_positive() -> None:
    torch.manual_seed(0)
    for similarity in (None, torch.randn(6, 6), 50 * torch.eye(6)):
        for _ in range(50):
            neg_text, neg_image = sample_negatives(6, similarity)
            assert (neg_text != torch.arange(6)).all() and (neg_image != torch.arange(6)).all()


def test_hard_negatives_follow_the_itc_similarity() -> None:
    torch.manual_seed(0)
    similarity = torch.zeros(4, 4)
    similarity[0, 2] = 10.0  # caption 2 is by far the most confusable caption for image 0
    picks = torch.stack([sample_negatives(4, similarity)[0][0] for _ in range(200)])
    assert (picks == 2).float().mean() > 0.95


def test_itm_labels_and_pairs() -> None:
    torch.manual_seed(0)
    seen = {}

    def logits(image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        seen["pairs"] = (image_index.clone(), text_index.clone())
        return (image_index == text_index).float() * 20 - 10  # a perfect matcher

    assert itm_loss(logits, 5).item() < 1e-3
    image_index, text_index = seen["pairs"]
    assert len(image_index) == 15 and (image_index[:5] == text_index[:5]).all()
    assert (image_index[5:] != text_index[5:]).all()  # every negative pair really is a mismatch
    assert itm_loss_swap(logits, 64).item() < 1e-3


def test_mlm_masks_only_real_text_tokens() -> None:
    torch.manual_seed(0)
    ids = torch.tensor([[2, 10, 11, 12, 3, 0, 0], [2, 13, 3, 0, 0, 0, 0]] * 200)
    attention = (ids != 0).long()
    masked, labels = mask_tokens(ids, attention, SPECIAL, MASK_ID, vocab_size=30, probability=0.15)
    targets = labels != IGNORE
    assert not targets[torch.isin(ids, torch.tensor(SPECIAL))].any()  # never [CLS]/[SEP]/[PAD]
    assert (masked[~targets] == ids[~targets]).all()  # nothing else changes
    assert targets.any(dim=1).all()  # ≥ 1 target per sequence
    assert (labels[targets] == ids[targets]).all()
    replaced = masked[targets]
    assert (replaced == MASK_ID).float().mean() == pytest.approx(0.8, abs=0.06)
    assert not torch.isin(replaced[replaced != MASK_ID], torch.tensor(SPECIAL)).any()


def test_mlm_target_rate_on_long_sequences() -> None:
    torch.manual_seed(1)
    ids = torch.randint(5, 30, (400, 40))
    ids[:, 0], ids[:, -1] = 2, 3
    _masked, labels = mask_tokens(ids, torch.ones_like(ids), SPECIAL, MASK_ID, 30, 0.15)
    assert (labels != IGNORE).float().sum() / (400 * 38) == pytest.approx(0.15, abs=0.01)


def test_mim_mask_count_and_loss() -> None:
    mask = random_patch_mask(4, 36, 0.4, torch.device("cpu"))
    assert mask.shape == (4, 36) and (mask.sum(dim=1) == 14).all()
    target = torch.randn(4, 36, 12)
    assert mim_loss(target, target, mask).item() == 0.0
    assert mim_loss(target + 1.0, target, mask).item() == pytest.approx(1.0)
    assert mlm_loss(
        torch.zeros(2, 3, 5), torch.tensor([[1, IGNORE, IGNORE], [IGNORE, 2, IGNORE]])
    ).item() == pytest.approx(math.log(5))


def _tiny(method: str, tiny_dataset: Path, tokenizer_file: Path, smoke_config: dict[str, Any]):
    torch.manual_seed(0)
    tokenizer = load_tokenizer(tokenizer_file, 24)
    split = load_split(tiny_dataset, "train")
    ctx = BuildContext(
        smoke_config["model"],
        split.image_size,
        tokenizer.get_vocab_size(),
        24,
        special_token_ids(tokenizer),
        concept_vocabulary(split),
    )
    ctx = BuildContext(**{**ctx.to_json(), "concepts": ctx.concepts, "attributes": attribute_vocabulary(split)})
    return load_method(method)(ctx), ImageTextData.from_split(split, tokenizer, torch.device("cpu"), ctx.concepts)


METHOD_OBJECTIVES = {
    "contrastive_clip": ("itc",),
    "cross_attention": ("itc", "itm", "mlm"),
    "early_concat": ("itm", "mlm"),
    "late_fusion": ("mim", "mlm"),
    "image_only": ("mim",),
    "text_only": ("mlm",),
}


def test_methods_declare_the_objectives_they_return(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict[str, Any]
) -> None:
    for method, objectives in METHOD_OBJECTIVES.items():
        model, data = _tiny(method, tiny_dataset, tiny_tokenizer_file, smoke_config)
        assert set(model.objective_weights) == set(objectives), method
        losses = model.pretrain_losses(data.batch(0, 8, 0))
        assert set(losses) == set(objectives) and all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize(("method", "objective"), [(m, o) for m, objs in METHOD_OBJECTIVES.items() for o in objs])
def test_each_objective_falls(
    method: str, objective: str, tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict[str, Any]
) -> None:
    """Each objective alone, 200 steps on one tiny batch: the loss is finite and falls clearly.

    ITM is the slowest (a plateau at its label prior, BCE 0.64, for about 100 steps before it
    learns), hence 200 steps, a moderate learning rate and an absolute criterion."""
    model, data = _tiny(method, tiny_dataset, tiny_tokenizer_file, smoke_config)
    model.hparams["objectives"] = {objective: 1.0}
    objectives = {objective}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = data.batch(0, 16, 0)
    history: dict[str, list[float]] = {}
    for step in range(200):
        torch.manual_seed(step % 4)  # the same masks/negatives recur, so the batch can be fitted
        losses = model.pretrain_losses(batch)
        assert set(losses) == objectives
        total = sum(losses.values())
        assert torch.isfinite(total)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        for name, value in losses.items():
            history.setdefault(name, []).append(value.item())
    for name, values in history.items():
        first, last = sum(values[:10]) / 10, sum(values[-10:]) / 10
        assert last < first - 0.05, f"{method}.{name}: {first:.3f} → {last:.3f}"


def test_every_grounding_head_trains(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict[str, Any]
) -> None:
    """Each method that grounds: its grounding losses are finite and fall on a tiny set."""
    from benchmark.data.grounding import GroundingData
    from benchmark.registry import method_names, method_schedule

    for method in method_names():
        if not method_schedule(method).training_stages:  # a published model evaluated zero-shot is not trained here
            continue
        model, _ = _tiny(method, tiny_dataset, tiny_tokenizer_file, smoke_config)
        if "grounding" not in model.tasks:
            continue
        split = load_split(tiny_dataset, "train")
        data = GroundingData.from_split(
            split, load_tokenizer(tiny_tokenizer_file, 24), torch.device("cpu"), model.ctx.attributes
        )
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        batch = data.batch(0, 16, 0)
        totals = []
        for step in range(60):
            torch.manual_seed(step)
            losses = model.task_losses("grounding", batch)
            total = sum(losses.values())
            assert torch.isfinite(total), method
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            totals.append(total.item())
        assert sum(totals[-5:]) / 5 < 0.8 * sum(totals[:5]) / 5, f"{method}: {totals[0]:.3f} → {totals[-1]:.3f}"
