"""Fusion methods run their unimodal towers once per item, never per pair, and compute what they did before.

early_concat's image tower used to run for every (image, text) pair scored and three times per
image in ITM; it now runs once per image (``prepare_images``) and the joint stream reads its
tokens. The robustness grid reuses the clean side's encodings across cells (an image corruption
leaves the texts clean, a text perturbation the images): the same numbers, from a cache keyed by
the inputs' contents (:class:`benchmark.evaluation.retrieval.EncodingCache`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from benchmark.data.dataset import load_split
from benchmark.data.sampling import ImageTextData, trim_padding
from benchmark.data.tokenizer import encode, load_tokenizer, special_token_ids
from benchmark.evaluation import retrieval as retrieval_evaluation
from benchmark.evaluation.retrieval import EncodingCache, input_digest, retrieval_scores
from benchmark.models.method import BuildContext
from benchmark.objectives import itm_loss, mask_tokens, mlm_loss
from benchmark.registry import load_method
from benchmark.robustness.grid import evaluate_robustness
from benchmark.tasks import get_task

CPU = torch.device("cpu")
RETRIEVAL = {"ks": [1, 5], "max_images": None, "exhaustive_max_images": 100, "shortlist_k": 3}


def _model(method: str, smoke_config: dict[str, Any], tokenizer: Any, image_size: int) -> Any:
    torch.manual_seed(0)
    ctx = BuildContext(smoke_config["model"], image_size, tokenizer.get_vocab_size(), 24, special_token_ids(tokenizer))
    return load_method(method)(ctx)


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_file: Path) -> Any:
    return load_tokenizer(tiny_tokenizer_file, 24)


@pytest.fixture(scope="module")
def batch(tiny_dataset: Path, tokenizer: Any) -> dict[str, Any]:
    data = ImageTextData.from_split(load_split(tiny_dataset, "train"), tokenizer, CPU)
    return data.batch(0, 12, seed=0)


def _old_early_concat_losses(model: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """early_concat's pretraining losses as they were computed: ``encode`` (image tower + joint stream) per pair."""
    images, text = batch["image"], batch["text"]

    def logits(image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        cls, _, _ = model.encode(images[image_index], {k: v[text_index] for k, v in text.items()})
        return model.match_head(cls)

    itm = itm_loss(logits, images.shape[0], similarity=None, device=images.device)
    special = model.ctx.special_tokens
    masked, labels = mask_tokens(
        text["input_ids"],
        text["attention_mask"],
        list(special.values()),
        special["mask"],
        model.ctx.vocab_size,
        model.hparams["mlm_probability"],
    )
    _, _, text_out = model.encode(images, text, input_ids=masked)
    return {"itm": itm, "mlm": mlm_loss(model.mlm_head(text_out), labels)}


def test_early_concat_scores_prepared_images_as_the_per_pair_encoder(
    smoke_config: dict, tokenizer: Any, batch: dict[str, Any]
) -> None:
    """score_prepared on tokens prepared once per image = the match logit of ``encode`` run on each pair."""
    model = _model("early_concat", smoke_config, tokenizer, batch["image"].shape[-1]).eval()
    images, text = batch["image"], batch["text"]
    image_index = torch.tensor([0, 0, 3, 5, 11, 2, 2])
    text_index = torch.tensor([0, 4, 3, 1, 11, 2, 9])
    with torch.no_grad():
        prepared = model.prepare_images(images)
        new = model.score_prepared(
            {k: v[image_index] for k, v in prepared.items()}, {k: v[text_index] for k, v in text.items()}
        )
        cls, _, _ = model.encode(images[image_index], {k: v[text_index] for k, v in text.items()})
        old = model.match_head(cls)
    assert new.shape == (len(image_index),)
    assert torch.allclose(new, old, atol=1e-5, rtol=0)


@pytest.mark.parametrize("stage", ["pretrain", "retrieval"])
def test_early_concat_training_losses_and_gradients_equal_the_per_pair_formula(
    smoke_config: dict, tokenizer: Any, batch: dict[str, Any], stage: str
) -> None:
    """One image-tower pass per batch gives the losses (and gradients) of one pass per pair."""
    model = _model("early_concat", smoke_config, tokenizer, batch["image"].shape[-1]).train()

    def run(losses_of: Any) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        model.zero_grad()
        torch.manual_seed(7)  # the same negatives and masks
        losses = losses_of()
        sum(losses.values()).backward()
        return {k: v.detach() for k, v in losses.items()}, [
            p.grad.clone() for p in model.parameters() if p.grad is not None
        ]

    if stage == "pretrain":
        new, new_grads = run(lambda: model.pretrain_losses(batch))
        old, old_grads = run(lambda: _old_early_concat_losses(model, batch))
    else:
        new, new_grads = run(lambda: model.task_losses("retrieval", batch))
        old, old_grads = run(lambda: {"itm": _old_early_concat_losses(model, batch)["itm"]})
    assert set(new) == set(old) and all(torch.allclose(new[k], old[k], atol=1e-5, rtol=0) for k in new), (new, old)
    assert len(new_grads) == len(old_grads)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(new_grads, old_grads))


