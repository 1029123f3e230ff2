"""Tiny pretrained towers, built offline, for the tests of ``benchmark.models.pretrained`` and the workflow."""

from __future__ import annotations

from pathlib import Path

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
