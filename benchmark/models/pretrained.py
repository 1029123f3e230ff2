"""Pretrained unimodal towers: resolve a tower's source once, then build it with or without its weights.

A tower's ``init`` (``model.vision.init`` / ``model.text.init``) is ``random`` (the configured sizes,
:mod:`benchmark.models.encoders`) or a source of pretrained weights. Two steps keep a run honest and
its checkpoints self-contained:

1. :func:`resolve_model_config` (before training) reads only the source's configuration and
   records everything needed to rebuild the architecture without the weights: sizes, input
   resolution, normalisation, the timm architecture (``arch`` + ``arch_kwargs``) or the
   transformers config (``hf_config``), and the sha256 of every file the weights come from
   (``model.sources``). The resolved block goes into the :class:`~benchmark.models.method.BuildContext`,
   hence into every checkpoint's metadata.
2. :func:`build_vision_tower` / :func:`build_text_tower` load the weights through the libraries'
   own loaders when ``load`` is true (a method built from config), and only rebuild the
   architecture when it is false (a method rebuilt from a FuseBench checkpoint, whose weights
   replace the pretrained ones anyway).

Vision sources (timm): a timm model name (``vit_base_patch16_224.augreg2_in21k_ft_in1k``), a Hub
repo (``hf-hub:org/repo``), a local directory in timm's Hub layout (``config.json`` with
``architecture`` + ``model.safetensors``, as ``timm.models.save_for_hf`` writes; loaded as
``local-dir:``), or a local weight file (``.safetensors``/``.pth``/``.bin``) loaded into the timm
architecture ``arch`` or, without ``arch``, into the configured ViT. FuseBench reads [CLS] + patch
tokens, so the model must be a timm ``VisionTransformer`` with exactly one [CLS] token, no register
or distillation tokens, and a square input divisible by its square patches.

Text sources (transformers): a model name or a local directory written by ``save_pretrained``;
an encoder whose ``last_hidden_state[:, 0]`` is the [CLS] state (BERT, RoBERTa, ELECTRA, ...).
Dropout is set to 0, like the random towers': FuseBench's comparisons assume deterministic forward
passes (train and eval agree, resumed runs are bit-identical) and one regularisation setting for
every tower, so a pretrained tower differs from a random one only in its initial weights.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from benchmark.errors import ConfigError, DataFileError, one_line
from benchmark.models.encoders import IMAGE_MEAN, IMAGE_STD, build_vision_encoder
from benchmark.sources import (
    WEIGHT_SUFFIXES,
    cached_snapshot,
    check_loading_info,
    check_weight_files,
    file_digests,
    folder_files,
    load_failure,
    local_weights_path,
    offline,
    text_location,
    weight_load_errors,
)

RANDOM = "random"
# Encoder parts FuseBench never reads, which a checkpoint may lack (its weights stay randomly initialised).
UNUSED_TEXT_PARTS = ("pooler.",)
# Transformers encoders whose position ids start after the padding index (RoBERTa family): their
# usable length is max_position_embeddings - pad_token_id - 1.
OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "longformer", "mpnet"}


# -- what a tower block says --------------------------------------------------------------------
def is_pretrained(block: dict[str, Any]) -> bool:
    """True when a tower block (``model.vision`` / ``model.text``) names a source of weights."""
    return block.get("init", RANDOM) not in (None, RANDOM)


def _folder_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file of a weights folder, keyed by its path in the folder; hidden files and folders
    (.git, .cache) skipped."""
    return file_digests(folder_files(folder), root=folder)


def _file_digest(path: Path) -> dict[str, str]:
    """``{file name: sha256}`` of a single weight file."""
    return file_digests([path], root=path.parent)


def _hub_snapshot(repo: str, key: str, init: str, populate: Callable[[], None]) -> Path:
    """The local Hugging Face cache snapshot of ``repo`` (``org/name[@revision]``) holding weights.

    Offline, a repo not in the cache is a ConfigError; online, ``populate`` fetches it with the
    library's own loader (so exactly the files it uses are cached) before the snapshot is read.
    """

    def cached() -> Path | None:
        try:
            folder = cached_snapshot(repo)
        except Exception:  # LocalEntryNotFoundError, an invalid repo id, ...
            return None
        has_weights = any(p.name.endswith(WEIGHT_SUFFIXES) for p in folder_files(folder))
        return folder if has_weights else None

    folder = cached()
    if folder is None:
        if offline():
            raise ConfigError(
                f"'{key}': {init!r} is not an existing path and not in the local Hugging Face cache, and "
                "HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set, so it cannot be downloaded; give a local path to "
                "the weights instead (a file or a directory)"
            )
        try:
            populate()
        except Exception as exc:  # hub and loader errors vary: RepositoryNotFoundError, OSError, ...
            raise ConfigError(f"'{key}': {init!r} could not be fetched from the Hugging Face Hub: {exc}") from None
        folder = cached()
        if folder is None:
            name = repo.partition("@")[0]
            raise ConfigError(f"'{key}': {init!r} was loaded but no cached weight files were found for {name}")
    return folder


