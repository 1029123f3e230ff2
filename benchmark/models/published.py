"""Published checkpoints as zero-shot FuseBench methods: load them, feed them exactly what they expect.

A published model's zero-shot number is only the paper's number if the model sees the inputs its
own preprocessing gives it: its image processor's resize, crop and normalisation, its tokenizer's
ids, padding and length. So a :class:`PublishedMethod` never reuses FuseBench's preprocessing.
Images arrive as FuseBench's uint8 tensors (already corrupted in the robustness grid: corruptions
act on the image as a user would see it) and go through ``processor.image_processor`` unchanged;
text is tokenised by the model's own tokenizer (:class:`ProcessorTokenizer`, returned by
:meth:`PublishedMethod.text_tokenizer`). The baselines in ``baselines/published_*.py`` only say
which model outputs are FuseBench's embeddings, pair scores or boxes.

What is shared here:

* :func:`load_published` — ``transformers`` model + processor from ``pretrained``, a local
  directory or a hub name. Offline (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``) or for a local
  directory nothing is downloaded; anything missing is a :class:`~benchmark.errors.ConfigError`
  naming ``method_overrides.<method>.pretrained`` and its value. Weights that do not fit the class
  (a tensor missing from the checkpoint or of another shape, which ``from_pretrained`` would only log
  and initialise randomly) are a :class:`~benchmark.errors.DataFileError` naming the directory and
  the first such tensor; checkpoint tensors the class has no place for are ignored.
* :func:`hash_files` — sha256 of every file the weights came from (the directory, or the hub
  cache snapshot), for :meth:`PublishedMethod.weight_sources` and so for every result's provenance.
* :class:`PublishedMethod` — ``training_stages = ()`` (evaluated from its own weights: no FuseBench
  stage trains it or writes its weights), the ``pretrained`` / ``text_padding`` / ``max_length``
  hyperparameters, and the preprocessing above.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import transformers
from torch import nn

from benchmark.errors import ConfigError, one_line
from benchmark.models.method import BuildContext, FusionMethod
from benchmark.sources import (
    cached_snapshot,
    check_loading_info,
    check_weight_files,
    checkpoint_directory,
    file_digests,
    folder_files,
    load_failure,
    offline,
    weight_load_errors,
)

PADDING = ("longest", "max_length")


@dataclass(frozen=True)
class Source:
    """Where a checkpoint is read from: a local directory or a hub name, and whether downloads are allowed."""

    value: str  # as the user gave it
    location: str  # absolute directory, or the hub name
    local: bool

    @property
    def local_files_only(self) -> bool:
        return self.local or offline()


def resolve_source(method: str, value: Any) -> Source:
    """``pretrained`` checked: an existing directory, or something that can only be a hub name."""
    key = f"method_overrides.{method}.pretrained"
    if value is None:
        raise ConfigError(
            f"{key} is not set: {method} evaluates a published checkpoint; "
            "set it to a local checkpoint directory or a hub model name"
        )
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ConfigError(f"{key} must be a directory or a hub model name, got {value!r}")
    text = str(value)
    path = checkpoint_directory(text, key, "checkpoint")
    if path is None:
        return Source(text, text, local=False)
    return Source(text, str(path.resolve()), local=True)


@dataclass
class Loaded:
    """A published model, its processor and where they came from."""

    model: nn.Module
    processor: Any
    source: Source
    model_type: str


def load_published(method: str, value: Any, architectures: dict[str, str]) -> Loaded:
    """Load ``value`` (``method_overrides.<method>.pretrained``) with the class its ``model_type`` maps to.

    ``architectures`` maps a config's ``model_type`` to a ``transformers`` class name, e.g.
    ``{"clip": "CLIPModel"}``; a checkpoint of any other type is a ConfigError listing the
    accepted ones. Weights are loaded in float32 (evaluation applies the run's autocast), whatever
    dtype they were saved in, so a method's numbers do not depend on how its checkpoint was stored.
    Every tensor of the class must come from the checkpoint with its shape
    (:func:`~benchmark.sources.check_loading_info`), or a DataFileError is raised.
    """

    source = resolve_source(method, value)
    key = f"method_overrides.{method}.pretrained"
    kwargs = {"local_files_only": source.local_files_only}
    try:
        config = transformers.AutoConfig.from_pretrained(source.location, **kwargs)
    except (OSError, ValueError) as exc:
        where = (
            "directory" if source.local else "hub model (offline: not in the local cache)" if offline() else "hub model"
        )
        raise ConfigError(
            f"{key} = {source.value!r}: cannot read the {where} as a transformers checkpoint: {exc}"
        ) from None
    model_type = getattr(config, "model_type", None)
    if model_type not in architectures:
        raise ConfigError(
            f"{key} = {source.value!r} is a {model_type!r} checkpoint; "
            f"{method} reads {', '.join(sorted(architectures))}"
        )
    model_class = getattr(transformers, architectures[model_type])
    where = f"{key} = {source.value!r}" + (f" (folder {source.location})" if source.local else "")
    if source.local:  # a hub name's files are checked by the except below, once transformers has fetched them
        check_weight_files(folder_files(Path(source.location)), key)
    try:
        model, info = model_class.from_pretrained(
            source.location,
            dtype=torch.float32,
            output_loading_info=True,
            ignore_mismatched_sizes=True,  # reported by check_loading_info, with both shapes
            **kwargs,
        )
    except (OSError, ValueError, ImportError) as exc:  # no weights file, an unknown format, a missing dependency
        raise ConfigError(
            f"{key} = {source.value!r}: cannot load {architectures[model_type]}: {one_line(exc)}"
        ) from None
    except weight_load_errors() as exc:  # weights transformers cannot read or load at all
        raise load_failure(where, architectures[model_type], exc) from None
    check_loading_info(model, info, where)
    try:
        processor = transformers.AutoProcessor.from_pretrained(source.location, **kwargs)
    except (OSError, ValueError, ImportError) as exc:  # ImportError: e.g. SigLIP's tokenizer needs sentencepiece
        raise ConfigError(f"{key} = {source.value!r}: cannot load the processor: {exc}") from None
    return Loaded(model, processor, source, model_type)


def checkpoint_folder(source: Source) -> Path:
    """The directory the weights were read from: the local directory, or the hub name's cached snapshot."""
    return Path(source.location) if source.local else cached_snapshot(source.location)


def hash_files(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, keyed by its path in the folder (POSIX, sorted), symlinks
    followed (the hub cache links snapshot files to blobs); hidden folders (a download tool's ``.cache``)
    are skipped."""
    return file_digests(folder_files(folder, hidden_files=True), root=folder)


@dataclass(frozen=True)
class ProcessorTokenizer:
    """A published model's own tokenizer behind FuseBench's ``encode_texts`` interface.

    ``padding`` and ``max_length`` are the model's policy (see each baseline's ``text_policies``);
    longer texts are truncated. A tokenizer whose model never sees an attention mask (SigLIP's
    returns only ``input_ids``: its text tower attends to the padding it was trained with and pools
    the last position) gets an all-ones mask here, so FuseBench's ``trim_padding`` keeps every
    column, and the method does not pass the mask on (:attr:`model_sees_mask`).
    """

    tokenizer: Any
    padding: str
    max_length: int

    @property
    def model_sees_mask(self) -> bool:
        return "attention_mask" in self.tokenizer.model_input_names

    def encode_texts(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            list(texts),
            padding=self.padding,
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids = encoded["input_ids"].long()
        mask = encoded["attention_mask"].long() if self.model_sees_mask else torch.ones_like(ids)
        return {"input_ids": ids, "attention_mask": mask}


def pooled(output: Any) -> torch.Tensor:
    """The embedding tensor of ``get_image_features`` / ``get_text_features``: transformers v5 returns a
    model output whose ``pooler_output`` holds it, earlier versions the tensor itself."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class PublishedMethod(FusionMethod):
    """A published ``transformers`` checkpoint evaluated zero-shot (``training_stages = ()``).

    Subclasses set ``architectures`` (config ``model_type`` → ``transformers`` class name) and
    ``text_policies`` (``model_type`` → (padding, max length or None)): the text preprocessing the
    model was trained and evaluated with, used unless ``text_padding`` / ``max_length`` are
    overridden. ``max_length`` None means the tokenizer's ``model_max_length``.

    Attributes after construction: ``model`` (the ``transformers`` model, frozen, in eval mode),
    ``processor`` (its processor), ``model_type``.
    """

    training_stages: ClassVar[tuple[str, ...]] = ()
    known_objectives: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = {
        "objectives": {},
        "pretrained": None,  # local checkpoint directory or hub name: method_overrides.<name>.pretrained
        "text_padding": None,  # "longest" | "max_length"; None: the model's own policy (text_policies)
        "max_length": None,  # None: the policy's, else the tokenizer's model_max_length
    }
    architectures: ClassVar[dict[str, str]] = {}
    text_policies: ClassVar[dict[str, tuple[str, int | None]]] = {}

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__(ctx, **overrides)
        loaded = load_published(self.method_name, self.hparams["pretrained"], self.architectures)
        self.model = loaded.model.eval()
        if not self.training_stages:  # zero-shot: nothing trains it (a fine-tuned subclass keeps gradients)
            self.model.requires_grad_(False)
        self.processor = loaded.processor
        self.source = loaded.source
        self.model_type = loaded.model_type
        self.tokens = self._text_policy()
        self._weight_sources: dict[str, Any] | None = None

    @property
    def method_name(self) -> str:
        return self.name or type(self).__name__

    def _text_policy(self) -> ProcessorTokenizer:
        """The tokenizer with the padding and length the model expects, overrides checked."""
        padding, length = self.text_policies.get(self.model_type, ("longest", None))
        padding = self.hparams["text_padding"] or padding
        if padding not in PADDING:
            raise ConfigError(
                f"method_overrides.{self.method_name}.text_padding = {padding!r}; allowed: {', '.join(PADDING)}"
            )
        tokenizer = self.processor.tokenizer
        positions = self.model.config.text_config.max_position_embeddings
        key = f"method_overrides.{self.method_name}.max_length"
        if self.hparams["max_length"]:
            length, origin = self.hparams["max_length"], f"{key} = {self.hparams['max_length']}"
        elif length:
            origin = f"the default text length {length} ({self.model_type}'s own evaluation policy)"
        else:
            length = tokenizer.model_max_length
            origin = f"the tokenizer's model_max_length ({length})"
        length = positions if length > 10**6 else length  # a tokenizer without a model_max_length
        if not 0 < length <= positions:
            raise ConfigError(
                f"{origin} exceeds the {positions} text positions of {self.source.value} "
                f"(text_config.max_position_embeddings); set {key} to at most {positions}"
            )
        return ProcessorTokenizer(tokenizer, padding, int(length))

    # -- inputs ----------------------------------------------------------------------------------------------------
    def text_tokenizer(self) -> ProcessorTokenizer:
        return self.tokens

    def pixel_values(self, images: torch.Tensor) -> torch.Tensor:
        """B×3×H×W uint8 → the model's pixel values, by its own image processor, on the images' device."""
        pixels = self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return pixels.to(device=images.device, dtype=torch.float32)

    def text_inputs(self, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Token tensors as the model takes them: without the mask when it was trained without one."""
        if self.tokens.model_sees_mask:
            return {"input_ids": text["input_ids"], "attention_mask": text["attention_mask"]}
        return {"input_ids": text["input_ids"]}

    # -- provenance ------------------------------------------------------------------------------------------------
    def weight_sources(self) -> dict[str, Any]:
        """``{"model": {"source": directory or hub name as given, "files": {path in the folder: sha256}}}``,
        hashed once (the folder: the directory, or the hub name's cached snapshot)."""
        if self._weight_sources is None:
            self._weight_sources = {
                "model": {"source": self.source.value, "files": hash_files(checkpoint_folder(self.source))}
            }
        return self._weight_sources

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {**super().describe(), "architectures": dict(cls.architectures)}
