"""The corruption families and the missing-modality draw: which family a corruption belongs to, and which examples
lose a modality. Facts about corruptions that the tasks, the robustness grid and the tables all read."""

from __future__ import annotations

import torch

from benchmark.corruptions.image import IMAGE_CORRUPTIONS
from benchmark.corruptions.text import SENTENCE_PERTURBATIONS, TEXT_CORRUPTIONS
from benchmark.seeding import derive_seed

MISSING = ("missing_image", "missing_text")


def family(corruption: str) -> str:
    """image / text / missing, from the corruption's name."""
    if corruption in IMAGE_CORRUPTIONS:
        return "image"
    if corruption in TEXT_CORRUPTIONS or corruption in SENTENCE_PERTURBATIONS:
        return "text"
    if corruption in MISSING:
        return "missing"
    raise ValueError(f"unknown corruption {corruption!r}")


def modality(corruption: str) -> str:
    """The modality a corruption changes (image / text): its family's, or the one a missing-modality draw removes.
    A method that does not read it (``FusionMethod.modalities``) is not scored on it."""
    if corruption in MISSING:
        return corruption.removeprefix("missing_")
    return family(corruption)


def missing_mask(ids: list[int], corruption: str, severity: int) -> torch.Tensor:
    """Which examples lose the modality: a seeded fraction severity/5, decided per example."""
    fraction = severity / 5
    return torch.tensor([(derive_seed("missing", i, corruption, severity) % 10_000) / 10_000 < fraction for i in ids])