# -- vision -------------------------------------------------------------------------------------
def _vision_source(vision: dict[str, Any]) -> tuple[str, Path | None]:
    """(kind, local path): kind is 'file', 'dir', 'hub' (hf-hub:) or 'timm' (a timm registry name)."""
    init = str(vision["init"])
    path = local_weights_path(init, "model.vision.init")
    if path is not None:
        if path.is_dir():
            return "dir", path
        if not path.name.lower().endswith(WEIGHT_SUFFIXES):
            raise ConfigError(
                f"'model.vision.init': {path} is not a weight file ({', '.join(WEIGHT_SUFFIXES)}) nor a directory"
            )
        return "file", path
    if init.startswith("hf-hub:"):
        return "hub", None
    import timm

    if not timm.is_model(init):
        raise ConfigError(
            f"'model.vision.init': {init!r} is neither an existing path nor a timm model name "
            "(see timm.list_models(pretrained=True)), nor an 'hf-hub:org/repo' name"
        )
    return "timm", None


def check_vit(model: nn.Module, name: str) -> None:
    """Refuse a model FuseBench cannot take [CLS] + patch tokens from, naming it."""
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(model, VisionTransformer):
        raise ConfigError(
            f"'model.vision': {name} is a {type(model).__name__}, not a timm VisionTransformer; "
            "FuseBench reads [CLS] + patch tokens from a ViT"
        )
    if getattr(model, "cls_token", None) is None or model.num_prefix_tokens != 1:
        raise ConfigError(
            f"'model.vision': {name} has {model.num_prefix_tokens} prefix token(s) "
            f"(class token: {getattr(model, 'cls_token', None) is not None}); FuseBench needs exactly one [CLS] "
            "token and no register or distillation tokens"
        )
    if getattr(model, "dynamic_img_size", False) or not getattr(model.patch_embed, "flatten", True):
        raise ConfigError(f"'model.vision': {name} uses dynamic image sizes; FuseBench needs a fixed input size")
    size, patch = tuple(model.patch_embed.img_size), tuple(model.patch_embed.patch_size)
    if size[0] != size[1] or patch[0] != patch[1] or size[0] % patch[0]:
        raise ConfigError(
            f"'model.vision': {name} takes {size[0]}×{size[1]} inputs in {patch[0]}×{patch[1]} patches; "
            "FuseBench needs a square input divisible into square patches"
        )


def _vit_fields(model: nn.Module) -> dict[str, Any]:
    block = model.blocks[0]
    width = int(model.embed_dim)
    return {
        "width": width,
        "depth": len(model.blocks),
        "heads": int(block.attn.num_heads),
        "mlp_ratio": block.mlp.fc1.out_features / width,
        "patch_size": int(model.patch_embed.patch_size[0]),
        "image_size": int(model.patch_embed.img_size[0]),
    }


def _data_fields(model: nn.Module) -> dict[str, Any]:
    from timm.data import resolve_model_data_config

    data = resolve_model_data_config(model)
    return {
        "mean": [float(v) for v in data["mean"]],
        "std": [float(v) for v in data["std"]],
        "interpolation": str(data.get("interpolation", "bicubic")),
    }


def _meta_timm(name: str, **kwargs: Any) -> nn.Module:
    """A timm model on the meta device: its architecture and pretrained_cfg, no memory, no RNG draws."""
    import timm
    import torch

    try:
        with torch.device("meta"):
            return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    except (RuntimeError, ValueError, FileNotFoundError, OSError) as exc:
        raise ConfigError(f"'model.vision': timm cannot build {name!r}: {exc}") from None