class _RowCounter:
    """Rows (items) a tower processes, counted by a forward hook on its first layer."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.rows = 0
        self.handle = module.register_forward_hook(self._count)

    def _count(self, _module: Any, _inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        self.rows += int(output.shape[0])


def _tower_counters(model: Any) -> dict[str, _RowCounter]:
    counters = {"image": _RowCounter(model.image.vit.patch_embed)}
    if hasattr(model, "text"):
        counters["text"] = _RowCounter(model.text.bert.embeddings)
    return counters


@pytest.mark.parametrize(
    ("method", "settings", "passes"),
    [
        ("early_concat", RETRIEVAL, 1),
        ("cross_attention", RETRIEVAL, 1),  # exhaustive: prepared items only
        ("cross_attention", {**RETRIEVAL, "exhaustive_max_images": 0}, 2),  # ITC shortlist: embeddings + prepared
    ],
)
def test_retrieval_runs_each_tower_once_per_item_not_per_pair(
    method: str, settings: dict, passes: int, smoke_config: dict, tiny_dataset: Path, tokenizer: Any
) -> None:
    test = load_split(tiny_dataset, "test")
    model = _model(method, smoke_config, tokenizer, test.image_size)
    counters = _tower_counters(model)
    t2i, _, _, record = retrieval_scores(model, test, tokenizer, CPU, 16, settings)
    n_texts, n_images = t2i.shape
    assert record.get("pairs_scored", 0) > n_images + n_texts  # many more pairs than items
    assert counters["image"].rows == passes * n_images
    if "text" in counters:
        assert counters["text"].rows == passes * n_texts


def test_itc_shortlist_scores_each_shortlisted_pair_once_and_as_before(
    smoke_config: dict, tiny_dataset: Path, tokenizer: Any
) -> None:
    """A pair on both directions' shortlists is scored once; the matrices are the per-direction re-ranking's
    (every query's top-k by ITC re-scored by the fusion head, the rest below them in ITC order)."""
    test = load_split(tiny_dataset, "test")
    model = _model("cross_attention", smoke_config, tokenizer, test.image_size).eval()
    settings = {**RETRIEVAL, "exhaustive_max_images": 0}
    calls = _RowCounter(model.match_head)
    t2i, i2t, _, record = retrieval_scores(model, test, tokenizer, CPU, 16, settings)
    calls.handle.remove()
    images, texts, _ = retrieval_evaluation.test_subset(test, None)
    tokens = trim_padding(encode(tokenizer, texts))
    k = settings["shortlist_k"]
    with torch.no_grad():
        similarity = model.embed_text(tokens) @ model.embed_image(images).t()
        prepared_images, prepared_texts = model.prepare_images(images), model.prepare_texts(tokens)
        every_pair = torch.stack(  # texts × images
            [
                model.score_prepared({n: v[[i] * len(texts)] for n, v in prepared_images.items()}, prepared_texts)
                for i in range(len(images))
            ],
            dim=1,
        )

    def reranked(sim: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(sim.shape[0]).repeat_interleave(k)
        columns = sim.topk(k, dim=1).indices.reshape(-1)
        out = sim + (fused[rows, columns].min() - sim.max() - 1)
        out[rows, columns] = fused[rows, columns]
        return out

    assert torch.allclose(torch.from_numpy(t2i).float(), reranked(similarity, every_pair), atol=1e-5)
    assert torch.allclose(torch.from_numpy(i2t.T.copy()).float(), reranked(similarity.t(), every_pair.t()), atol=1e-5)
    both = {(t, i) for t in range(len(texts)) for i in similarity[t].topk(k).indices.tolist()}
    both |= {(t, i) for i in range(len(images)) for t in similarity[:, i].topk(k).indices.tolist()}
    assert record["pairs_scored"] == calls.rows == len(both) < len(texts) * k + len(images) * k


@pytest.mark.parametrize(("method", "image_rows", "text_rows"), [("early_concat", 1, 0), ("cross_attention", 1, 2)])
def test_training_runs_each_tower_once_per_batch_item(
    method: str, image_rows: int, text_rows: int, smoke_config: dict, tokenizer: Any, batch: dict[str, Any]
) -> None:
    """ITM's three pairs per image index the batch's encodings; cross-attention's MLM encodes the masked text."""
    model = _model(method, smoke_config, tokenizer, batch["image"].shape[-1]).train()
    counters = _tower_counters(model)
    model.pretrain_losses(batch)
    size = batch["image"].shape[0]
    assert counters["image"].rows == image_rows * size
    assert counters.get("text", _RowCounter(torch.nn.Identity())).rows == text_rows * size


def test_encoding_cache_is_keyed_by_contents_and_serves_one_model(smoke_config: dict, tokenizer: Any) -> None:
    model = _model("early_concat", smoke_config, tokenizer, 32)
    cache = EncodingCache()
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    key = input_digest({"images": images})
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get(model, "prepare_images", key, 8, compute) == 1
    assert cache.get(model, "prepare_images", input_digest({"images": images.clone()}), 8, compute) == 1  # a copy hits
    changed = images.clone()
    changed[0, 0, 0, 0] = 1
    assert cache.get(model, "prepare_images", input_digest({"images": changed}), 8, compute) == 2  # one pixel: a miss
    assert cache.get(model, "embed_image", key, 8, compute) == 3  # another encoding of the same inputs
    assert cache.get(model, "prepare_images", key, 4, compute) == 4  # another batch size
    assert input_digest({"images": images}) != input_digest({"images": images.reshape(2, 3, 16)})
    cache.frozen = True
    assert cache.get(model, "embed_text", key, 8, compute) == 5 and cache.get(model, "embed_text", key, 8, compute) == 6
    assert cache.hits == 1
    with pytest.raises(ValueError, match="one model"):
        cache.get(_model("early_concat", smoke_config, tokenizer, 32), "prepare_images", key, 8, compute)


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("early_concat", RETRIEVAL),
        ("cross_attention", {**RETRIEVAL, "exhaustive_max_images": 0}),
        ("contrastive_clip", RETRIEVAL),
    ],
)
def test_robustness_results_are_identical_with_and_without_reused_encodings(
    method: str, settings: dict, smoke_config: dict, tiny_dataset: Path, tokenizer: Any
) -> None:
    """The clean side is encoded once per job: the same rows and per-item records, fewer tower passes."""
    test = load_split(tiny_dataset, "test")
    model = _model(method, smoke_config, tokenizer, test.image_size).eval()
    task = get_task("retrieval")
    grid = {
        "max_images": 6,
        "severities": [1, 3],
        "image": ["gaussian_noise", "contrast"],
        "text": ["char_swap", "word_delete"],
        "missing": ["image"],
    }

    def evaluate(split: Any, **missing: Any) -> Any:
        return task.evaluate(model, split, tokenizer, CPU, 16, settings, **missing)

    runs = {}
    for reuse in (False, True):
        counters = _tower_counters(model)
        items: dict[Any, Any] = {}
        results = evaluate_robustness(test, task, grid, evaluate, {}, items=items, reuse_encodings=reuse)
        runs[reuse] = (results, items, {k: c.rows for k, c in counters.items()})
        for counter in counters.values():
            counter.handle.remove()
    (plain, plain_items, plain_rows), (reused, reused_items, reused_rows) = runs[False], runs[True]
    assert reused == plain  # every metric, bit for bit
    assert reused_items.keys() == plain_items.keys()
    for cell, arrays in plain_items.items():
        assert all((reused_items[cell][k] == v).all() for k, v in arrays.items()), cell
    # the image tower runs on the clean images once and on each image-corrupted cell; never for text cells
    cells = len(grid["severities"])
    passes = 2 if settings["exhaustive_max_images"] == 0 else 1
    if method == "contrastive_clip":
        passes = 1
    assert plain_rows["image"] == passes * 6 * (1 + cells * 4)
    assert reused_rows["image"] == passes * 6 * (1 + cells * 2)
