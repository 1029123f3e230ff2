"""The same config and seed give the same bytes in every process, not only within one.

Hash-ordered collections (Python's sets under PYTHONHASHSEED, Rust hash maps in ``tokenizers``)
change order between processes; tests that train twice inside one pytest process cannot see
that, so these run each stage in two fresh processes with different hash seeds.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from benchmark.data.tokenizer import SPECIAL_TOKENS, wordpiece_vocabulary
from tests.helpers import config_args, fusebench_process, job_args

TINY = [
    "datasets.scenes.splits={train: 48, val: 8, test: 8}",
    "pretrain.steps=3",
    "pretrain.batch_size=8",
    "pretrain.warmup_steps=1",
    "pretrain.checkpoint_every=2",
]


def fusebench(*args: str, hash_seed: str) -> None:
    result = fusebench_process(*args, *config_args(*TINY), env={**os.environ, "PYTHONHASHSEED": hash_seed})
    assert result.returncode == 0, result.stderr[-3000:]


def build(root: Path, hash_seed: str) -> list[Path]:
    """data → tokenizer → pretrain (3 steps) in separate processes; the files to compare."""
    data, tokenizer, model = root / "data", root / "tokenizer.json", root / "pretrain"
    fusebench("data", "--dataset", "scenes", "--out", str(data), hash_seed=hash_seed)
    fusebench("tokenizer", "--dataset", "scenes", "--data", str(data), "--out", str(tokenizer), hash_seed=hash_seed)
    fusebench("pretrain", *job_args("cross_attention", data, model, tokenizer), hash_seed=hash_seed)
    return [data / "manifest.json", tokenizer, model / "model.safetensors"]


def test_data_tokenizer_and_pretraining_are_byte_identical_across_processes(tmp_path: Path) -> None:
    first, second = build(tmp_path / "a", "1"), build(tmp_path / "b", "2")
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), f"{a.relative_to(tmp_path / 'a')} differs between processes"


def test_wordpiece_vocabulary_merges_the_most_frequent_pair_and_breaks_ties_by_the_strings() -> None:
    # pairs after the alphabet: (a, ##b) × 3, (##b, ##c) × 2, (x, ##y) × 2 → "ab" first; then
    # (ab, ##c) × 2 ties with (x, ##y) × 2 → "abc" (smaller strings) before "xy"
    vocab = wordpiece_vocabulary(Counter({"abc": 2, "ab": 1, "xy": 2}), vocab_size=100)
    tokens = sorted(vocab, key=vocab.get)
    assert tokens[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert tokens[len(SPECIAL_TOKENS) :] == ["a", "x", "##b", "##c", "##y", "ab", "abc", "xy"]
    assert len(wordpiece_vocabulary(Counter({"abc": 2, "ab": 1, "xy": 2}), vocab_size=11)) == 11
