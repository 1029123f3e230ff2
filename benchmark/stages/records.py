"""What every result file of a stage records: its spec, provenance, the data it read and the weights it came from."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from benchmark.data.standard_form import read_manifest
from benchmark.hashing import config_hash
from benchmark.provenance import provenance


def process_age_s() -> float | None:
    """Seconds since this process started, from Linux's ``/proc`` (None where it cannot be read): at a stage's
    start, the interpreter's start-up, the imports and the argument parsing it took to get there."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def job_timing(started: float, phases: dict[str, float] | None = None) -> dict[str, float | None]:
    """Where a job's time went (``fusebench floor`` reads it): ``startup_s`` (process start to the stage's
    ``started``) and the stage's own ``phases`` (seconds each: ``setup_s``, ``training_s``, …); the rest of
    ``wall_time_s`` is writing the outputs."""
    age = process_age_s()
    startup = None if age is None else round(max(0.0, age - (time.perf_counter() - started)), 3)
    return {"startup_s": startup, **{k: round(v, 3) for k, v in (phases or {}).items()}}


def result_record(
    spec: dict[str, Any],
    started: float,
    device_info: dict[str, Any] | None = None,
    phases: dict[str, float] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A stage's result record: its spec, its provenance (``wall_time_s`` since ``started``) and the job's
    :func:`job_timing` from its ``phases``, with the stage's own ``fields``."""
    record = {
        "spec": spec,
        "provenance": provenance(
            config_hash(spec),
            {
                "device": device_info or {"type": "cpu"},
                "seed": spec.get("seed"),
                "wall_time_s": round(time.perf_counter() - started, 3),
            },
        ),
        "timing": job_timing(started, phases),
    }
    record.update(fields)
    return record


def dataset_note(data_dir: Path) -> dict[str, Any]:
    """What every result states about its data: official files (sha256), subset, leakage guard."""

    manifest = read_manifest(Path(data_dir))
    keys = ("official_format", "sources", "subset", "leakage_guard")
    return {k: manifest[k] for k in keys if manifest.get(k)}


def data_protocol(data_dir: Path, checkpoint_meta: dict[str, Any]) -> dict[str, Any]:
    """The evaluated dataset's note, and the pretraining data's (from the checkpoint's metadata) when it has one."""
    record: dict[str, Any] = {}
    if note := dataset_note(data_dir):
        record["dataset"] = note
    if pretrain := checkpoint_meta.get("pretrain_data"):
        record["pretraining_data"] = pretrain
    return record


def weights_protocol(meta: dict[str, Any], model: Any = None) -> dict[str, Any]:
    """Where external weights came from: a zero-shot model's own files, or a trained method's pretrained towers."""
    record: dict[str, Any] = {}
    if meta.get("zero_shot"):
        record["training"] = "zero-shot"
        record["weights"] = meta.get("weights", {})
    elif meta.get("weights"):  # fine-tuned from a published checkpoint
        record["weights"] = meta["weights"]
    elif sources := meta.get("context", {}).get("model", {}).get("sources"):
        record["weights"] = sources
    return record
