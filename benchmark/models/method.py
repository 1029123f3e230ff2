"""The method contract: what every file in ``baselines/`` implements.

A method is one ``FusionMethod`` subclass. Its hyperparameters are the class attribute
``defaults`` (one place, readable); ``method_overrides.<name>`` in the config may change any of
them and nothing else. Inputs are dicts of named modalities — ``{"image": Tensor | None,
"text": {"input_ids", "attention_mask"} | None}`` — so a missing modality is explicit.

What the stages call:

* ``pretrain_losses(batch)`` → named, unweighted losses of the objectives the method declares
  in ``defaults["objectives"]``; the trainer weights and sums them.
* ``task_losses(task, batch)`` → named losses for fine-tuning on ``task``.
* Grounding: ``ground(images, text)`` → per-patch boxes (B×P×4, normalised cxcywh) and score
  logits (B×P) for the referring expression; the default ``grounding`` loss trains them.
* Retrieval: ``embed_image`` / ``embed_text`` when scores are dot products of per-modality
  vectors; methods with a fusion head that scores a pair implement ``prepare_images``,
  ``prepare_texts`` (per-item work, cached by the evaluator) and ``score_prepared`` (the
  fusion of aligned pairs). A method with both is evaluated with its fusion head, using its
  embeddings for the ITC shortlist on large test sets (ALBEF/BLIP protocol).

``tasks`` lists the tasks a method can be fine-tuned for; for any other task its rows are
reported as "not applicable" with ``not_applicable_reason`` — never silently dropped.

Published models (``benchmark.models.published``): ``training_stages`` names the stages a method
is trained in. A zero-shot method sets ``training_stages = ()``: the workflow schedules no pretraining and
no fine-tuning job for it, and evaluation builds it from its own weights. Such a method reads its
own weights (a local directory or hub name given by its ``pretrained`` hyperparameter), uses its
own tokenizer (:meth:`FusionMethod.text_tokenizer`) and says where its weights came from
(:meth:`FusionMethod.weight_sources`). A method whose ``defaults`` hold ``"pretrained": None``
runs under ``methods: all`` only once ``method_overrides.<name>.pretrained`` is set.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from benchmark.errors import MethodError, MissingModalityError
from benchmark.models.encoders import build_text_encoder, build_vision_encoder
from benchmark.models.pretrained import build_text_tower, build_vision_tower, is_pretrained
from benchmark.objectives.detection import grounding_loss

Batch = dict[str, Any]


@dataclass(frozen=True)
class BuildContext:
    """Everything a method needs to build itself, independent of the method.

    ``model`` is the config's model block, resolved by
    :func:`benchmark.models.pretrained.resolve_model_config` when a tower is pretrained; then
    ``image_size`` is that ViT's own resolution (``model["vision"]["image_size"]``; the tower
    resizes the data's images to it). ``load_pretrained`` says whether pretrained towers read
    their weights (a method built from config) or only rebuild their architecture (a method
    rebuilt from a FuseBench checkpoint, whose weights are loaded next); it is not serialised,
    so a context read back with :meth:`from_json` never reads external weights. ``init_seed`` (not
    serialised either) seeds the initial weights of the shared towers (:class:`benchmark.models.towers.ImageTower`,
    ``TextTower``) without the method in it, so that methods with towers of the same architecture start
    from the same tower weights at seed k (:func:`benchmark.seeding.module_init`); None (a model rebuilt to
    load its checkpoint's weights) builds them from the global RNG.
    """

    model: dict[str, Any]  # config["model"]: vision / text tower sizes (or sources), embed_dim
    image_size: int
    vocab_size: int
    max_length: int
    special_tokens: dict[str, int]  # pad, unk, cls, sep, mask
    concepts: tuple[str, ...] = ()  # label space of decision-level fusion (benchmark.data.concepts)
    attributes: dict[str, list[str]] = field(default_factory=dict)  # attribute group → values (grounding)
    load_pretrained: bool = False
    init_seed: int | None = None

    @property
    def grid(self) -> int:
        """Patches per image side: grounding heads predict one box per patch."""
        return self.image_size // self.model["vision"]["patch_size"]

    def vision_encoder(self) -> nn.Module:
        vision = self.model["vision"]
        if not is_pretrained(vision):
            return build_vision_encoder(vision, self.image_size)
        if vision.get("image_size") != self.image_size:
            raise MethodError(
                f"BuildContext.image_size ({self.image_size}) must be the pretrained ViT's resolution "
                f"(model.vision.image_size = {vision.get('image_size')}): grounding heads use its patch grid"
            )
        return build_vision_tower(vision, self.load_pretrained)

    def text_encoder(self) -> nn.Module:
        text = self.model["text"]
        if is_pretrained(text):
            return build_text_tower(text, self.load_pretrained, self.vocab_size)
        return build_text_encoder(text, self.vocab_size, self.max_length, self.special_tokens["pad"])

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "image_size": self.image_size,
            "vocab_size": self.vocab_size,
            "max_length": self.max_length,
            "special_tokens": self.special_tokens,
            "concepts": list(self.concepts),
            "attributes": self.attributes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BuildContext:
        """The context in a checkpoint's metadata; ``load_pretrained`` stays False and ``init_seed`` None
        (weights come from it)."""
        data = {k: v for k, v in data.items() if k not in ("load_pretrained", "init_seed")}
        return cls(
            **{**data, "concepts": tuple(data.get("concepts", ())), "attributes": dict(data.get("attributes", {}))}
        )


def merge_hparams(method: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated by ``overrides``; unknown keys are an error naming the allowed ones."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if key not in defaults:
            raise MethodError(
                f"method_overrides.{method}.{key} is not a hyperparameter of {method}; "
                f"allowed: {', '.join(sorted(defaults))}"
            )
        if isinstance(defaults[key], dict) and isinstance(value, dict):
            if key == "objectives":
                merged[key] = {**defaults[key], **value}
            else:
                unknown = sorted(set(value) - set(defaults[key]))
                if unknown:
                    raise MethodError(
                        f"method_overrides.{method}.{key} has unknown key(s) {unknown}; "
                        f"allowed: {', '.join(sorted(defaults[key]))}"
                    )
                merged[key] = {**defaults[key], **value}
        else:
            merged[key] = value
    return merged


class FusionMethod(nn.Module):
    """Base class of every method in ``baselines/``."""

    name: ClassVar[str] = ""  # set by the registry from the file name
    family: ClassVar[str] = ""  # e.g. "dual encoder", "single stream", "decision level"
    paper: ClassVar[str] = ""  # the paper the method follows
    defaults: ClassVar[dict[str, Any]] = {"objectives": {}}
    tasks: ClassVar[tuple[str, ...]] = ("retrieval",)  # tasks it can be fine-tuned for
    modalities: ClassVar[tuple[str, ...]] = ("image", "text")  # what it reads
    known_objectives: ClassVar[tuple[str, ...]] = ("itc", "itm", "mlm", "mim")
    # Stages the method is trained in, in order; () = zero-shot (evaluated from its own weights).
    # A literal: the workflow reads it from the file without importing it (benchmark.registry).
    # (not ``training``: that is nn.Module's train/eval flag on every instance)
    training_stages: ClassVar[tuple[str, ...]] = ("pretrain", "finetune")

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__()
        self.ctx = ctx
        self.hparams = merge_hparams(self.name or type(self).__name__, self.defaults, overrides)
        unknown = sorted(set(self.objective_weights) - set(self.known_objectives))
        if unknown:
            raise MethodError(f"{self.name}: unknown objective(s) {unknown}; known: {', '.join(self.known_objectives)}")

    @property
    def objective_weights(self) -> dict[str, float]:
        """Pretraining objectives with non-zero weight."""
        return {k: float(v) for k, v in self.hparams.get("objectives", {}).items() if v}

    # -- training -----------------------------------------------------------------------------
    def pretrain_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{self.name} does not implement pretrain_losses")

    def task_losses(self, task: str, batch: Batch) -> dict[str, torch.Tensor]:
        """Fine-tuning losses: ``<task>_losses(batch)`` when the method defines it (``grounding_losses``
        is built in); subclasses may handle their own tasks here and defer the rest."""
        losses = getattr(self, f"{task}_losses", None)
        if task in self.tasks and callable(losses):
            return losses(batch)
        raise NotImplementedError(f"{self.name} does not implement task_losses for {task!r}")

    # -- grounding ----------------------------------------------------------------------------
    def ground(
        self, images: torch.Tensor | None, text: dict[str, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-patch boxes (B×P×4 normalised cxcywh) and score logits (B×P) for the expression.

        ``images`` or ``text`` is None when that modality is missing; a method that cannot
        ground without it raises :class:`MissingModalityError` (see :meth:`require`).
        """
        raise NotImplementedError(f"{self.name} does not implement ground")

    def require(self, **inputs: Any) -> None:
        """Raise MissingModalityError naming the absent modality this method cannot do without."""
        for modality, value in inputs.items():
            if value is None:
                raise MissingModalityError(f"{self.name} cannot run without the {modality}")

    def grounding_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Dense box losses (score BCE, L1, GIoU) on the patches assigned to the referred objects."""

        boxes, logits = self.ground(batch["image"], batch["text"])
        return grounding_loss(logits, boxes, batch["targets"], batch["target_valid"], self.ctx.grid)

    @classmethod
    def data_reason(cls, ctx: BuildContext) -> str | None:
        """Why the method cannot be built on this dataset (e.g. it lacks the labels it learns), or None.

        Checked before pretraining; the method's rows of every task then say "not applicable"
        with this reason instead of the run failing.
        """
        return None

    @classmethod
    def not_applicable_reason(cls, task: str) -> str | None:
        """Why ``task`` cannot be run by this method, or None when it can."""
        if task in cls.tasks:
            return None
        if len(cls.modalities) == 1:
            return f"{cls.name or cls.__name__} reads only the {cls.modalities[0]}; {task} needs both modalities"
        return f"{cls.name or cls.__name__} does not implement {task}"

    # -- retrieval ----------------------------------------------------------------------------
    @property
    def has_embeddings(self) -> bool:
        """True when image–text scores are dot products of ``embed_image`` and ``embed_text``."""
        return type(self).embed_image is not FusionMethod.embed_image

    @property
    def has_pair_scorer(self) -> bool:
        """True when a fusion head scores (image, text) pairs (``score_prepared``)."""
        return type(self).score_prepared is not FusionMethod.score_prepared

    def embed_image(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def embed_text(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def prepare_images(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image work done once before pair scoring (default: nothing)."""
        return {"image": images}

    def prepare_texts(self, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-text work done once before pair scoring (default: nothing)."""
        return dict(text)

    def score_prepared(self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor]) -> torch.Tensor:
        """Match logits of aligned pairs: row k of ``images`` with row k of ``texts``."""
        raise NotImplementedError

    def score_pairs(self, batch: Batch) -> torch.Tensor:
        """Match score of each aligned (image, text) pair in ``batch``."""
        if self.has_pair_scorer:
            return self.score_prepared(self.prepare_images(batch["image"]), self.prepare_texts(batch["text"]))
        return (self.embed_image(batch["image"]) * self.embed_text(batch["text"])).sum(-1)

    # -- inputs and weights of published models -------------------------------------------------
    def text_tokenizer(self) -> Any | None:
        """The method's own tokenizer, or None to use FuseBench's (the run's ``tokenizer.json``).

        An object with ``encode_texts(texts: list[str]) -> {"input_ids", "attention_mask"}``
        (long tensors, B×L): a published model sees exactly the tokens its own tokenizer gives.
        """
        return None

    def weight_sources(self) -> dict[str, Any]:
        """External weights the method was built from: ``{"source": name or path, "files": {file: sha256}}``
        per component; recorded in every result's provenance. Empty for methods trained from scratch."""
        return {}

    @property
    def zero_shot(self) -> bool:
        return not self.training_stages

    # -- description --------------------------------------------------------------------------
    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "family": cls.family,
            "paper": cls.paper,
            "defaults": cls.defaults,
            "tasks": list(cls.tasks),
            "modalities": list(cls.modalities),
            "training_stages": list(cls.training_stages),
        }
