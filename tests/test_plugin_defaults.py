"""A dataset adapter's defaults enter the configuration when it is completed, hence the data job's spec: changing a
default re-runs exactly the jobs of the datasets it applies to, as a task's defaults (its config blocks) and a
method's (its file, an input of its jobs) do."""

from __future__ import annotations

import copy

import pytest

from benchmark.config import completed, load_yaml, stage_spec
from benchmark.datasets.karpathy import Karpathy
from benchmark.datasets.official import COMMON_DEFAULTS
from benchmark.hashing import config_hash
from benchmark.paths import DEFAULT_CONFIG

COCO = {"kind": "karpathy", "root": "/data", "collection": "coco"}


def data_specs() -> dict[str, str]:
    config = load_yaml(DEFAULT_CONFIG)
    config["datasets"]["coco"] = copy.deepcopy(COCO)
    config = completed(config)
    return {name: config_hash(stage_spec(config, "data", dataset=name)) for name in ("scenes", "coco")}


def test_adapter_defaults_are_in_the_data_spec() -> None:
    config = load_yaml(DEFAULT_CONFIG)
    config["datasets"]["coco"] = copy.deepcopy(COCO)
    spec = stage_spec(completed(config), "data", dataset="coco")
    expected = Karpathy().settings(COCO)  # the common defaults, then Karpathy's own (center_crop), then the block
    assert set(COMMON_DEFAULTS) <= set(expected)
    assert {k: spec[k] for k in expected} == expected
    assert stage_spec(completed(config), "data", dataset="scenes") == {
        "stage": "data",
        "dataset": "scenes",
        **config["datasets"]["scenes"],
    }  # the synthetic adapter has no defaults: its spec is its block


def test_a_changed_adapter_default_reruns_exactly_its_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    before = data_specs()
    monkeypatch.setattr(Karpathy, "defaults", {**Karpathy.defaults, "verify_images": "all"})
    after = data_specs()
    assert after["coco"] != before["coco"]
    assert after["scenes"] == before["scenes"]
