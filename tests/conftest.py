"""Shared fixtures: a tiny dataset and tokenizer built once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def _isolated_global_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts from the same process-wide state, whatever ran before it.

    ``seed_everything`` (called by every stage) switches on torch's deterministic algorithms
    and seeds the global RNGs for the rest of the process; without this fixture a test's
    outcome could depend on which tests ran earlier. Global RNGs are seeded from the test's
    id, and torch's determinism switches and ``CUBLAS_WORKSPACE_CONFIG`` are put back after it.
    """
    import random

    import numpy as np
    import torch

    from benchmark.seeding import derive_seed

    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn_benchmark = torch.backends.cudnn.benchmark
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    seed = derive_seed("test", request.node.nodeid)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    yield
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    if cublas is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


SMALL_SCENES = {"train": 24, "val": 8, "test": 8}
SMALL_IMAGE_SIZE = 32


def build_small_scenes(folder: Path, splits: dict[str, int] = SMALL_SCENES, image_size: int = SMALL_IMAGE_SIZE) -> Path:
    """The default config's synthetic scenes, small (24/8/8 images of 32 px unless told), built into ``folder``:
    what the official-format tests write out in each format and compare with."""
    from benchmark.config import load_yaml
    from benchmark.data.synthetic import build_synthetic_dataset
    from benchmark.paths import DEFAULT_CONFIG

    spec = load_yaml(DEFAULT_CONFIG)["datasets"]["scenes"]
    build_synthetic_dataset({**spec, "splits": dict(splits), "image_size": image_size}, folder)
    return folder


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
    from benchmark.data.standard_form import read_captions
    from benchmark.data.tokenizer import train_tokenizer

    captions = [c for caps in read_captions(tiny_dataset, "train").values() for c in caps]
    path = tiny_dataset.parent / "tokenizer.json"
    path.write_text(train_tokenizer(captions, vocab_size=200, max_length=24).to_str())
    return path
