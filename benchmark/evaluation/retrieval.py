"""Image↔text retrieval: the evaluation protocols, chosen per method and recorded with results.

* ``embedding``: scores are dot products of ``embed_image`` and ``embed_text`` (dual encoders,
  late fusion); every pair is scored.
* ``exhaustive``: a fusion head scores every (text, image) pair; per-item encodings
  (``prepare_images`` / ``prepare_texts``) are computed once and only the fusion runs per pair.
  Used when the test set has at most ``exhaustive_max_images`` images, or always for a method
  without embeddings to shortlist with.
* ``itc_shortlist``: ALBEF/BLIP's protocol for large test sets — for each query the top
  ``shortlist_k`` candidates by embedding similarity are re-scored by the fusion head; the
  rest keep their similarity order below every shortlisted candidate.

Only the first ``max_images`` test images (and their captions) are used when it is set, the
same subset for every method.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from benchmark.data.compositional import count_tags
from benchmark.data.dataset import SceneSplit
from benchmark.data.images import Images, take_head
from benchmark.data.sampling import trim_padding
from benchmark.data.tokenizer import encode
from benchmark.device import autocast
from benchmark.metrics.compositional import retrieval_subset_metrics
from benchmark.metrics.retrieval import best_positive_rank, retrieval_metrics
from benchmark.models.method import FusionMethod

Prepared = dict[str, torch.Tensor]


def _batched(fn: Callable[[int, int], Any], count: int, batch_size: int, device: torch.device) -> Any:
    """Run ``fn(start, stop)`` over chunks; concatenate tensors or dicts of tensors."""
    chunks = []
    for start in range(0, count, batch_size):
        with autocast(device):
            chunks.append(fn(start, min(count, start + batch_size)))
    if isinstance(chunks[0], dict):
        return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
    return torch.cat(chunks)


def _take(prepared: Prepared, index: torch.Tensor) -> Prepared:
    return {k: v[index] for k, v in prepared.items()}


def _score_pairs(
    model: FusionMethod,
    images: Prepared,
    texts: Prepared,
    image_index: torch.Tensor,
    text_index: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Fusion scores of the (image_index[k], text_index[k]) pairs, in chunks."""

    def chunk(a: int, b: int) -> torch.Tensor:
        return model.score_prepared(_take(images, image_index[a:b]), _take(texts, text_index[a:b])).float()

    return _batched(chunk, len(image_index), batch_size, device)


def test_subset(split: SceneSplit, max_images: int | None) -> tuple[Images, list[str], list[int]]:
    """Images, captions and caption owners of the first ``max_images`` test images."""
    count = len(split) if max_images is None else min(max_images, len(split))
    texts, owners = [], []
    for index in range(count):
        texts.extend(split.captions[index])
        owners.extend([index] * len(split.captions[index]))
    return take_head(split.images, count), texts, owners


