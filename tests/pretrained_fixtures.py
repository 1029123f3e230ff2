"""Tiny pretrained towers, built offline, for the tests of ``benchmark.models.pretrained`` and the workflow."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def save_bert(folder: Path, vocab: list[str], layers: int, positions: int) -> Path:
    """A tiny BertModel (width 32, 2 heads; dropout 0.1, as published BERTs have) and its BertTokenizer over
    ``vocab``, saved with save_pretrained into ``folder`` (created; it must not exist yet)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab=str(folder / "vocab.txt")).save_pretrained(str(folder))
    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=positions,
    )
    BertModel(config).eval().save_pretrained(str(folder))
    return folder


def edit_weights(source: Path, folder: Path, edit: Callable[[dict[str, torch.Tensor]], Any]) -> Path:
    """A copy of the checkpoint folder ``source`` at ``folder`` whose ``model.safetensors`` went through
    ``edit`` (which changes the state dict in place: pops a tensor, replaces one with another shape)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
