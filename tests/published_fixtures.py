"""Tiny random published checkpoints, built offline, for the tests of ``benchmark.models.published``.

Each builder writes what ``from_pretrained`` reads from a hub snapshot — the model's config and
weights, its processor's image-processor and tokenizer files — into a directory with
``save_pretrained``, so the wrappers load them exactly as they would load a real checkpoint.
Nothing is downloaded: tokenizers are built from a few hand-made files (a byte-level BPE
vocabulary for CLIP-style models, a WordPiece vocabulary for BLIP). Models are seeded and
tiny (2 layers, width 32, 24-pixel images), so building and running one takes well under a second.

Images are 24 px (patch 8, a 3×3 grid) while FuseBench's test scenes are 32 px, so every
processor really resizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

IMAGE_SIZE = 24  # the tiny models' input resolution
PATCH = 8
WIDTH = 32
LAYERS = 2
HEADS = 4
PROJECTION = 16
CLIP_MAX_LENGTH = 77  # CLIP's context length
OWL_MAX_LENGTH = 16  # OWL-ViT's text context length
SIGLIP_MAX_LENGTH = 64  # SigLIP's text length (padding="max_length")
BLIP_POSITIONS = 64


def _towers(**text: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(text config, vision config) kwargs shared by the tiny CLIP-family models."""
    vision = {
        "hidden_size": WIDTH,
        "intermediate_size": 2 * WIDTH,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH,
    }
    text_config = {
        "hidden_size": WIDTH,
        "intermediate_size": 2 * WIDTH,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        **text,
    }
    return text_config, vision


# -- tokenizers ----------------------------------------------------------------------------------------------------


def byte_level_vocabulary() -> dict[str, int]:
    """CLIP's byte-level BPE alphabet with no merges: the 256 byte symbols, each also with ``</w>`` (end of
    word), then ``<|startoftext|>`` and ``<|endoftext|>`` last — as in CLIP's vocabulary, whose EOS has the
    largest id (CLIP and OWL-ViT pool the text at ``input_ids.argmax()``)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}


def clip_tokenizer(max_length: int) -> Any:
    """A CLIPTokenizer (tokenizers-backed) over the byte-level alphabet; pads with EOS, as CLIP's does."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=byte_level_vocabulary(), merges=[], model_max_length=max_length)


def bert_tokenizer() -> Any:
    """A BertTokenizer (what BLIP's checkpoints use) over special tokens, letters and a few words."""
    from transformers import BertTokenizer

    words = ["a", "the", "red", "blue", "green", "circle", "square", "triangle", "left", "right", "of", "small"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *letters,
        *[f"##{c}" for c in letters],
        *words,
        *"0123456789.,'",
    ]
    return BertTokenizer(vocab={t: i for i, t in enumerate(dict.fromkeys(tokens))}, model_max_length=512)


def sentencepiece_free_siglip_tokenizer(max_length: int) -> Any:
    """A tokenizers-backed stand-in for SigLIP's SentencePiece tokenizer (sentencepiece is not installed).

    Like SigLIP's: Metaspace pre-tokenisation, ``</s>`` appended, ``</s>`` as pad, only ``input_ids``
    returned (SigLIP's text tower sees no attention mask), padded to ``max_length`` by its processor's
    documented policy. A Unigram model over characters keeps it self-contained.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces = ["<pad>", "</s>", "<unk>", "▁", *[chr(c) for c in range(32, 127)]]
    vocab = [(p, -1.0) for p in dict.fromkeys(pieces)]
    backend = Tokenizer(models.Unigram(vocab, unk_id=2))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="</s>",
        pad_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
        model_input_names=["input_ids"],
    )


# -- models --------------------------------------------------------------------------------------------------------


def _save(directory: Path, model: Any, processor: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def _clip_towers(tokenizer: Any, max_length: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(text config, vision config) of a tiny model over a CLIP-style tokenizer reading ``max_length`` tokens."""
    return _towers(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_clip(directory: Path, seed: int = 0) -> Path:
    """A tiny CLIPModel and CLIPProcessor (resize shortest edge + centre crop to 24 px, CLIP's mean/std)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = clip_tokenizer(CLIP_MAX_LENGTH)
    text, vision = _clip_towers(tokenizer, CLIP_MAX_LENGTH)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=PROJECTION))
    images = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return _save(directory, model, CLIPProcessor(image_processor=images, tokenizer=tokenizer))


def build_siglip(directory: Path, seed: int = 0) -> Path:
    """A tiny SiglipModel and SiglipProcessor (resize to 24×24, mean/std 0.5) with a tokenizers-backed tokenizer."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    tokenizer = sentencepiece_free_siglip_tokenizer(SIGLIP_MAX_LENGTH)
    text, vision = _towers(
        vocab_size=len(tokenizer),
        max_position_embeddings=SIGLIP_MAX_LENGTH,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    images = SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    return _save(directory, model, SiglipProcessor(image_processor=images, tokenizer=tokenizer))


def _build_owl(directory: Path, seed: int, config: Any, detector: Any, processor: Any, images: Any) -> Path:
    """A tiny OWL-ViT-family detector (``config`` / ``detector`` / ``processor`` classes, ``images`` its image
    processor) with text padded to 16. The projection is as wide as the text tower, as in OWL-ViT's
    checkpoints: the class head maps image tokens to the text width and compares them with the projected
    queries."""
    tokenizer = clip_tokenizer(OWL_MAX_LENGTH)
    text, vision = _clip_towers(tokenizer, OWL_MAX_LENGTH)
    torch.manual_seed(seed)
    model = detector(config(text_config=text, vision_config=vision, projection_dim=WIDTH))
    return _save(directory, model, processor(image_processor=images, tokenizer=tokenizer))


def build_owlvit(directory: Path, seed: int = 0) -> Path:
    """A tiny OwlViTForObjectDetection and OwlViTProcessor (resize + crop to 24 px; text padded to 16)."""
    from transformers import OwlViTConfig, OwlViTForObjectDetection, OwlViTImageProcessor, OwlViTProcessor

    images = OwlViTImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return _build_owl(directory, seed, OwlViTConfig, OwlViTForObjectDetection, OwlViTProcessor, images)


def build_owlv2(directory: Path, seed: int = 0) -> Path:
    """A tiny Owlv2ForObjectDetection and Owlv2Processor (pad to a square, resize to 24 px; text padded to 16)."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    images = Owlv2ImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    return _build_owl(directory, seed, Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor, images)


def build_blip(directory: Path, seed: int = 0, positions: int = BLIP_POSITIONS) -> Path:
    """A tiny BlipForImageTextRetrieval and BlipProcessor (resize to 24×24; a WordPiece tokenizer) reading
    ``positions`` text positions."""
    from transformers import BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor

    tokenizer = bert_tokenizer()
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": WIDTH,
        "intermediate_size": 2 * WIDTH,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "encoder_hidden_size": WIDTH,
        "max_position_embeddings": positions,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.cls_token_id,
        "sep_token_id": tokenizer.sep_token_id,
    }
    _, vision = _towers()
    torch.manual_seed(seed)
    model = BlipForImageTextRetrieval(
        BlipConfig(text_config=text, vision_config=vision, projection_dim=PROJECTION, image_text_hidden_size=PROJECTION)
    )
    images = BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    return _save(directory, model, BlipProcessor(image_processor=images, tokenizer=tokenizer))


BUILDERS = {
    "clip": build_clip,
    "siglip": build_siglip,
    "owlvit": build_owlvit,
    "owlv2": build_owlv2,
    "blip": build_blip,
}
