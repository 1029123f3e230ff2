"""Pretrained text towers (transformers encoders read at [CLS]): resolve a source's config, then build it.

Sources and checks are described in :mod:`benchmark.models.pretrained`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

from benchmark.errors import ConfigError
from benchmark.models.pretrained.common import folder_digests, hub_snapshot
from benchmark.sources import (
    check_loading_info,
    check_weight_files,
    folder_files,
    load_failure,
    text_location,
    weight_load_errors,
)

# Encoder parts FuseBench never reads, which a checkpoint may lack (its weights stay randomly initialised).
UNUSED_TEXT_PARTS = ("pooler.",)
# Transformers encoders whose position ids start after the padding index (RoBERTa family): their
# usable length is max_position_embeddings - pad_token_id - 1.
OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "longformer", "mpnet"}


def _text_config(init: str) -> Any:
    """The transformers config of ``init`` with dropout off (see the module docstring)."""

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


def resolve_text(text: dict[str, Any], max_length: int | None) -> tuple[dict[str, Any], dict[str, str]]:
    init = str(text["init"])
    source, local_only = text_location(init)
    if local_only and Path(source).is_dir():
        folder = Path(source)
    else:
        folder = hub_snapshot(init, "model.text.init", init, lambda: _populate_text_cache(init))
    config = _text_config(init)
    check_weight_files(folder_files(folder), "'model.text.init'")
    files = folder_digests(folder)
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
