"""A WordPiece tokenizer trained with ``tokenizers`` on the training captions only.

Training on the training split alone keeps val/test text out of the vocabulary, as a real
benchmark must. The saved ``tokenizer.json`` is a standard Hugging Face tokenizer file, so
``transformers.PreTrainedTokenizerFast(tokenizer_file=...)`` loads it too.

The vocabulary is learnt here, not by ``tokenizers.trainers.WordPieceTrainer``: that trainer
breaks ties between equally frequent symbols and pairs in hash-map order, which differs from
one process to the next, so the same captions gave a different vocabulary (different tokens,
different ids) in every run. :func:`wordpiece_vocabulary` runs the same algorithm (BPE merges
over word counts, ``##`` marking word-internal pieces) with every tie broken by the strings
themselves, so the file is byte-identical for the same captions in any process.

A pretrained text tower brings its own tokenizer instead (:func:`export_pretrained_tokenizer`):
its ``tokenizers`` backend, set to truncate and pad to ``max_length`` with the model's pad token,
is written as the run's tokenizer file. Such files may name their special tokens RoBERTa-style
(``<pad>``, ``<s>``, ...); :func:`load_tokenizer` and :func:`special_token_ids` read either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import AutoTokenizer

from benchmark.errors import ConfigError, DataFileError
from benchmark.sources import text_location

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
# The token of each role, BERT's name first, then the RoBERTa-style alternative.
ROLE_TOKENS = {
    "pad": (PAD, "<pad>"),
    "unk": (UNK, "<unk>"),
    "cls": (CLS, "<s>"),
    "sep": (SEP, "</s>"),
    "mask": (MASK, "<mask>"),
}
CONTINUATION = "##"  # marks a piece that continues a word (BERT's WordPiece convention)


def wordpiece_vocabulary(words: Counter[str], vocab_size: int) -> dict[str, int]:
    """Token → id: special tokens, the alphabet, then merged pieces in the order they were learnt.

    Each word starts as its first character followed by ``##``-prefixed characters; the most
    frequent adjacent pair (counted over word frequencies) is merged until the vocabulary has
    ``vocab_size`` tokens or no pair is left. Ties go to the lexicographically smallest pair.
    """
    pieces = {word: [word[0], *(CONTINUATION + c for c in word[1:])] for word in sorted(words)}
    tokens = list(SPECIAL_TOKENS)
    alphabet = sorted({piece for split in pieces.values() for piece in split})
    tokens += [t for t in sorted(alphabet, key=lambda t: (t.startswith(CONTINUATION), t)) if t not in tokens]
    known = set(tokens)
    while len(tokens) < vocab_size:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, split in pieces.items():
            for pair in zip(split, split[1:]):
                pairs[pair] += words[word]
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merged = best[0] + best[1].removeprefix(CONTINUATION)
        for word, split in pieces.items():
            pieces[word] = _merge(split, best, merged)
        if merged not in known:
            tokens.append(merged)
            known.add(merged)
    return {token: i for i, token in enumerate(tokens)}


def _merge(split: list[str], pair: tuple[str, str], merged: str) -> list[str]:
    out, i = [], 0
    while i < len(split):
        if i + 1 < len(split) and (split[i], split[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(split[i])
            i += 1
    return out


def train_tokenizer(texts: Iterable[str], vocab_size: int, max_length: int) -> Tokenizer:
    """Train WordPiece (BERT-style normalisation and pre-tokenisation) on ``texts``."""
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = Counter(
        word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    )
    tokenizer = Tokenizer(
        models.WordPiece(wordpiece_vocabulary(words, vocab_size), unk_token=UNK, continuing_subword_prefix=CONTINUATION)
    )
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
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
        pad_id, pad_token = _pad_of(tokenizer, path)
        tokenizer.enable_truncation(max_length=max_length)
        tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token, length=max_length)
    return tokenizer


def _pad_of(tokenizer: Tokenizer, source: str | Path | None) -> tuple[int, str]:
    """The file's own pad token: its saved padding, else the pad role's token (``[PAD]`` / ``<pad>``)."""
    padding = tokenizer.padding
    if padding and padding.get("pad_token") and tokenizer.token_to_id(padding["pad_token"]) is not None:
        return tokenizer.token_to_id(padding["pad_token"]), padding["pad_token"]
    token = _role_token(tokenizer, "pad", source)
    return tokenizer.token_to_id(token), token


def _role_token(tokenizer: Tokenizer, role: str, source: str | Path | None) -> str:
    for token in ROLE_TOKENS[role]:
        if tokenizer.token_to_id(token) is not None:
            return token
    where = f"tokenizer file {source}" if source is not None else "the tokenizer"
    raise DataFileError(f"{where} has no {role} token (looked for {' or '.join(ROLE_TOKENS[role])})")


def export_pretrained_tokenizer(init: str, max_length: int) -> Tokenizer:
    """The ``tokenizers`` tokenizer of a pretrained text model (``model.text.init``), padded to ``max_length``.

    Loaded with ``AutoTokenizer.from_pretrained`` (local files only for a directory or when the Hub
    is offline); truncation and padding to ``max_length`` use the model's own pad token, so
    :func:`encode` gives the ids the model was trained on.
    """

    source, local_only = text_location(init)
    try:
        pretrained = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"'model.text.init': no tokenizer for {init!r}: {exc}") from None
    backend = getattr(pretrained, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(f"'model.text.init': {init} has no fast (tokenizers) tokenizer to export")
    if pretrained.pad_token is None or pretrained.pad_token_id is None:
        raise ConfigError(f"'model.text.init': the tokenizer of {init} has no pad token")
    tokenizer = Tokenizer.from_str(backend.to_str())
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=pretrained.pad_token_id, pad_token=str(pretrained.pad_token), length=max_length)
    return tokenizer


def encode(tokenizer: Tokenizer | Any, texts: list[str]) -> dict[str, torch.Tensor]:
    """Token ids and attention mask, padded to the tokenizer's fixed length.

    ``tokenizer`` is FuseBench's ``tokenizers.Tokenizer`` or a method's own tokenizer (an object
    with ``encode_texts``, see :meth:`benchmark.models.method.FusionMethod.text_tokenizer`).
    """
    if hasattr(tokenizer, "encode_texts"):
        return tokenizer.encode_texts(list(texts))
    encodings = tokenizer.encode_batch(texts)
    return {
        "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
        "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long),
    }


def special_token_ids(tokenizer: Tokenizer, source: str | Path | None = None) -> dict[str, int]:
    """Role (pad, unk, cls, sep, mask) → token id, by BERT's names or the RoBERTa-style alternatives.

    The pad role is the tokenizer's padding token when padding is set. A missing role is a
    DataFileError naming ``source`` (the tokenizer file) and the role.
    """
    ids = {role: tokenizer.token_to_id(_role_token(tokenizer, role, source)) for role in ROLE_TOKENS}
    ids["pad"] = _pad_of(tokenizer, source)[0]
    return ids
