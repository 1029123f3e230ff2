"""Shared fixtures: a tiny dataset and tokenizer built once per test session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "workflows" / "config" / "smoke.yaml"


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_config() -> dict[str, Any]:
    from benchmark.config import load_config

    return load_config([SMOKE])


def tiny_data_spec(seed: int = 0, **changes: Any) -> dict[str, Any]:
    """A dataset spec small enough to build in well under a second."""
    from benchmark.config import load_config, stage_spec

    config = load_config([SMOKE])
    spec = stage_spec(config, "data", dataset="scenes")
    spec = {k: v for k, v in spec.items() if k not in ("stage", "dataset")}
    spec.update({"seed": seed, "splits": {"train": 64, "val": 16, "test": 24}})
    spec.update(changes)
    return spec


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from benchmark.data.synthetic import build_synthetic_dataset

    root = tmp_path_factory.mktemp("tiny") / "data"
    build_synthetic_dataset(tiny_data_spec(), root)
    return root


@pytest.fixture(scope="session")
def tiny_tokenizer_file(tiny_dataset: Path) -> Path:
    from benchmark.data.coco import read_captions
    from benchmark.data.tokenizer import train_tokenizer

    captions = [c for caps in read_captions(tiny_dataset, "train").values() for c in caps]
    path = tiny_dataset.parent / "tokenizer.json"
    path.write_text(train_tokenizer(captions, vocab_size=200, max_length=24).to_str())
    return path
