"""What training and evaluation stages share: the device, the data, the tokenizer and the method built for a job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchmark.data.concepts import concept_vocabulary
from benchmark.data.dataset import image_size_of, load_split
from benchmark.data.grounding import attribute_vocabulary
from benchmark.data.standard_form import read_manifest
from benchmark.data.tokenizer import load_tokenizer, special_token_ids
from benchmark.device import resolve_device
from benchmark.errors import MethodError
from benchmark.models.method import BuildContext
from benchmark.models.pretrained import resolve_model_config
from benchmark.registry import load_method
from benchmark.tasks import get_task
from benchmark.train import distributed
from benchmark.train.checkpoint import load_trained


class Session:
    """What training and evaluation stages share: device, data, tokenizer, method.

    ``tokenizer_file`` is None for a zero-shot method, which brings its own tokenizer (:meth:`use_method_tokenizer`).
    """

    def __init__(self, spec: dict[str, Any], data_dir: Path, tokenizer_file: Path | None, max_length: int) -> None:

        self.torch = torch
        self.device = distributed.setup(resolve_device(spec["device"]))  # under torchrun: this rank's device
        self.data_dir = data_dir
        self.tokenizer: Any = None
        self.special: dict[str, int] = {}
        if tokenizer_file is not None:
            self.tokenizer = load_tokenizer(tokenizer_file, max_length)
            self.special = special_token_ids(self.tokenizer, tokenizer_file)

    def split(self, name: str) -> Any:

        return load_split(self.data_dir, name)

    def use_method_tokenizer(self, model: Any) -> None:
        """A published model reads text through its own tokenizer; a method without one needs the run's."""

        own = model.text_tokenizer() if model is not None else None
        if own is not None:
            self.tokenizer = own
        elif self.tokenizer is None and model is not None and "text" in model.modalities:
            raise MethodError(f"{model.name} is zero-shot but has no tokenizer of its own (text_tokenizer())")


def build_context(spec: dict[str, Any], session: Session, train_split: Any) -> Any:
    """The BuildContext of a method built from ``spec`` (not from a checkpoint): pretrained towers are
    resolved from their sources (architecture, resolution, normalisation, sha256 of their files)."""

    model = resolve_model_config(spec["model"], max_length=spec["max_length"])
    image_size = model["vision"].get("image_size", train_split.image_size)  # a pretrained ViT's own resolution
    tokenizer = session.tokenizer
    vocab_size = tokenizer.get_vocab_size() if tokenizer is not None and hasattr(tokenizer, "get_vocab_size") else 0
    return BuildContext(
        model,
        image_size,
        vocab_size,
        spec["max_length"],
        session.special,
        concept_vocabulary(train_split),
        attribute_vocabulary(train_split),
        load_pretrained=True,
    )


def zero_shot_context(spec: dict[str, Any], session: Session) -> Any:
    """A zero-shot method's BuildContext: it reads its own weights and tokenizer, so only the image size of
    the evaluated data is filled in (no training split is read, no vocabulary learnt from it)."""

    return BuildContext({}, image_size_of(read_manifest(session.data_dir)), 0, 0, {})


def method_class(name: str) -> Any:

    return load_method(name)


def trained_or_reason(
    checkpoint: Path, meta: dict[str, Any], device: Any, task: str
) -> tuple[Any, dict[str, Any], str | None]:
    """The trained model, its metadata (``meta``, already read) and why ``task`` is not applicable; no model
    when it never could be built."""

    if meta.get("without_weights"):
        return None, meta, str(meta["not_applicable"])
    model, meta = load_trained(checkpoint, device, meta)
    return model, meta, get_task(task).not_applicable_reason(model)
