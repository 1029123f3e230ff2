"""Pretrained vision towers (timm ViTs): resolve a source's architecture without its weights, then build it.

Sources, checks and the single-file / folder / Hub rules are described in :mod:`benchmark.models.pretrained`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors import safe_open
from timm.data import resolve_model_data_config
from timm.models import clean_state_dict, load_checkpoint, load_state_dict
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from benchmark.errors import ConfigError, DataFileError, one_line
from benchmark.models.encoders import IMAGE_MEAN, IMAGE_STD, build_vision_encoder
from benchmark.models.pretrained.common import file_digest, folder_digests, hub_snapshot
from benchmark.sources import (
    WEIGHT_SUFFIXES,
    check_weight_files,
    folder_files,
    load_failure,
    local_weights_path,
    weight_load_errors,
)


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

    if not timm.is_model(init):
        raise ConfigError(
            f"'model.vision.init': {init!r} is neither an existing path nor a timm model name "
            "(see timm.list_models(pretrained=True)), nor an 'hf-hub:org/repo' name"
        )
    return "timm", None


def check_vit(model: nn.Module, name: str) -> None:
    """Refuse a model FuseBench cannot take [CLS] + patch tokens from, naming it."""

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

    data = resolve_model_data_config(model)
    return {
        "mean": [float(v) for v in data["mean"]],
        "std": [float(v) for v in data["std"]],
        "interpolation": str(data.get("interpolation", "bicubic")),
    }


def _meta_timm(name: str, **kwargs: Any) -> nn.Module:
    """A timm model on the meta device: its architecture and pretrained_cfg, no memory, no RNG draws."""

    try:
        with torch.device("meta"):
            return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    except (RuntimeError, ValueError, FileNotFoundError, OSError) as exc:
        raise ConfigError(f"'model.vision': timm cannot build {name!r}: {exc}") from None


def file_shapes(path: Path, header: dict[str, tuple[int, ...]] | None = None) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape of a weight file (safetensors: header only), keys cleaned as timm does.

    ``header``: the safetensors shapes :func:`~benchmark.sources.check_weight_files` already read.
    """

    if header is not None:
        return clean_state_dict(header)
    try:
        if path.name.lower().endswith(".safetensors"):
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


def resolve_vision(vision: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
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
        files = file_digest(path)
    elif path is not None:  # a directory in timm's Hub layout
        model = _meta_timm(f"local-dir:{path}")
        check_vit(model, str(path))
        _check_folder_fits(path, model)
        files = folder_digests(path)
    elif kind == "hub":
        folder = hub_snapshot(init[len("hf-hub:") :], "model.vision.init", init, lambda: _load_timm(init))
        model = _meta_timm(init)
        check_vit(model, init)
        _check_folder_fits(folder, model)
        files = folder_digests(folder)
    else:  # a timm registry name: its weights live in the Hub repo its pretrained_cfg names
        model = _meta_timm(init)
        check_vit(model, init)
        repo = model.pretrained_cfg.get("hf_hub_id")
        if not repo:
            raise ConfigError(
                f"'model.vision.init': timm has no Hugging Face Hub weights for {init!r}; download its "
                "weights and give the file as model.vision.init with model.vision.arch"
            )
        folder = hub_snapshot(repo, "model.vision.init", init, lambda: _load_timm(init))
        _check_folder_fits(folder, model)
        files = folder_digests(folder)
    # rebuilt without the source: a registry name as given, a Hub repo or folder by its architecture + args
    arch_name = {"file": str(arch), "timm": init}.get(kind) or model.pretrained_cfg["architecture"]
    arch_kwargs = {k: v for k, v in getattr(model, "_model_args", {}).items() if k != "num_classes"}
    return {**vision, **_vit_fields(model), **_data_fields(model), "arch": arch_name, "arch_kwargs": arch_kwargs}, files


TIMM_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
"""The weight file of a folder in timm's Hub layout, in the order timm's ``local-dir:`` / ``hf-hub:`` loader looks."""


def _check_folder_fits(folder: Path, model: nn.Module) -> None:
    """Every safetensors file of a timm Hub-layout folder is readable, and its weights fit ``model`` (the same
    one-line check as a single file, before timm's loader would stop with a multi-line state-dict error)."""
    headers = check_weight_files(folder_files(folder), "'model.vision.init'")
    weights = next((folder / name for name in TIMM_WEIGHT_FILES if (folder / name).is_file()), None)
    if weights is not None:
        check_fits(weights, model, file_shapes(weights, headers.get(weights)), complete=False)


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
    return {**vision, **_vit_fields(model), **data, "arch": None, "arch_kwargs": {}}, file_digest(path)


def _load_timm(name: str, **kwargs: Any) -> nn.Module:

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
            load_checkpoint(model, str(path), strict=True, filter_fn=_drop_head)
    elif not load:
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
