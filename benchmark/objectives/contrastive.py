"""Image–text contrastive learning (ITC): symmetric InfoNCE with a learnable temperature.

As in CLIP (Radford et al. 2021): cosine similarities of L2-normalised embeddings, scaled by
``exp(logit_scale)`` (initialised to 1/0.07 and clamped at 100), cross-entropy over the batch
in both directions (image→text and text→image), averaged.

On several processes (:mod:`benchmark.train.distributed`) each rank holds a slice of the global
batch, but the other items of the *global* batch are the negatives. As open_clip's ``ClipLoss``
with ``gather_with_grad=True, local_loss=True`` (``src/open_clip/loss.py``), each rank gathers
every rank's embeddings with a differentiable all-gather (:func:`gather_with_grad`) — whose backward
sends each rank the gradient of the other ranks' losses with respect to its own rows — and
scores only its own rows against the global batch: its image rows against all texts, its text
rows against all images, positives at ``rank · b + i``. The ranks' mean of these local losses is
the global batch's loss, and DDP's gradient average makes the gradient the global batch's too.
Without a process group (one process), under ``no_grad`` (evaluation, FLOP counting, which
one rank may run alone) or with one rank, the loss is the plain one, computed as it always was.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed._functional_collectives import all_gather_single


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy for a square logit matrix whose diagonal holds the positives."""
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"info_nce needs a square logit matrix, got shape {tuple(logits.shape)}")
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` concatenated along dim 0 in rank order (same shape on every rank).

    Differentiable: the backward pass sums, over the ranks, the gradients with respect to this
    rank's rows and hands the sum back to this rank — open_clip's ``gather_with_grad``. open_clip
    calls ``torch.distributed.nn.functional.all_gather``, which torch 2.14 deprecates for the
    functional collective used here (its backward is a reduce-scatter with sum; gloo and NCCL).
    """

    return all_gather_single(tensor.contiguous(), 0, dist.group.WORLD)


def gathering_ranks() -> tuple[int, int]:
    """(rank, ranks) over which a contrastive loss is one slice of a global batch's; (0, 1) when not.

    Gathering needs every rank to take part, in the same order: it happens only in a training
    step (autograd recording) of a process group of more than one rank.
    """
    if not (dist.is_available() and dist.is_initialized() and torch.is_grad_enabled()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def gathered_info_nce(image_emb: torch.Tensor, text_emb: torch.Tensor, scale: torch.Tensor, rank: int) -> torch.Tensor:
    """This rank's share of the global batch's symmetric InfoNCE (open_clip's ``local_loss``).

    Args:
        image_emb, text_emb: b×D, this rank's rows of the global batch (every rank holds b rows).
        scale: the logit scale (a scalar tensor).
        rank: this rank; its rows are ``rank·b … rank·b + b − 1`` of the gathered batch.

    The mean over the ranks of the returned losses equals :func:`info_nce` on the whole batch.
    """
    all_images, all_texts = gather_with_grad(image_emb), gather_with_grad(text_emb)
    labels = torch.arange(image_emb.shape[0], device=image_emb.device) + rank * image_emb.shape[0]
    per_image = scale * image_emb @ all_texts.t()  # b×B: this rank's images against every caption
    per_text = scale * text_emb @ all_images.t()  # b×B: this rank's captions against every image
    return (F.cross_entropy(per_image, labels) + F.cross_entropy(per_text, labels)) / 2


class ImageTextContrastive(nn.Module):
    """Holds the learnable temperature; call with normalised image and text embeddings."""

    def __init__(self, temperature_init: float = 0.07, max_logit_scale: float = 100.0) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature_init)))
        self.max_logit_scale = max_logit_scale

    def scale(self) -> torch.Tensor:
        """``exp(logit_scale)``, clamped at ``max_logit_scale``."""
        return self.logit_scale.exp().clamp(max=self.max_logit_scale)

    def logits(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Image×text logit matrix (of this process's rows only)."""
        return self.scale() * image_emb @ text_emb.t()

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        rank, ranks = gathering_ranks()
        if ranks == 1:
            return info_nce(self.logits(image_emb.float(), text_emb.float()))
        return gathered_info_nce(image_emb.float(), text_emb.float(), self.scale(), rank)
