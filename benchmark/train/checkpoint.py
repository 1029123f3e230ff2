"""Checkpoints in safetensors, written atomically.

Two kinds of file:

* a **model checkpoint** (the stage's output): the weights plus JSON metadata saying how to
  rebuild the method (name, build context, hyperparameters), which spec made it, and which job it
  belongs to (:data:`JOB_KEYS`: stage, method, seed, task, dataset, and the sha256 of the tokenizer
  file and of the data build's manifest it was trained with), so that a stage given another job's
  checkpoint refuses it (:func:`check_job`) instead of writing results under the wrong name;
* a **training state** (``*.partial.safetensors``, deleted on success): weights, AdamW moments
  and the step reached, so a crashed job resumes where it stopped. It is only resumed when its
  spec hash equals the current one (the stages hash the spec with the job's inputs: tokenizer,
  data build, init), so a changed config or input never continues a stale run.

The optimiser state is flattened into named tensors (``optim.<param>.<key>``) and its
hyper-parameters go into the metadata, which keeps everything in safetensors (no pickle).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, load_model, save_file, save_model

from benchmark.errors import DataFileError, InputMismatchError
from benchmark.io import atomic_path
from benchmark.models.method import BuildContext
from benchmark.registry import built_from, load_method

METADATA_KEY = "fusebench"
log = logging.getLogger("fusebench")

JOB_KEYS = {
    "stage": "stage",
    "method": "method",
    "seed": "seed",
    "task": "task",
    "dataset": "dataset",
    "tokenizer_sha256": "tokenizer file sha256",
    "data_sha256": "data build (manifest.json) sha256",
}
"""The metadata keys naming the job a checkpoint belongs to, and how a mismatch message calls them."""


def save_checkpoint(path: str | Path, model: torch.nn.Module, metadata: dict[str, Any]) -> None:
    """Save weights (shared tensors handled by safetensors) and metadata atomically."""
    with atomic_path(path) as tmp:
        save_model(model, str(tmp), metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def save_not_applicable(path: str | Path, metadata: dict[str, Any]) -> None:
    """A checkpoint without weights: the method cannot be built on this dataset (``metadata['not_applicable']``)."""

    with atomic_path(path) as tmp:
        save_file({}, str(tmp), metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, naming the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
    except Exception as exc:  # safetensors raises SafetensorError / OSError
        raise DataFileError(f"checkpoint {path} is unreadable or corrupt: {exc}") from None
    if raw is None:
        raise DataFileError(f"checkpoint {path} has no FuseBench metadata; was it written by fusebench?")
    return json.loads(raw)


def check_job(checkpoint: str | Path, meta: dict[str, Any], wanted: dict[str, Any], sources: dict[str, str]) -> None:
    """Refuse a checkpoint that belongs to another job, naming the recorded and the requested value.

    Args:
        checkpoint: the checkpoint file (named in the message).
        meta: its metadata (:func:`read_metadata`).
        wanted: the values this job requires, by :data:`JOB_KEYS` key.
        sources: where a requested value comes from, by key (e.g. the tokenizer file), for the message.

    A key the checkpoint does not record (written before FuseBench recorded it) is not checked, with
    a warning; every recorded key that differs is listed in one :class:`InputMismatchError`.
    """
    wrong = [key for key, value in wanted.items() if key in meta and meta[key] != value]
    if wrong:
        differences = "; ".join(
            f"{JOB_KEYS[key]} {_shown(meta[key])} in the checkpoint, {_shown(wanted[key])} requested"
            + (f" ({sources[key]})" if key in sources else "")
            for key in wrong
        )
        raise InputMismatchError(f"checkpoint {checkpoint} belongs to another job: {differences}")
    unrecorded = sorted(key for key in wanted if key not in meta)
    if unrecorded:
        log.warning("checkpoint %s records no %s (an older checkpoint): not checked", checkpoint, ", ".join(unrecorded))


def _shown(value: Any) -> str:
    """A value for a message: hashes shortened to 12 hex digits, everything else as its repr."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    return repr(value)


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load weights strictly: a missing or unexpected tensor is an error naming the file."""
    try:
        missing, unexpected = load_model(model, str(path), strict=False)
    except Exception as exc:
        raise DataFileError(f"checkpoint {path} does not fit the model: {exc}") from None
    if missing or unexpected:
        raise DataFileError(
            f"checkpoint {path} does not fit the model: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )


def save_training_state(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    spec_hash: str,
    progress: dict[str, Any],
) -> None:
    """Weights, optimiser moments and progress, for resuming an interrupted job."""
    tensors = {f"model.{k}": v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    state = optimizer.state_dict()
    for index, slots in state["state"].items():
        for key, value in slots.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().contiguous().clone()
    meta = {"step": step, "spec_hash": spec_hash, "param_groups": state["param_groups"], "progress": progress}

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta)})


def load_training_state(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, spec_hash: str
) -> tuple[int, dict[str, Any]] | None:
    """Restore a training state if it exists and belongs to ``spec_hash``; return (step, progress)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        meta = read_metadata(path)
    except DataFileError:
        return None  # a torn or foreign file: start afresh rather than trust it
    if meta.get("spec_hash") != spec_hash:
        return None

    tensors = load_file(str(path))
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
    return int(meta["step"]), dict(meta.get("progress", {}))


def load_trained(checkpoint: Path, device: Any, meta: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild a method from a checkpoint's metadata (method name, build context, overrides) and load its weights;
    ``meta`` is the metadata when the caller has already read it."""

    meta = read_metadata(checkpoint) if meta is None else meta
    try:
        ctx = BuildContext.from_json(meta["context"])
        cls = load_method(built_from(meta))
    except (KeyError, TypeError) as exc:
        raise DataFileError(f"checkpoint {checkpoint} has incomplete metadata: {exc!r}") from None
    model = cls(ctx, **meta.get("overrides", {}))
    load_weights(model, checkpoint)
    return model.to(device), meta
