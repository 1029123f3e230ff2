"""Inputs cannot be mislabelled: a job's data build and tokenizer by sha256, and the checkpoint it starts from checked
against its own job before anything is written (:func:`benchmark.train.checkpoint.check_job`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.data.standard_form import MANIFEST, read_manifest
from benchmark.errors import DataFileError
from benchmark.io import sha256_file
from benchmark.train.checkpoint import check_job


def input_hashes(data_dir: Path, tokenizer_file: Path) -> dict[str, str]:
    """The sha256 of the tokenizer file and of the data build's manifest, as checkpoints record them."""

    read_manifest(data_dir)  # a missing or broken data build is named here, as an input error
    if not Path(tokenizer_file).is_file():
        raise DataFileError(f"tokenizer file not found: {tokenizer_file}")
    return {"tokenizer_sha256": sha256_file(Path(tokenizer_file)), "data_sha256": sha256_file(data_dir / MANIFEST)}


def _hash_sources(data_dir: Path, tokenizer_file: Path) -> dict[str, str]:
    """Where the requested hashes of :func:`input_hashes` come from, for a mismatch message."""

    return {"tokenizer_sha256": f"--tokenizer {tokenizer_file}", "data_sha256": f"--data {Path(data_dir) / MANIFEST}"}


def check_init(spec: dict[str, Any], init: Path, meta: dict[str, Any], data_dir: Path, tokenizer_file: Path) -> None:
    """Fine-tuning starts from this job's pretraining: same method and seed, the dataset it is
    pretrained on (``pretrained_on``: itself, or its ``pretrain_from``), same tokenizer file, and,
    when pretrained on itself, same data build."""

    pretrained_on = spec.get("pretrained_on", spec["dataset"])
    hashes = input_hashes(data_dir, tokenizer_file)
    wanted = {"stage": "pretrain", "method": spec["method"], "seed": spec["seed"], "dataset": pretrained_on}
    wanted["tokenizer_sha256"] = hashes["tokenizer_sha256"]
    if pretrained_on == spec["dataset"]:
        wanted["data_sha256"] = hashes["data_sha256"]
    sources = {"stage": "--init takes a pretrained checkpoint", **_hash_sources(data_dir, tokenizer_file)}
    if pretrained_on != spec["dataset"]:
        sources["dataset"] = f"{spec['dataset']!r} is pretrained on {pretrained_on!r}"
    check_job(init, meta, wanted, sources)


def check_finetuned(
    spec: dict[str, Any], checkpoint: Path, meta: dict[str, Any], data_dir: Path, tokenizer_file: Path
) -> None:
    """Evaluation scores this job's fine-tuned checkpoint: same method, seed, task, dataset,
    tokenizer file and data build."""

    wanted = {
        "stage": "finetune",
        "method": spec["method"],
        "seed": spec["seed"],
        "task": spec["task"],
        "dataset": spec["dataset"],
        **input_hashes(data_dir, tokenizer_file),
    }
    sources = {"stage": f"{spec['stage']} takes a fine-tuned checkpoint", **_hash_sources(data_dir, tokenizer_file)}
    check_job(checkpoint, meta, wanted, sources)
