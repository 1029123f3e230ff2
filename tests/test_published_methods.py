"""Published checkpoints as zero-shot methods: FuseBench's numbers equal the model's own, through FuseBench's paths.

Each wrapper (``baselines/published_*.py``) is built from a tiny random checkpoint written with
``save_pretrained`` (``tests/published_fixtures.py``) and compared with what the checkpoint gives
when used as its ``transformers`` documentation shows — its processor on PIL images, its own
forward pass and post-processing — on CPU in float32. Embeddings and scores must agree to 1e-5,
boxes to 1e-4 pixels (a 32-px image: float32 rounding of coordinates scaled by 32).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.data.sampling import trim_padding
from benchmark.data.tokenizer import encode
from benchmark.errors import ConfigError, DataFileError, MissingModalityError
from benchmark.models.method import BuildContext, FusionMethod
from benchmark.models.published import pooled
from benchmark.registry import load_method, method_schedule
from tests.pretrained_fixtures import edit_weights
from tests.published_fixtures import BUILDERS, WIDTH

TOLERANCE = 1e-5
BOX_TOLERANCE = 1e-4  # pixels
SIZE = 32  # FuseBench's test images (and the tiny scenes')
TEXTS = ["a red circle", "the blue square", "green"]  # each within OWL-ViT's 16 tokens
PUBLISHED = ("published_dual_encoder", "published_detector", "published_matcher")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("published")
    return {name: build(root / name) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (len(TEXTS), 3, SIZE, SIZE), dtype=torch.uint8, generator=generator)


def context(image_size: int = SIZE) -> BuildContext:
    """What the workflow gives a zero-shot method: the evaluated data's image size, no vocabulary."""
    return BuildContext({}, image_size, 0, 0, {})


def method(name: str, pretrained: Path | str | None, **overrides: Any) -> FusionMethod:
    return load_method(name)(context(), pretrained=None if pretrained is None else str(pretrained), **overrides)


def as_pil(images: torch.Tensor) -> list[Any]:
    from PIL import Image

    return [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in images]


def reference(directory: Path, architecture: str) -> tuple[Any, Any]:
    """The checkpoint loaded the documented way: its model class and AutoProcessor."""
    import transformers

    model = getattr(transformers, architecture).from_pretrained(directory, local_files_only=True).eval()
    return model, transformers.AutoProcessor.from_pretrained(directory, local_files_only=True)


def assert_close(got: torch.Tensor, want: torch.Tensor, tolerance: float = TOLERANCE) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    assert float((got - want).abs().max()) <= tolerance, float((got - want).abs().max())


# -- the method contract -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_methods_are_zero_shot_and_read_pretrained(name: str) -> None:
    """The workflow reads both from the file without importing it; the class agrees (load_method checks)."""
    schedule = method_schedule(name)
    assert schedule.zero_shot and schedule.published and schedule.pretrained is None
    cls = load_method(name)
    assert cls.training_stages == ()
    assert cls.paper and cls.family and cls.__doc__


@pytest.mark.parametrize("name", PUBLISHED)
def test_unset_or_missing_pretrained_is_a_config_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"method_overrides\.{name}\.pretrained is not set"):
        method(name, None)
    missing = tmp_path / "no" / "such-checkpoint"
    with pytest.raises(ConfigError, match=rf"method_overrides\.{name}\.pretrained = .*no such directory") as error:
        method(name, missing)
    assert str(missing) in str(error.value)
    with pytest.raises(ConfigError, match=rf"method_overrides\.{name}\.pretrained = 'nobody/not-cached'"):
        method(name, "nobody/not-cached")  # a hub name, offline (conftest) and not in the cache
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=rf"method_overrides\.{name}\.pretrained = '{empty}'"):
        method(name, empty)


def test_a_checkpoint_of_another_architecture_is_a_config_error(checkpoints: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"is a 'clip' checkpoint; published_detector reads owlv2, owlvit"):
        method("published_detector", checkpoints["clip"])


def test_text_policy_overrides_are_checked(checkpoints: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"method_overrides\.published_dual_encoder\.text_padding = 'left'"):
        method("published_dual_encoder", checkpoints["clip"], text_padding="left")
    with pytest.raises(
        ConfigError, match=r"method_overrides\.published_detector\.max_length = 40 exceeds the 16 text positions"
    ):
        method("published_detector", checkpoints["owlvit"], max_length=40)