@torch.no_grad()
def retrieval_scores(
    model: FusionMethod,
    split: SceneSplit,
    tokenizer: Any,
    device: torch.device,
    batch_size: int,
    settings: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, list[int], dict[str, Any]]:
    """(t2i scores, i2t scores) as texts × images matrices, caption owners, protocol record."""
    model.eval()
    image_pixels, texts, owners = test_subset(split, settings.get("max_images"))
    images = image_pixels.to(device)
    tokens = {k: v.to(device) for k, v in trim_padding(encode(tokenizer, texts)).items()}
    n_images, n_texts = len(images), len(texts)
    record: dict[str, Any] = {"texts": n_texts, "images": n_images}

    def embeddings() -> torch.Tensor:
        image_emb = _batched(lambda a, b: model.embed_image(images[a:b]).float(), n_images, batch_size, device)
        text_emb = _batched(
            lambda a, b: model.embed_text({k: v[a:b] for k, v in tokens.items()}).float(), n_texts, batch_size, device
        )
        return text_emb @ image_emb.t()

    if not model.has_pair_scorer:
        if not model.has_embeddings:
            raise NotImplementedError(f"{model.name} has neither embeddings nor a pair scorer")
        scores = embeddings()
        record["protocol"] = "embedding"
        return scores.cpu().double().numpy(), scores.cpu().double().numpy(), owners, record

    prepared_images = _batched(lambda a, b: model.prepare_images(images[a:b]), n_images, batch_size, device)
    prepared_texts = _batched(
        lambda a, b: model.prepare_texts({k: v[a:b] for k, v in tokens.items()}), n_texts, batch_size, device
    )
    shortlist = model.has_embeddings and n_images > settings["exhaustive_max_images"]
    if not shortlist:
        image_index = torch.arange(n_images, device=device).repeat_interleave(n_texts)
        text_index = torch.arange(n_texts, device=device).repeat(n_images)
        scores = _score_pairs(model, prepared_images, prepared_texts, image_index, text_index, batch_size, device)
        matrix = scores.reshape(n_images, n_texts).t().cpu().double().numpy()
        record["protocol"] = "exhaustive" if model.has_embeddings else "exhaustive (no embeddings to shortlist with)"
        record["pairs_scored"] = n_images * n_texts
        return matrix, matrix, owners, record

    k = settings["shortlist_k"]
    similarity = embeddings()
    t2i = _rerank(
        model, similarity, prepared_images, prepared_texts, k, by_text=True, batch_size=batch_size, device=device
    )
    i2t = _rerank(
        model, similarity, prepared_images, prepared_texts, k, by_text=False, batch_size=batch_size, device=device
    )
    record.update(
        {
            "protocol": "itc_shortlist",
            "shortlist_k": k,
            "pairs_scored": n_texts * min(k, n_images) + n_images * min(k, n_texts),
        }
    )
    return t2i, i2t, owners, record


def _rerank(
    model: FusionMethod,
    similarity: torch.Tensor,
    images: Prepared,
    texts: Prepared,
    k: int,
    by_text: bool,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Re-score each query's top-k candidates with the fusion head; others stay below, in ITC order."""
    sim = similarity if by_text else similarity.t()  # queries × candidates
    k = min(k, sim.shape[1])
    top = sim.topk(k, dim=1).indices  # ties: order irrelevant, all re-scored
    queries = torch.arange(sim.shape[0], device=sim.device).repeat_interleave(k)
    candidates = top.reshape(-1)
    text_index, image_index = (queries, candidates) if by_text else (candidates, queries)
    fused = _score_pairs(model, images, texts, image_index, text_index, batch_size, device)
    offset = float(fused.min()) - float(sim.max()) - 1.0
    result = sim + offset
    result[queries, candidates] = fused
    result = result if by_text else result.t()
    return result.cpu().double().numpy()


def evaluate_retrieval(
    model: FusionMethod,
    split: SceneSplit,
    tokenizer: Any,
    device: torch.device,
    batch_size: int,
    settings: dict[str, Any],
    subset_metrics: Sequence[str] = (),
) -> tuple[dict[str, float | None], dict[str, Any], dict[str, np.ndarray]]:
    """Recall@K in both directions and their mean, the protocol record, and per-query ranks.

    On a split tagged seen / held-out, ``subset_metrics`` are also reported on each subset
    (:mod:`benchmark.metrics.compositional`: full gallery, the subset's queries)."""
    t2i, i2t, owners, protocol = retrieval_scores(model, split, tokenizer, device, batch_size, settings)
    owner = np.asarray(owners)
    positives = owner[:, None] == np.arange(t2i.shape[1])[None, :]
    items = {
        "t2i_rank": best_positive_rank(t2i, positives),
        "text_owner": owner,
        "i2t_rank": best_positive_rank(i2t.T, positives.T),
        "ks": np.asarray(settings["ks"]),
    }
    metrics: dict[str, float | None] = {**retrieval_metrics(t2i, owners, settings["ks"], i2t_scores=i2t)}
    if split.tagged and subset_metrics:
        count = t2i.shape[1]
        caption_subsets = [tag for tags in split.caption_subsets[:count] for tag in tags]
        metrics.update(
            retrieval_subset_metrics(
                t2i, i2t, owners, settings["ks"], caption_subsets, split.image_subsets[:count], subset_metrics
            )
        )
        protocol["subset_queries"] = {
            "t2i": count_tags(caption_subsets),
            "i2t": count_tags(split.image_subsets[:count]),
        }
    return metrics, protocol, items
