"""Image↔text retrieval: fine-tuning batches and the evaluation protocol.

Evaluation scores every test caption against every test image. Methods with separate
embeddings (``embed_image`` / ``embed_text``) score by dot product of embeddings computed once
per item; the protocol is recorded as ``embedding``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmark.data.dataset import SceneSplit
from benchmark.data.tokenizer import encode
from benchmark.device import autocast
from benchmark.metrics.retrieval import retrieval_metrics
from benchmark.models.method import FusionMethod


@torch.no_grad()
def _embed_all(fn: Any, items: Any, count: int, batch_size: int, device: torch.device) -> torch.Tensor:
    chunks = []
    for start in range(0, count, batch_size):
        with autocast(device):
            chunks.append(fn(items(start, min(count, start + batch_size))).float())
    return torch.cat(chunks)


@torch.no_grad()
def retrieval_scores(
    model: FusionMethod, split: SceneSplit, tokenizer: Any, device: torch.device, batch_size: int
) -> tuple[np.ndarray, list[int], dict[str, Any]]:
    """Texts × images score matrix, each text's image index, and the protocol used."""
    model.eval()
    texts, owners = split.caption_pairs()
    tokens = {k: v.to(device) for k, v in encode(tokenizer, texts).items()}
    images = split.images.to(device)
    if not model.has_embeddings:
        raise NotImplementedError(f"{model.name} has no embeddings; pairwise retrieval is not supported yet")
    image_emb = _embed_all(model.embed_image, lambda a, b: images[a:b], len(images), batch_size, device)
    text_emb = _embed_all(
        model.embed_text, lambda a, b: {k: v[a:b] for k, v in tokens.items()}, len(texts), batch_size, device
    )
    scores = (text_emb @ image_emb.t()).cpu().numpy().astype(np.float64)
    protocol = {"protocol": "embedding", "texts": len(texts), "images": len(images)}
    return scores, owners, protocol


def evaluate_retrieval(
    model: FusionMethod, split: SceneSplit, tokenizer: Any, device: torch.device, batch_size: int, ks: list[int]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Recall@K in both directions and their mean, plus the protocol record."""
    scores, owners, protocol = retrieval_scores(model, split, tokenizer, device, batch_size)
    return retrieval_metrics(scores, owners, ks), protocol
