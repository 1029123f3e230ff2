"""A WordPiece tokenizer trained with ``tokenizers`` on the training captions only.

Training on the training split alone keeps val/test text out of the vocabulary, as a real
benchmark must. The saved ``tokenizer.json`` is a standard Hugging Face tokenizer file, so
``transformers.PreTrainedTokenizerFast(tokenizer_file=...)`` loads it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from benchmark.errors import DataFileError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)


def train_tokenizer(texts: Iterable[str], vocab_size: int, max_length: int) -> Tokenizer:
    """Train WordPiece (BERT-style normalisation and pre-tokenisation) on ``texts``."""
    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id(CLS), tokenizer.token_to_id(SEP)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}", special_tokens=[(CLS, cls_id), (SEP, sep_id)]
    )
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(PAD), pad_token=PAD, length=max_length)
    return tokenizer


def load_tokenizer(path: str | Path, max_length: int | None = None) -> Tokenizer:
    """Load ``tokenizer.json``; ``max_length`` re-sets padding/truncation if given."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"tokenizer file not found: {path}")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a plain Exception on malformed JSON
        raise DataFileError(f"tokenizer file {path} is unreadable or malformed: {exc}") from None
    if max_length is not None:
        tokenizer.enable_truncation(max_length=max_length)
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id(PAD), pad_token=PAD, length=max_length)
    return tokenizer


def encode(tokenizer: Tokenizer, texts: list[str]) -> dict[str, torch.Tensor]:
    """Token ids and attention mask, padded to the tokenizer's fixed length."""
    encodings = tokenizer.encode_batch(texts)
    return {
        "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
        "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long),
    }


def special_token_ids(tokenizer: Tokenizer) -> dict[str, int]:
    return {name: tokenizer.token_to_id(token) for name, token in zip(("pad", "unk", "cls", "sep", "mask"), SPECIAL_TOKENS)}
