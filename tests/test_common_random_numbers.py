"""Common random numbers: for seed k every method draws the same data order, the same masks and negatives, and
the same initial weights of a tower of the same architecture; seed k + 1 draws others (docs/reproducibility.md).
A method's own heads draw from a seed with its implementation in it, and are still the same on a rerun."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmark.config import stage_spec
from benchmark.objectives.masking import mask_tokens
from benchmark.objectives.matching import sample_negatives
from benchmark.registry import BUILTIN_METHODS, load_method
from benchmark.seeding import derive_seed, method_seed, shared_stream
from benchmark.stages.pretrain import PretrainingJob, prepare_pretraining

STEPS = 4


def job(config: dict[str, Any], method: str, seed: int, data: Path, tokenizer: Path) -> PretrainingJob:
    return prepare_pretraining(
        stage_spec(config, "pretrain", dataset="scenes", method=method, seed=seed), data, tokenizer
    )


def weights(model: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def batches(run: PretrainingJob) -> list[tuple[list[int], list[list[int]]]]:
    """The image indices and caption ids of the first steps' batches."""
    size = run.spec["optim"]["batch_size"]
    drawn = [run.data.batch(step, size, run.run_seed) for step in range(STEPS)]
    return [(b["image_index"].tolist(), b["text"]["input_ids"].tolist()) for b in drawn]


def test_two_methods_share_tower_weights_and_batches_at_a_seed_and_not_across_seeds(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict
) -> None:
    runs = {
        (method, seed): job(smoke_config, method, seed, tiny_dataset, tiny_tokenizer_file)
        for method in ("contrastive_clip", "cross_attention")
        for seed in (0, 1)
    }
    for tower in ("image.", "text."):
        clip, cross = (weights(runs[m, 0].model, tower) for m in ("contrastive_clip", "cross_attention"))
        assert clip and same(clip, cross), f"{tower} weights differ between methods at seed 0"
        assert not same(weights(runs["cross_attention", 1].model, tower), cross), f"{tower} same at seeds 0 and 1"
    assert batches(runs["contrastive_clip", 0]) == batches(runs["cross_attention", 0])
    assert batches(runs["contrastive_clip", 1]) == batches(runs["cross_attention", 1])
    assert batches(runs["cross_attention", 0]) != batches(runs["cross_attention", 1])


def test_masks_and_negatives_do_not_depend_on_what_a_method_drew_before_them() -> None:
    ids = torch.randint(10, 60, (8, 12), generator=torch.Generator().manual_seed(0))
    attention = torch.ones_like(ids)

    def step_draws(step: int, method_draws: int) -> tuple[torch.Tensor, ...]:
        torch.manual_seed(derive_seed(derive_seed("pretrain", "scenes", 0), "step", step))  # the loop's re-seed
        torch.rand(method_draws)  # whatever a method draws first (dropout, its own heads' noise)
        masked, labels = mask_tokens(ids, attention, [0, 1, 2, 3, 4], 4, 60)
        negatives = sample_negatives(8, None)
        return masked, labels, *negatives, torch.rand(3)

    a, b, other_step = step_draws(0, 0), step_draws(0, 17), step_draws(1, 0)
    for x, y in zip(a[:4], b[:4]):
        assert torch.equal(x, y)
    assert not torch.equal(a[0], other_step[0]) and not torch.equal(a[2], other_step[2])
    # the shared streams leave the global RNG as they found it
    torch.manual_seed(5)
    with shared_stream("anything"):
        torch.rand(4)
    after = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(3))


def test_a_methods_own_heads_may_differ_but_its_run_is_deterministic(
    tiny_dataset: Path,
    tiny_tokenizer_file: Path,
    smoke_config: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    baselines = tmp_path / "baselines"  # adds its method to the built-ins
    baselines.mkdir()
    shutil.copy(BUILTIN_METHODS / "cross_attention.py", baselines / "cross_attention_copy.py")
    monkeypatch.setenv("FUSEBENCH_BASELINES", str(baselines))
    config = {**smoke_config, "methods": [*smoke_config["methods"], "cross_attention_copy"]}
    original, copy, rerun = (
        job(config, method, 0, tiny_dataset, tiny_tokenizer_file).model
        for method in ("cross_attention", "cross_attention_copy", "cross_attention_copy")
    )
    for tower in ("image.", "text."):
        assert same(weights(original, tower), weights(copy, tower))
    assert not same(weights(original, "match_head."), weights(copy, "match_head."))  # its own head: its own seed
    assert same(weights(copy, ""), weights(rerun, ""))


def test_a_methods_own_seed_does_not_depend_on_the_folder_its_file_is_in(tmp_path: Path) -> None:
    """A copy of baselines/ elsewhere (another checkout, a test's own folder, $FUSEBENCH_BASELINES) imports its files
    as differently named modules, yet each method draws its own heads from the same seed: the numbers of a run do
    not depend on where the method files are. The seed is the one the name ``fusebench_baselines.<method>`` gives
    (how the smoke fixture was written)."""
    copy = tmp_path / "baselines"
    shutil.copytree(BUILTIN_METHODS, copy)
    here, there = load_method("early_concat", BUILTIN_METHODS), load_method("early_concat", copy)
    assert here is not there and here.__module__ != there.__module__
    assert method_seed(0, here) == method_seed(0, there)
    assert method_seed(0, here) == derive_seed(0, "method", f"fusebench_baselines.early_concat.{here.__qualname__}")
    assert method_seed(0, here) != method_seed(1, here)