def test_weight_sources_are_the_sha256_of_every_checkpoint_file(checkpoints: dict[str, Path]) -> None:
    sources = method("published_dual_encoder", checkpoints["clip"]).weight_sources()
    directory = checkpoints["clip"]
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir() if p.is_file()}
    # the source as given, each file by its path in the folder: the same provenance on every machine
    assert sources == {"model": {"source": str(directory), "files": files}}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(files)


def test_weights_that_do_not_fit_the_class_are_a_data_file_error(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """A tensor of another shape, or one the checkpoint lacks, fails at load naming the folder and the tensor
    (transformers alone would initialise it randomly); extra tensors of the checkpoint are ignored."""
    projection = "text_projection.weight"
    wide = edit_weights(checkpoints["clip"], tmp_path / "wide", lambda t: t.update({projection: torch.zeros(8, WIDTH)}))
    message = rf"pretrained = '{wide}' \(folder {wide}\) does not fit CLIPModel: {projection} has shape \[8, 32\]"
    with pytest.raises(DataFileError, match=rf"{message} in the checkpoint, \[16, 32\] in the model"):
        method("published_dual_encoder", wide)
    missing = edit_weights(checkpoints["clip"], tmp_path / "missing", lambda t: t.pop("logit_scale"))
    with pytest.raises(DataFileError, match=rf"{missing}\).*logit_scale is missing from the checkpoint"):
        method("published_dual_encoder", missing)
    extra = edit_weights(checkpoints["clip"], tmp_path / "extra", lambda t: t.update({"head.bias": torch.zeros(3)}))
    assert torch.equal(
        method("published_dual_encoder", extra).model.logit_scale, reference(extra, "CLIPModel")[0].logit_scale
    )


def test_a_hub_names_files_are_hashed_from_its_cache_snapshot(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub name's weights are the files of its cached snapshot, which links each file to a content blob."""
    import huggingface_hub.constants

    from benchmark.models.published import checkpoint_folder, hash_files, resolve_source

    revision = "0" * 40
    repo = tmp_path / "hub" / "models--org--tiny-clip"
    snapshot, blobs = repo / "snapshots" / revision, repo / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    expected = {}
    for path in checkpoints["clip"].iterdir():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        (blobs / digest).write_bytes(path.read_bytes())
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", digest))
        expected[path.name] = digest
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    source = resolve_source("published_dual_encoder", "org/tiny-clip")
    assert not source.local and source.local_files_only  # offline (conftest): nothing is downloaded
    assert checkpoint_folder(source) == snapshot
    assert hash_files(snapshot) == expected


def test_a_missing_modality_raises(checkpoints: dict[str, Path], images: torch.Tensor) -> None:
    dual = method("published_dual_encoder", checkpoints["clip"])
    detector = method("published_detector", checkpoints["owlvit"])
    matcher = method("published_matcher", checkpoints["blip"])
    text = encode(detector.text_tokenizer(), TEXTS)
    for call in (
        lambda: dual.embed_image(None),
        lambda: dual.embed_text(None),
        lambda: detector.ground(None, text),
        lambda: detector.ground(images, None),
        lambda: matcher.prepare_images(None),
        lambda: matcher.prepare_texts(None),
    ):
        with pytest.raises(MissingModalityError, match="cannot run without the"):
            call()


def test_not_applicable_tasks_say_why() -> None:
    assert "no detection head" in load_method("published_dual_encoder").not_applicable_reason("grounding")
    assert "not whole images" in load_method("published_detector").not_applicable_reason("retrieval")
    assert "no box head" in load_method("published_matcher").not_applicable_reason("grounding")


# -- equality with the models' own outputs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, architecture, padding",
    [("clip", "CLIPModel", "longest"), ("siglip", "SiglipModel", "max_length")],
)
def test_dual_encoder_embeddings_equal_the_models_features(
    checkpoints: dict[str, Path], images: torch.Tensor, kind: str, architecture: str, padding: str
) -> None:
    """embed_image / embed_text on FuseBench's inputs = get_image_features / get_text_features on the processor's."""
    wrapped = method("published_dual_encoder", checkpoints[kind])
    model, processor = reference(checkpoints[kind], architecture)
    with torch.no_grad():
        tokens = trim_padding(encode(wrapped.text_tokenizer(), TEXTS))  # as retrieval_scores does
        got_image, got_text = wrapped.embed_image(images), wrapped.embed_text(tokens)
        inputs = processor(images=as_pil(images), text=TEXTS, padding=padding, return_tensors="pt")
        text_inputs = {k: inputs[k] for k in processor.tokenizer.model_input_names}
        want_image = F.normalize(pooled(model.get_image_features(pixel_values=inputs["pixel_values"])), dim=-1)
        want_text = F.normalize(pooled(model.get_text_features(**text_inputs)), dim=-1)
    assert_close(got_image, want_image)
    assert_close(got_text, want_text)
    if kind == "siglip":  # padded to its 64 positions, no mask: trim_padding must have kept every column
        assert tokens["input_ids"].shape[1] == 64 and set(text_inputs) == {"input_ids"}


def _reference_detections(
    checkpoint: Path, architecture: str, images: torch.Tensor, texts: list[str]
) -> tuple[Any, list[dict[str, torch.Tensor]]]:
    """The model's output and its image processor's post_process_object_detection(threshold=0), in pixels."""
    model, processor = reference(checkpoint, architecture)
    height, width = images.shape[-2:]
    with torch.no_grad():
        inputs = processor(text=texts, images=as_pil(images), return_tensors="pt")
        output = model(**inputs)
    detections = processor.image_processor.post_process_object_detection(
        output, threshold=0.0, target_sizes=[(height, width)] * len(images)
    )
    return output, detections


@pytest.mark.parametrize(
    "kind, architecture", [("owlvit", "OwlViTForObjectDetection"), ("owlv2", "Owlv2ForObjectDetection")]
)
def test_detector_boxes_and_scores_equal_the_models_post_processing(
    checkpoints: dict[str, Path], images: torch.Tensor, kind: str, architecture: str
) -> None:
    """Through FuseBench's decode: with NMS and top-k switched off it gives exactly the post-processed detections
    (boxes clipped to the image as decode does); with the default settings a subset of them, the best first."""
    from benchmark.boxes import convert
    from benchmark.evaluation.grounding import decode

    wrapped = method("published_detector", checkpoints[kind])
    with torch.no_grad():
        boxes, logits = wrapped.ground(images, trim_padding(encode(wrapped.text_tokenizer(), TEXTS)))
    output, detections = _reference_detections(checkpoints[kind], architecture, images, TEXTS)
    assert_close(boxes, output.pred_boxes)
    assert_close(logits, output.logits[..., 0])
    patches = boxes.shape[1]
    everything = decode(boxes, logits, SIZE, nms_iou=1.0, max_detections=patches)
    kept = decode(boxes, logits, SIZE, nms_iou=0.5, max_detections=100)
    for (got_boxes, got_scores), (top_boxes, top_scores), want in zip(everything, kept, detections):
        order = want["scores"].argsort(descending=True)
        want_scores = want["scores"][order].double()
        want_boxes = convert(want["boxes"][order].clamp(0, SIZE), "xyxy", "xywh").double()
        assert len(got_scores) == patches
        assert_close(torch.from_numpy(got_scores), want_scores)
        assert_close(torch.from_numpy(got_boxes), want_boxes, BOX_TOLERANCE)
        for box, score in zip(top_boxes, top_scores):  # NMS keeps some of them, unchanged, best first
            match = np.abs(want_scores.numpy() - score) <= TOLERANCE
            assert match.any() and np.abs(want_boxes.numpy()[match] - box).max(axis=1).min() <= BOX_TOLERANCE
        assert top_scores[0] == pytest.approx(float(want_scores[0]), abs=TOLERANCE)


def test_owlv2_boxes_of_a_non_square_image_are_in_the_images_frame(
    checkpoints: dict[str, Path], images: torch.Tensor
) -> None:
    """OWLv2 pads to a square; the wrapper's normalised boxes times (W, H) equal post_process's pixels."""
    from benchmark.boxes import convert

    wide = torch.cat([images, images[..., : SIZE // 2]], dim=-1)  # 32 × 48
    wrapped = method("published_detector", checkpoints["owlv2"])
    with torch.no_grad():
        boxes, _ = wrapped.ground(wide, encode(wrapped.text_tokenizer(), TEXTS))
    _, detections = _reference_detections(checkpoints["owlv2"], "Owlv2ForObjectDetection", wide, TEXTS)
    height, width = wide.shape[-2:]
    pixels = convert(boxes, "cxcywh", "xyxy") * torch.tensor([width, height, width, height])
    for got, want in zip(pixels, detections):
        assert_close(got, want["boxes"], BOX_TOLERANCE)


def test_matcher_itm_and_itc_equal_the_models_heads(checkpoints: dict[str, Path], images: torch.Tensor) -> None:
    """score_prepared = model(use_itm_head=True).itm_score[:, 1] on aligned pairs; the ITC similarity of
    embed_image / embed_text = model(use_itm_head=False).itm_score; itm_plus_itc adds the two."""
    wrapped = method("published_matcher", checkpoints["blip"], itm_plus_itc=False)  # ALBEF's ITM-only ranking
    plus = method("published_matcher", checkpoints["blip"], itm_plus_itc=True)
    model, processor = reference(checkpoints["blip"], "BlipForImageTextRetrieval")
    with torch.no_grad():
        tokens = trim_padding(encode(wrapped.text_tokenizer(), TEXTS))
        itm = wrapped.score_prepared(wrapped.prepare_images(images), wrapped.prepare_texts(tokens))
        itc = wrapped.embed_image(images) @ wrapped.embed_text(tokens).t()
        both = plus.score_prepared(plus.prepare_images(images), plus.prepare_texts(tokens))
        inputs = processor(
            images=as_pil(images), text=TEXTS, padding="max_length", truncation=True, max_length=35, return_tensors="pt"
        )
        arguments = {k: inputs[k] for k in ("input_ids", "attention_mask", "pixel_values")}
        want_itm = model(**arguments, use_itm_head=True).itm_score[:, 1]
        want_itc = model(**arguments, use_itm_head=False).itm_score  # images × texts
    assert wrapped.text_tokenizer().encode_texts(TEXTS)["input_ids"].shape[1] == 35
    assert_close(itm, want_itm)
    assert_close(itc, want_itc)
    assert_close(both, want_itm + want_itc.diagonal())


# -- FuseBench's evaluation, end to end ----------------------------------------------------------------------------


def _finite(metrics: dict[str, float | None], required: tuple[str, ...]) -> None:
    assert all(metrics[name] is not None and math.isfinite(metrics[name]) for name in required), metrics
    assert all(0.0 <= v <= 1.0 for v in metrics.values() if v is not None), metrics


@pytest.mark.parametrize(
    "name, kind, retrieval, protocol",
    [
        ("published_dual_encoder", "clip", {}, "embedding"),
        ("published_dual_encoder", "siglip", {}, "embedding"),
        ("published_matcher", "blip", {"exhaustive_max_images": 100}, "exhaustive"),
        ("published_matcher", "blip", {"exhaustive_max_images": 4, "shortlist_k": 3}, "itc_shortlist"),
    ],
    ids=["clip", "siglip", "blip-exhaustive", "blip-shortlist"],
)
def test_retrieval_evaluation_runs_with_each_wrapper(
    checkpoints: dict[str, Path],
    tiny_dataset: Path,
    smoke_config: dict,
    name: str,
    kind: str,
    retrieval: dict[str, Any],
    protocol: str,
) -> None:
    from benchmark.data.dataset import load_split
    from benchmark.evaluation.retrieval import evaluate_retrieval

    split = load_split(tiny_dataset, "test")
    model = method(name, checkpoints[kind])
    settings = {**smoke_config["evaluate"]["retrieval"], "max_images": 8, **retrieval}
    metrics, record, _ = evaluate_retrieval(model, split, model.text_tokenizer(), torch.device("cpu"), 8, settings)
    assert record["protocol"] == protocol
    _finite(metrics, ("t2i_R@1", "i2t_R@1", "mean_R"))


@pytest.mark.parametrize("kind", ["owlvit", "owlv2"])
def test_grounding_evaluation_runs_with_the_detector(
    checkpoints: dict[str, Path], tiny_dataset: Path, smoke_config: dict, kind: str
) -> None:
    from benchmark.data.dataset import load_split
    from benchmark.evaluation.grounding import evaluate_grounding

    split = load_split(tiny_dataset, "test").head(6)
    model = method("published_detector", checkpoints[kind])
    settings = dict(smoke_config["evaluate"]["grounding"])
    metrics, record, _ = evaluate_grounding(model, split, model.text_tokenizer(), torch.device("cpu"), 8, settings)
    assert record["pairs"] == len(split.refs)
    _finite(metrics, ("AP", "AP50"))
    missing = torch.zeros(len(split.refs), dtype=torch.bool)
    missing[0] = True
    with pytest.raises(MissingModalityError):
        evaluate_grounding(
            model, split, model.text_tokenizer(), torch.device("cpu"), 8, settings, image_missing=missing
        )
