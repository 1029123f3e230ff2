"""The data and tokenizer stages: build (or check) a dataset's standard form; train or export the tokenizer."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from benchmark.data.standard_form import read_captions, read_manifest
from benchmark.data.tokenizer import export_pretrained_tokenizer, train_tokenizer
from benchmark.datasets import get_adapter
from benchmark.errors import DataFileError
from benchmark.io import write_json, write_text
from benchmark.paths import data_record_path
from benchmark.stages.records import result_record

log = logging.getLogger("fusebench")


def run_data(spec: dict[str, Any], build_dir: Path) -> None:
    """Build the dataset ``spec`` describes into ``build_dir``, or check the one its adapter reads in place."""

    started = time.perf_counter()
    adapter = get_adapter(spec["kind"])
    settings = {k: v for k, v in spec.items() if k not in ("stage", "dataset")}
    where = adapter.data_dir(settings, build_dir)
    log.info(
        "%s dataset %r (%s) at %s",
        "building" if adapter.generates else "checking",
        spec["dataset"],
        spec["kind"],
        where,
    )
    record = adapter.prepare(settings, build_dir)
    log.info("dataset %r: %s", spec["dataset"], {s: v["images"] for s, v in record["splits"].items()})
    write_json(data_record_path(build_dir), result_record(spec, started, data_dir=str(where), **record))


def run_tokenizer(spec: dict[str, Any], data_dir: Path | None, out_file: Path) -> None:
    """Train the tokenizer on the training captions only; or, for a pretrained text tower (``spec["init"]``),
    write that model's own tokenizer in the same file format."""

    if "init" in spec:
        tokenizer = export_pretrained_tokenizer(spec["init"], spec["max_length"])
        write_text(out_file, tokenizer.to_str(pretty=True))
        log.info("tokenizer of %s: %d tokens → %s", spec["init"], tokenizer.get_vocab_size(), out_file)
        return
    if data_dir is None:
        raise DataFileError("fusebench tokenizer: --data is required to train a tokenizer")
    read_manifest(data_dir)
    captions = [c for caps in read_captions(data_dir, "train").values() for c in caps]
    tokenizer = train_tokenizer(captions, spec["vocab_size"], spec["max_length"])
    write_text(out_file, tokenizer.to_str(pretty=True))
    log.info("tokenizer: %d tokens from %d training captions → %s", tokenizer.get_vocab_size(), len(captions), out_file)