def file_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape of a weight file (safetensors: header only), keys cleaned as timm does."""
    from timm.models import clean_state_dict, load_state_dict

    try:
        if path.name.lower().endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118 (safe_open is no dict)
            return clean_state_dict(shapes)
        return {k: tuple(v.shape) for k, v in load_state_dict(str(path)).items()}
    except Exception as exc:  # safetensors / torch.load raise assorted errors on a bad file
        raise DataFileError(f"'model.vision.init': weight file {path} is unreadable: {one_line(exc)}") from None


def check_fits(path: Path, model: nn.Module, shapes: dict[str, tuple[int, ...]], complete: bool) -> None:
    """Fail before any training when the file's tensors do not fit ``model``.

    The first parameter (in the model's order) whose shape differs is named with both shapes;
    with ``complete``, missing or extra tensors are errors too (a classifier ``head.*`` in the
    file is ignored: FuseBench's towers have none). Without ``complete`` (timm's loader, which may
    rename and resample tensors, takes over), only tensors present under the same name are compared,
    ``pos_embed`` excepted (timm resamples it to the architecture's resolution).
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name, shape in expected.items():
        if name in shapes and shapes[name] != shape and (complete or name != "pos_embed"):
            raise DataFileError(
                f"'model.vision.init': weight file {path} does not fit the tower: {name} has shape "
                f"{list(shapes[name])} in the file, {list(shape)} in the model"
            )
    if complete:
        missing = [k for k in expected if k not in shapes]
        extra = [k for k in shapes if k not in expected and not k.startswith("head.")]
        if missing or extra:
            raise DataFileError(
                f"'model.vision.init': weight file {path} does not fit the tower: missing {missing[:5]}, "
                f"unexpected {extra[:5]}"
            )


def _configured_image_size(path: Path, vision: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> int:
    """The resolution of a plain weight file for the configured ViT, read from its ``pos_embed`` (1×(1+g²)×D)."""
    pos = shapes.get("pos_embed")
    grid = math.isqrt(pos[1] - 1) if pos is not None and len(pos) == 3 and pos[1] > 1 else 0
    if pos is None or not grid or grid * grid != pos[1] - 1:
        raise DataFileError(
            f"'model.vision.init': weight file {path} has no pos_embed of [CLS] + a square grid of patches "
            f"(found {list(pos) if pos is not None else 'none'}); set 'model.vision.arch' to its timm architecture"
        )
    return grid * int(vision["patch_size"])


def _resolve_vision(vision: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The vision block with its architecture fields filled, and the sha256 of its source files."""
    kind, path = _vision_source(vision)
    init, arch = str(vision["init"]), vision.get("arch")
    if path is not None and kind == "file" and not arch:
        return _resolve_configured_file(vision, path)
    if path is not None and kind == "file":
        arch_kwargs = _file_arch_kwargs(vision, path)
        model = _meta_timm(str(arch), **arch_kwargs)
        check_vit(model, f"{arch} (weights {path})")
        try:
            check_fits(path, model, file_shapes(path), complete=False)
        except DataFileError as exc:
            if arch_kwargs:
                raise
            raise DataFileError(
                f"{exc} (the defaults of {arch}); if the file was saved from {arch} built with other arguments, "
                "give them as 'model.vision.arch_kwargs' (e.g. {img_size: 32, patch_size: 8, embed_dim: 32})"
            ) from None
        files = _file_digest(path)
    elif path is not None:  # a directory in timm's Hub layout
        model = _meta_timm(f"local-dir:{path}")
        check_vit(model, str(path))
        _check_folder_fits(path, model)
        files = _folder_digests(path)
    elif kind == "hub":
        folder = _hub_snapshot(init[len("hf-hub:") :], "model.vision.init", init, lambda: _load_timm(init))
        model = _meta_timm(init)
        check_vit(model, init)
        _check_folder_fits(folder, model)
        files = _folder_digests(folder)
    else:  # a timm registry name: its weights live in the Hub repo its pretrained_cfg names
        model = _meta_timm(init)
        check_vit(model, init)
        repo = model.pretrained_cfg.get("hf_hub_id")
        if not repo:
            raise ConfigError(
                f"'model.vision.init': timm has no Hugging Face Hub weights for {init!r}; download its "
                "weights and give the file as model.vision.init with model.vision.arch"
            )
        folder = _hub_snapshot(repo, "model.vision.init", init, lambda: _load_timm(init))
        _check_folder_fits(folder, model)
        files = _folder_digests(folder)
    # rebuilt without the source: a registry name as given, a Hub repo or folder by its architecture + args
    arch_name = {"file": str(arch), "timm": init}.get(kind) or model.pretrained_cfg["architecture"]
    arch_kwargs = {k: v for k, v in getattr(model, "_model_args", {}).items() if k != "num_classes"}
    return {**vision, **_vit_fields(model), **_data_fields(model), "arch": arch_name, "arch_kwargs": arch_kwargs}, files


TIMM_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
"""The weight file of a folder in timm's Hub layout, in the order timm's ``local-dir:`` / ``hf-hub:`` loader looks."""


def _check_folder_fits(folder: Path, model: nn.Module) -> None:
    """Every safetensors file of a timm Hub-layout folder is readable, and its weights fit ``model`` (the same
    one-line check as a single file, before timm's loader would stop with a multi-line state-dict error)."""
    check_weight_files(folder_files(folder), "'model.vision.init'")
    weights = next((folder / name for name in TIMM_WEIGHT_FILES if (folder / name).is_file()), None)
    if weights is not None:
        check_fits(weights, model, file_shapes(weights), complete=False)


def _file_arch_kwargs(vision: dict[str, Any], path: Path) -> dict[str, Any]:
    """The timm model arguments a single weight file loaded into ``arch`` was built with.

    ``model.vision.arch_kwargs`` when the config gives them (e.g. ``{img_size: 32, patch_size: 8,
    embed_dim: 32, depth: 2, num_heads: 2}``); otherwise the ``model_args`` of a ``config.json`` beside
    the file written by ``timm.models.save_for_hf`` for the same architecture; otherwise none (the
    architecture's defaults). ``num_classes`` is FuseBench's (0: no classifier) in every case.
    """
    if vision.get("arch_kwargs"):
        return {k: v for k, v in vision["arch_kwargs"].items() if k != "num_classes"}
    beside = path.parent / "config.json"
    if not beside.is_file():
        return {}
    import json

    try:
        config = json.loads(beside.read_text())
    except (OSError, ValueError) as exc:
        raise DataFileError(f"'model.vision.init': {beside} (beside the weight file) is unreadable: {exc}") from None
    if not isinstance(config, dict) or config.get("architecture") != vision.get("arch"):
        return {}  # another tool's config.json, or another architecture's
    args = config.get("model_args") or {}
    if not isinstance(args, dict):
        raise DataFileError(f"'model.vision.init': {beside} has 'model_args' {args!r}; timm writes a mapping")
    return {k: v for k, v in args.items() if k != "num_classes"}


def _resolve_configured_file(vision: dict[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """A plain weight file for the configured ViT: resolution from its pos_embed, FuseBench's 0.5 / 0.5
    normalisation (the file carries no data config) unless the block states ``mean`` / ``std``."""
    import torch

    shapes = file_shapes(path)
    with torch.device("meta"):
        model = build_vision_encoder(vision, _configured_image_size(path, vision, shapes))
    check_vit(model, str(path))
    check_fits(path, model, shapes, complete=True)
    data = {
        "mean": vision.get("mean", [IMAGE_MEAN] * 3),
        "std": vision.get("std", [IMAGE_STD] * 3),
        "interpolation": vision.get("interpolation", "bicubic"),
    }
    return {**vision, **_vit_fields(model), **data, "arch": None, "arch_kwargs": {}}, _file_digest(path)


def _load_timm(name: str, **kwargs: Any) -> nn.Module:
    import timm

    return timm.create_model(name, pretrained=True, num_classes=0, **kwargs)


def build_vision_tower(vision: dict[str, Any], load: bool) -> nn.Module:
    """The pretrained ViT of a resolved vision block, with its weights when ``load`` is true.

    Weights go through timm's own loaders: ``create_model(name, pretrained=True)`` for a name,
    ``local-dir:`` for a directory, ``pretrained_cfg_overlay=dict(file=...)`` for a file with
    ``arch``, ``timm.models.load_checkpoint`` for a file loaded into the configured ViT.
    """
    if "arch_kwargs" not in vision or "image_size" not in vision:
        raise ConfigError(
            "'model.vision.init' names pretrained weights but the model block was not resolved "
            "(benchmark.models.pretrained.resolve_model_config)"
        )
    init, arch = str(vision["init"]), vision.get("arch")
    if not arch:  # a plain file loaded into the configured ViT
        model = build_vision_encoder(vision, int(vision["image_size"]))
        if load:
            path = Path(init).expanduser()
            if not path.is_file():
                raise ConfigError(f"'model.vision.init': {init} does not exist (a local weight file was expected)")
            check_fits(path, model, file_shapes(path), complete=True)
            from timm.models import load_checkpoint

            load_checkpoint(model, str(path), strict=True, filter_fn=_drop_head)
    elif not load:
        import timm

        model = timm.create_model(str(arch), pretrained=False, num_classes=0, **vision["arch_kwargs"])
    else:
        kind, path = _vision_source(vision)
        try:
            if kind == "file":
                model = _load_timm(str(arch), pretrained_cfg_overlay={"file": str(path)}, **vision["arch_kwargs"])
            elif kind == "dir":
                model = _load_timm(f"local-dir:{path}")
            else:
                model = _load_timm(init)
        except weight_load_errors() as exc:
            raise load_failure(f"'model.vision.init': {init}", str(arch), exc) from None
    check_vit(model, init)
    found = _vit_fields(model)
    differs = {k: (vision[k], v) for k, v in found.items() if k in vision and vision[k] != v}
    if differs:
        raise ConfigError(
            f"'model.vision.init': {init} no longer matches the resolved configuration "
            f"(resolved, found: {differs}); was the file replaced? resolve the configuration again"
        )
    return model


def _drop_head(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """A classifier saved with the weights is not part of a FuseBench tower."""
    return {k: v for k, v in state_dict.items() if not k.startswith("head.")}


# -- text ---------------------------------------------------------------------------------------
def _text_config(init: str) -> Any:
    """The transformers config of ``init`` with dropout off (see the module docstring)."""
    from transformers import AutoConfig

    source, local_only = text_location(init)
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"'model.text.init': no transformers config for {init!r}: {exc}") from None
    return _without_dropout(config)


def _without_dropout(config: Any) -> Any:
    for name, value in config.to_dict().items():
        if "dropout" in name and isinstance(value, float):
            setattr(config, name, 0.0)
    return config


def _check_encoder(config: Any, init: str) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if getattr(config, "is_encoder_decoder", False) or getattr(config, "is_decoder", False):
        raise ConfigError(f"'model.text.init': {init} ({config.model_type}) is not an encoder-only model")
    if config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise ConfigError(
            f"'model.text.init': {init} is a {config.model_type} model; FuseBench's text tower needs a "
            "bidirectional encoder with [CLS] at position 0 (BERT, RoBERTa, ELECTRA, ...)"
        )


def usable_length(config: Any) -> int:
    """The longest input the model's position embeddings allow."""
    length = int(getattr(config, "max_position_embeddings", 0) or 0)
    if config.model_type in OFFSET_POSITIONS:
        length -= int(config.pad_token_id or 0) + 1
    return length


def _resolve_text(text: dict[str, Any], max_length: int | None) -> tuple[dict[str, Any], dict[str, str]]:
    init = str(text["init"])
    source, local_only = text_location(init)
    if local_only and Path(source).is_dir():
        folder = Path(source)
    else:
        folder = _hub_snapshot(init, "model.text.init", init, lambda: _populate_text_cache(init))
    config = _text_config(init)
    check_weight_files(folder_files(folder), "'model.text.init'")
    files = _folder_digests(folder)
    _check_encoder(config, init)
    limit = usable_length(config)
    if max_length is not None and limit and max_length > limit:
        raise ConfigError(
            f"'tokenizer.max_length' ({max_length}) exceeds what {init} can read ({limit} positions, "
            "its max_position_embeddings)"
        )
    width = int(config.hidden_size)
    inner = getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", None) or 4 * width
    resolved = {
        **text,
        "width": width,
        "depth": int(config.num_hidden_layers),
        "heads": int(config.num_attention_heads),
        "mlp_ratio": inner / width,
        "hf_config": config.to_dict(),
    }
    return resolved, files


def _populate_text_cache(init: str) -> None:
    """Online, fetch the files transformers itself uses (config, weights, tokenizer) into the cache."""
    from transformers import AutoModel, AutoTokenizer

    AutoModel.from_pretrained(init)
    AutoTokenizer.from_pretrained(init)


def build_text_tower(text: dict[str, Any], load: bool, vocab_size: int = 0) -> nn.Module:
    """The pretrained encoder of a resolved text block, with its weights when ``load`` is true.

    Built from the resolved ``hf_config`` either way (dropout off), so a checkpoint rebuild
    (``load=False``) has exactly the architecture that was trained. ``vocab_size`` is the run's
    tokenizer size, which must fit the model's embedding table.

    Loaded weights must fit (:func:`~benchmark.sources.check_loading_info`), before any
    training: a tensor of another shape, or one the folder lacks, is a DataFileError naming the folder
    and the tensor, except a missing pooler (FuseBench reads ``last_hidden_state[:, 0]``, never the
    pooler; RoBERTa-style MLM checkpoints ship without one). Tensors of the folder the encoder has no
    place for (an MLM or pretraining head) are ignored.
    """
    import torch
    from transformers import AutoConfig, AutoModel

    if "hf_config" not in text:
        raise ConfigError(
            "'model.text.init' names pretrained weights but the model block was not resolved "
            "(benchmark.models.pretrained.resolve_model_config)"
        )
    config = AutoConfig.for_model(**copy.deepcopy(text["hf_config"]))
    init = str(text["init"])
    if vocab_size > int(config.vocab_size):
        raise ConfigError(
            f"'model.text.init': the tokenizer has {vocab_size} tokens but {init} embeds only {config.vocab_size}; "
            "use the model's own tokenizer (tokenizer.init)"
        )
    if not load:
        return AutoModel.from_config(config)
    source, local_only = text_location(init)
    try:
        model, info = AutoModel.from_pretrained(
            source,
            config=config,
            local_files_only=local_only,
            dtype=torch.float32,
            output_loading_info=True,
            ignore_mismatched_sizes=True,  # reported by check_loading_info, with both shapes
        )
    except weight_load_errors() as exc:
        raise load_failure(
            f"'model.text.init': {init}", type(config).__name__.replace("Config", "Model"), exc
        ) from None
    check_loading_info(model, info, f"'model.text.init': {source}", optional=UNUSED_TEXT_PARTS)
    return model


# -- the model block ----------------------------------------------------------------------------
def resolve_model_config(model: dict[str, Any], max_length: int | None = None) -> dict[str, Any]:
    """A deep copy of the ``model`` block with every pretrained tower's architecture read from its source.

    Vision gains ``width``, ``depth``, ``heads``, ``mlp_ratio``, ``patch_size``, ``image_size`` (the
    pretrained input resolution), ``mean``/``std``/``interpolation`` (timm's data config),
    ``arch`` and ``arch_kwargs`` (``timm.create_model(arch, pretrained=False, num_classes=0,
    **arch_kwargs)`` rebuilds it; ``arch`` None = the configured ViT). Text gains ``width``,
    ``depth``, ``heads``, ``mlp_ratio`` and ``hf_config`` (``AutoModel.from_config`` rebuilds it).
    ``sources`` records, per pretrained tower, ``{"init": as given, "files": {name: sha256}}``: each file
    by its path relative to the weights' folder (the Hub snapshot for a name), a single weight file by its
    name. Random
    towers are left unchanged; with none pretrained the block is returned as a plain copy.

    Args:
        model: the config's ``model`` block.
        max_length: the tokenizer length, checked against a pretrained text model's positions.

    Raises:
        ConfigError: a missing path, an unknown or uncached (offline) name, or a model FuseBench
            cannot use (not a single-[CLS] ViT, not an encoder, too short for ``max_length``).
        DataFileError: a weight file that is unreadable or does not fit the tower.
    """
    resolved = copy.deepcopy(model)
    sources: dict[str, Any] = {}
    if is_pretrained(resolved.get("vision", {})):
        resolved["vision"], files = _resolve_vision(resolved["vision"])
        sources["vision"] = {"init": model["vision"]["init"], "files": files}
    if is_pretrained(resolved.get("text", {})):
        resolved["text"], files = _resolve_text(resolved["text"], max_length)
        sources["text"] = {"init": model["text"]["init"], "files": files}
    if sources:
        resolved["sources"] = sources
    return resolved


def apply_training_options(tower: nn.Module, encoder: str, block: dict[str, Any]) -> None:
    """``freeze`` and ``lr_multiplier`` of a tower block, applied to its encoder submodule ``encoder``.

    Freezing turns off the encoder's gradients (the tower's heads still train); a multiplier ≠ 1
    is left for :func:`benchmark.train.loop.build_optimizer` in the tower's ``lr_scales``.
    """
    if block.get("freeze", False):
        for param in getattr(tower, encoder).parameters():
            param.requires_grad_(False)
    multiplier = float(block.get("lr_multiplier", 1.0))
    if multiplier != 1.0:
        tower.lr_scales = {encoder: multiplier}
