"""Masked modelling: MLM on text tokens (BERT) and MIM on image patches (SimMIM).

MLM (Devlin et al. 2019): 15% of the real text tokens — never [CLS], [SEP], [PAD] or other
special tokens — become targets; of those 80% are replaced by [MASK], 10% by a random
ordinary token and 10% left unchanged. Fusion encoders predict them with the image in
context (image-conditioned MLM, as in ViLT and ALBEF).

MIM (Xie et al. 2022, SimMIM): a fraction of patches is replaced by a learnable mask token
before the encoder; a linear decoder regresses the normalised pixels of the masked patches
(L1 loss, computed on masked patches only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.seeding import shared_stream

IGNORE = -100


@shared_stream("mlm mask")
def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special_ids: list[int],
    mask_id: int,
    vocab_size: int,
    probability: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked input ids, labels with IGNORE everywhere but the targets).

    Every sequence with at least one real token gets at least one target, so no sample is
    wasted. Draws from its own stream of the trainer's per-step seed (:func:`benchmark.seeding.shared_stream`):
    every method masks the same tokens of the same batch at seed k.
    """
    device = input_ids.device
    special = torch.tensor(sorted(set(special_ids)), device=device)
    candidates = attention_mask.bool() & ~torch.isin(input_ids, special)
    scores = torch.rand(input_ids.shape, device=device)
    chosen = candidates & (scores < probability)
    # guarantee one target per sequence: the candidate with the lowest score
    has_candidate = candidates.any(dim=1)
    forced = torch.where(candidates, scores, torch.full_like(scores, 2.0)).argmin(dim=1)
    chosen[has_candidate, forced[has_candidate]] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    action = torch.rand(input_ids.shape, device=device)
    masked = input_ids.clone()
    masked[chosen & (action < 0.8)] = mask_id
    ordinary = torch.tensor([t for t in range(vocab_size) if t not in set(special_ids)], device=device)
    randomize = chosen & (action >= 0.8) & (action < 0.9)
    masked[randomize] = ordinary[torch.randint(len(ordinary), (int(randomize.sum()),), device=device)]
    return masked, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the target positions only."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE)


@shared_stream("mim mask")
def random_patch_mask(batch_size: int, patches: int, ratio: float, device: torch.device) -> torch.Tensor:
    """Exactly ``round(ratio · patches)`` masked patches per image (True = masked); from its own stream of the
    per-step seed, like :func:`mask_tokens`."""
    count = max(1, round(ratio * patches))
    order = torch.rand(batch_size, patches, device=device).argsort(dim=1)
    return order < count


def mim_loss(predicted: torch.Tensor, target: torch.Tensor, patch_mask: torch.Tensor) -> torch.Tensor:
    """Mean L1 error of predicted patch pixels over masked patches."""
    error = (predicted.float() - target.float()).abs().mean(dim=-1)
    return (error * patch_mask).sum() / patch_mask.sum().clamp(min=1)
