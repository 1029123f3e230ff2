"""Image–text matching (ITM): binary classification of matched vs mismatched pairs.

Two schemes, after the papers the baselines follow:

* ``itm_loss`` (ALBEF, Li et al. 2021): for every image a negative caption and for every
  caption a negative image are drawn from the batch, with probability proportional to
  ``softmax(ITC similarity)`` over the *other* items — hard negatives the contrastive model
  confuses — giving B positives and 2B negatives. ``hard_fraction`` mixes that distribution
  with the uniform one (ALBEF: 1.0). Trained from scratch, pure hard negatives stall ITM
  at its prior: once ITC works, the most similar caption of another scene often describes
  this scene too (a partial caption such as "a scene with a red circle"), so the hardest
  negatives are largely false negatives. Without contrastive embeddings
  (``similarity=None``) negatives are uniform. The positive is never drawn.
* ``itm_loss_swap`` (ViLT, Kim et al. 2021): each pair's image is replaced by a different
  image of the batch with probability 0.5 — one fused pass per pair.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from benchmark.seeding import shared_stream


def _negative_weights(sim: torch.Tensor | None, eye: torch.Tensor, hard_fraction: float) -> torch.Tensor:
    """Row-normalised sampling weights over the other items of the batch."""
    uniform = (~eye).float() / (eye.shape[0] - 1)
    if sim is None or hard_fraction == 0.0:
        return uniform
    hard = F.softmax(sim.masked_fill(eye, float("-inf")), dim=1)
    return hard_fraction * hard + (1.0 - hard_fraction) * uniform


@shared_stream("itm negatives")
def sample_negatives(
    batch_size: int, similarity: torch.Tensor | None, hard_fraction: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(negative caption per image, negative image per caption), never the positive itself.

    ``similarity`` is image×text. Draws from its own stream of the trainer's per-step seed
    (:func:`benchmark.seeding.shared_stream`): methods drawing negatives the same way (the same weights) draw
    the same negatives at seed k.
    """
    if batch_size < 2:
        raise ValueError("ITM needs a batch of at least 2 pairs to draw negatives")
    eye = torch.eye(batch_size, dtype=torch.bool)
    sim = None if similarity is None else similarity.detach().float().cpu()
    neg_text = torch.multinomial(_negative_weights(sim, eye, hard_fraction), 1).squeeze(1)
    neg_image = torch.multinomial(_negative_weights(None if sim is None else sim.t(), eye, hard_fraction), 1).squeeze(1)
    return neg_text, neg_image


def itm_loss(
    match_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch_size: int,
    similarity: torch.Tensor | None = None,
    device: torch.device | None = None,
    hard_fraction: float = 1.0,
) -> torch.Tensor:
    """BCE over B positives, B (image, negative caption) and B (negative image, caption) pairs.

    ``match_logits(image_index, text_index)`` scores aligned index pairs into the batch.
    """
    neg_text, neg_image = sample_negatives(batch_size, similarity, hard_fraction)
    own = torch.arange(batch_size)
    image_index = torch.cat([own, own, neg_image])
    text_index = torch.cat([own, neg_text, own])
    labels = torch.cat([torch.ones(batch_size), torch.zeros(2 * batch_size)])
    if device is not None:
        image_index, text_index, labels = image_index.to(device), text_index.to(device), labels.to(device)
    logits = match_logits(image_index, text_index).float()
    return F.binary_cross_entropy_with_logits(logits, labels)


def itm_loss_swap(
    match_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch_size: int,
    device: torch.device | None = None,
    swap_probability: float = 0.5,
) -> torch.Tensor:
    """BCE over B pairs whose image is swapped for a uniformly drawn other one with prob. 0.5."""
    _neg_text, neg_image = sample_negatives(batch_size, None)
    with shared_stream("itm swap"):
        swap = torch.rand(batch_size) < swap_probability
    own = torch.arange(batch_size)
    image_index = torch.where(swap, neg_image, own)
    labels = (~swap).float()
    if device is not None:
        image_index, own, labels = image_index.to(device), own.to(device), labels.to(device)
    logits = match_logits(image_index, own).float()
    return F.binary_cross_entropy_with_logits(logits, labels)
