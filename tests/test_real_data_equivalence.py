"""Same pixels and texts, same numbers: a dataset read from an official format scores like the native one.

The synthetic scenes are written in an official format (lossless: PNG bytes under the official
file names), converted back by the format's adapter, and run through the same stages as the
native dataset. Retrieval: the whole pipeline (tokenizer → pretrain → fine-tune → evaluate) on
Karpathy's ``dataset_coco.json`` gives exactly the metrics of the native dataset. Grounding:
one checkpoint trained on the native scenes scores the same on the expressions read back from
gRefCOCO's JSON (every expression) and from REFER's pickle and MDETR's JSON (the single-target
expressions those formats can express).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmark.config import stage_spec

METHOD = "contrastive_clip"


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from benchmark.data.synthetic import build_synthetic_dataset
    from tests.helpers import tiny_data_spec

    folder = tmp_path_factory.mktemp("equivalence") / "native"
    build_synthetic_dataset(tiny_data_spec(), folder)
    return folder


def _train_and_evaluate(config: dict[str, Any], data_dir: Path, out: Path, task: str) -> dict[str, float]:
    """Tokenizer, pretraining, fine-tuning and evaluation of one method on ``data_dir``; the metrics."""
    from benchmark.stages import run_evaluate, run_finetune, run_pretrain, run_tokenizer

    spec = {"dataset": "scenes", "method": METHOD, "seed": 0}
    run_tokenizer(stage_spec(config, "tokenizer", dataset="scenes"), data_dir, out / "tokenizer.json")
    run_pretrain(stage_spec(config, "pretrain", **spec), data_dir, out / "tokenizer.json", out / "pretrain")
    run_finetune(
        stage_spec(config, "finetune", task=task, **spec),
        data_dir,
        out / "tokenizer.json",
        out / "pretrain" / "model.safetensors",
        out / "finetune",
    )
    run_evaluate(
        stage_spec(config, "evaluate", task=task, **spec),
        data_dir,
        out / "tokenizer.json",
        out / "finetune" / "model.safetensors",
        out / "eval.json",
    )
    rows = json.loads((out / "eval.json").read_text())["rows"]
    return without_subsets({row["metric"]: row["value"] for row in rows})


def without_subsets(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics without the compositional split's seen / held-out rows: its tags are a sidecar of the
    synthetic build, which no official format carries (the converted data evaluate on the whole test set)."""
    from benchmark.metrics.compositional import parse_subset_metric

    return {k: v for k, v in metrics.items() if parse_subset_metric(k) is None}


def test_karpathy_coco_gives_the_native_retrieval_metrics(
    smoke_config: dict[str, Any], native: Path, tmp_path: Path
) -> None:
    from benchmark.datasets.karpathy import Karpathy
    from tests.fixtures.official_formats import write_karpathy

    write_karpathy(native, tmp_path / "root", "coco", lossless=True)
    spec = {"kind": "karpathy", "root": str(tmp_path / "root"), "collection": "coco", "image_size": 32}
    Karpathy().prepare({**spec, "subset": {"train": "all", "val": "all", "test": "all"}}, tmp_path / "converted")
    want = _train_and_evaluate(smoke_config, native, tmp_path / "native_run", "retrieval")
    got = _train_and_evaluate(smoke_config, tmp_path / "converted", tmp_path / "converted_run", "retrieval")
    assert (tmp_path / "native_run" / "tokenizer.json").read_bytes() == (
        tmp_path / "converted_run" / "tokenizer.json"
    ).read_bytes()
    assert got == want and want["mean_R"] > 0


def _grounding_metrics(model: Any, split: Any, tokenizer: Any, config: dict[str, Any]) -> dict[str, Any]:
    import torch

    from benchmark.tasks import get_task

    metrics, _, _ = get_task("grounding").evaluate(
        model, split, tokenizer, torch.device("cpu"), 64, config["evaluate"]["grounding"]
    )
    return without_subsets(metrics)


@pytest.mark.parametrize(
    ("form", "kind", "keys"),
    [
        ("grefcoco", "grefcoco", {}),
        ("refer", "refer", {"collection": "refcoco", "format": "refer"}),
        ("mdetr", "refer", {"collection": "refcoco", "format": "mdetr"}),
    ],
)
def test_grounding_formats_give_the_native_metrics_of_one_checkpoint(
    smoke_config: dict[str, Any], native: Path, tmp_path: Path, form: str, kind: str, keys: dict[str, Any]
) -> None:
    from benchmark.data.dataset import load_split
    from benchmark.data.tokenizer import load_tokenizer
    from benchmark.datasets import get_adapter
    from benchmark.stages import run_finetune, run_pretrain, run_tokenizer
    from benchmark.train.checkpoint import load_trained
    from tests.fixtures import official_formats

    writer = {"grefcoco": official_formats.write_grefcoco, "refer": official_formats.write_refer}
    writer.get(form, official_formats.write_mdetr)(native, tmp_path / "root", lossless=True)
    spec = {"kind": kind, "root": str(tmp_path / "root"), "image_size": 32, **keys}
    get_adapter(kind).prepare({**spec, "subset": {s: "all" for s in ("train", "val", "test")}}, tmp_path / "converted")

    run = tmp_path / "run"
    job = {"dataset": "scenes", "method": METHOD, "seed": 0}
    run_tokenizer(stage_spec(smoke_config, "tokenizer", dataset="scenes"), native, run / "tokenizer.json")
    run_pretrain(stage_spec(smoke_config, "pretrain", **job), native, run / "tokenizer.json", run / "pretrain")
    run_finetune(
        stage_spec(smoke_config, "finetune", task="grounding", **job),
        native,
        run / "tokenizer.json",
        run / "pretrain" / "model.safetensors",
        run / "finetune",
    )
    model, _ = load_trained(run / "finetune" / "model.safetensors", "cpu")
    tokenizer = load_tokenizer(run / "tokenizer.json", smoke_config["tokenizer"]["max_length"])
    reference = load_split(native, "test")
    if form != "grefcoco":  # REFER and MDETR express single-target expressions only
        reference = replace(reference, refs=[r for r in reference.refs if r["kind"] == "single"])
    converted = load_split(tmp_path / "converted", "test")
    assert len(converted.refs) == len(reference.refs) > 0
    want = _grounding_metrics(model, reference, tokenizer, smoke_config)
    got = _grounding_metrics(model, converted, tokenizer, smoke_config)
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert (got[name] is None) == (value is None), name
        if value is not None:
            assert got[name] == pytest.approx(value, abs=1e-9), name
