"""Pretrained unimodal towers: resolve a tower's source once, then build it with or without its weights.

Modules: :mod:`~benchmark.models.pretrained.vision` (timm), :mod:`~benchmark.models.pretrained.text`
(transformers), :mod:`~benchmark.models.pretrained.common` (what both share); this module resolves a
whole model block and re-exports what callers use.

A tower's ``init`` (``model.vision.init`` / ``model.text.init``) is ``random`` (the configured sizes,
:mod:`benchmark.models.encoders`) or a source of pretrained weights. Two steps keep a run honest and
its checkpoints self-contained:

1. :func:`resolve_model_config` (before training) reads only the source's configuration and
   records everything needed to rebuild the architecture without the weights: sizes, input
   resolution, normalisation, the timm architecture (``arch`` + ``arch_kwargs``) or the
   transformers config (``hf_config``), and the sha256 of every file the weights come from
   (``model.sources``). The resolved block goes into the :class:`~benchmark.models.method.BuildContext`,
   hence into every checkpoint's metadata.
2. :func:`build_vision_tower` / :func:`build_text_tower` load the weights through the libraries'
   own loaders when ``load`` is true (a method built from config), and only rebuild the
   architecture when it is false (a method rebuilt from a FuseBench checkpoint, whose weights
   replace the pretrained ones anyway).

Vision sources (timm): a timm model name (``vit_base_patch16_224.augreg2_in21k_ft_in1k``), a Hub
repo (``hf-hub:org/repo``), a local directory in timm's Hub layout (``config.json`` with
``architecture`` + ``model.safetensors``, as ``timm.models.save_for_hf`` writes; loaded as
``local-dir:``), or a local weight file (``.safetensors``/``.pth``/``.bin``) loaded into the timm
architecture ``arch`` or, without ``arch``, into the configured ViT. FuseBench reads [CLS] + patch
tokens, so the model must be a timm ``VisionTransformer`` with exactly one [CLS] token, no register
or distillation tokens, and a square input divisible by its square patches.

Text sources (transformers): a model name or a local directory written by ``save_pretrained``;
an encoder whose ``last_hidden_state[:, 0]`` is the [CLS] state (BERT, RoBERTa, ELECTRA, ...).
Dropout is set to 0, like the random towers': FuseBench's comparisons assume deterministic forward
passes (train and eval agree, resumed runs are bit-identical) and one regularisation setting for
every tower, so a pretrained tower differs from a random one only in its initial weights.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from benchmark.models.pretrained.common import RANDOM, is_pretrained
from benchmark.models.pretrained.text import build_text_tower, resolve_text, usable_length
from benchmark.models.pretrained.vision import build_vision_tower, check_fits, check_vit, file_shapes, resolve_vision

__all__ = [
    "RANDOM",
    "apply_training_options",
    "build_text_tower",
    "build_vision_tower",
    "check_fits",
    "check_vit",
    "file_shapes",
    "is_pretrained",
    "resolve_model_config",
    "usable_length",
]


def resolve_model_config(model: dict[str, Any], max_length: int | None = None) -> dict[str, Any]:
    """A deep copy of the ``model`` block with every pretrained tower's architecture read from its source.

    Vision gains ``width``, ``depth``, ``heads``, ``mlp_ratio``, ``patch_size``, ``image_size`` (the
    pretrained input resolution), ``mean``/``std``/``interpolation`` (timm's data config),
    ``arch`` and ``arch_kwargs`` (``timm.create_model(arch, pretrained=False, num_classes=0,
    **arch_kwargs)`` rebuilds it; ``arch`` None = the configured ViT). Text gains ``width``,
    ``depth``, ``heads``, ``mlp_ratio`` and ``hf_config`` (``AutoModel.from_config`` rebuilds it).
    ``sources`` records, per pretrained tower, ``{"init": as given, "files": {name: sha256}}``: each file
    by its path relative to the weights' folder (the Hub snapshot for a name), a single weight file by its
    name. Random
    towers are left unchanged; with none pretrained the block is returned as a plain copy.

    Args:
        model: the config's ``model`` block.
        max_length: the tokenizer length, checked against a pretrained text model's positions.

    Raises:
        ConfigError: a missing path, an unknown or uncached (offline) name, or a model FuseBench
            cannot use (not a single-[CLS] ViT, not an encoder, too short for ``max_length``).
        DataFileError: a weight file that is unreadable or does not fit the tower.
    """
    resolved = copy.deepcopy(model)
    sources: dict[str, Any] = {}
    if is_pretrained(resolved.get("vision", {})):
        resolved["vision"], files = resolve_vision(resolved["vision"])
        sources["vision"] = {"init": model["vision"]["init"], "files": files}
    if is_pretrained(resolved.get("text", {})):
        resolved["text"], files = resolve_text(resolved["text"], max_length)
        sources["text"] = {"init": model["text"]["init"], "files": files}
    if sources:
        resolved["sources"] = sources
    return resolved


def apply_training_options(tower: nn.Module, encoder: str, block: dict[str, Any]) -> None:
    """``freeze`` and ``lr_multiplier`` of a tower block, applied to its encoder submodule ``encoder``.

    Freezing turns off the encoder's gradients (the tower's heads still train); a multiplier ≠ 1
    is left for :func:`benchmark.train.loop.build_optimizer` in the tower's ``lr_scales``.
    """
    if block.get("freeze", False):
        for param in getattr(tower, encoder).parameters():
            param.requires_grad_(False)
    multiplier = float(block.get("lr_multiplier", 1.0))
    if multiplier != 1.0:
        tower.lr_scales = {encoder: multiplier}
