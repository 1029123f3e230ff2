"""Real inputs that are broken, named before training: each case runs the ``fusebench`` command (its ``main``, as
``python -m benchmark`` does) on files written by the libraries' own writers (``save_pretrained``,
``timm.models.save_for_hf``, safetensors, the official-format writers) or corrupted copies of them, and asserts the
exit code, a last stderr line ``fusebench: <label>: …`` naming the file or key on one line, and no traceback.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmark.cli import main
from tests.helpers import SMOKE, build_small_scenes, config_args, job_args
from tests.pretrained_fixtures import edit_weights, save_bert

TINY_VIT_ARGS = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *LETTERS, *(f"##{c}" for c in LETTERS)]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``fusebench ARGV``: its exit code and its stderr."""
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, stderr: str, expected_code: int, label: str, *named: str) -> str:
    """The exit code, no traceback, and a last line ``fusebench: <label>: …`` naming every string in ``named``."""
    assert code == expected_code, stderr
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"fusebench: {label}: "), stderr
    for name in named:
        assert name in last, (name, last)
    return last


def pretrain(capsys: pytest.CaptureFixture[str], data: Path, tokenizer: Path, out: Path, *sets: str) -> tuple[int, str]:
    return run(capsys, "pretrain", *config_args(*sets), *job_args("contrastive_clip", data, out, tokenizer))


def evaluate_published(
    capsys: pytest.CaptureFixture[str], method: str, weights: Path, data: Path, out: Path
) -> tuple[int, str]:
    """``fusebench evaluate`` of a zero-shot published ``method`` reading ``weights``, on retrieval."""
    job = job_args(method, data, out, task="retrieval", threads=None)
    return run(capsys, "evaluate", *config_args(f"method_overrides.{method}.pretrained={weights}"), *job)


def tiny_vit(**overrides: Any) -> torch.nn.Module:
    import timm

    torch.manual_seed(0)
    args = {**TINY_VIT_ARGS, **overrides}
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **args).eval()


def save_vit_folder(folder: Path, **overrides: Any) -> Path:
    from timm.models import save_for_hf

    save_for_hf(tiny_vit(**overrides), str(folder), safe_serialization=True, model_args={**TINY_VIT_ARGS, **overrides})
    return folder


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def garbage_header(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes((16).to_bytes(8, "little") + b"{not a header!!}" + data[24:])


# -- 1. a corrupted model.safetensors inside a weights folder ------------------------------------------------------
@pytest.mark.parametrize("damage", [truncate, garbage_header], ids=["truncated", "garbage-header"])
@pytest.mark.parametrize("tower", ["vision", "text"])
def test_a_corrupted_tower_folder_is_named_before_training(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    tiny_dataset: Path,
    tiny_tokenizer_file: Path,
    tower: str,
    damage: Any,
) -> None:
    if tower == "vision":
        folder = save_vit_folder(tmp_path / "vit")
    else:
        folder = save_bert(tmp_path / "bert", BERT_VOCAB, layers=1, positions=32)
    damage(folder / "model.safetensors")
    code, err = pretrain(capsys, tiny_dataset, tiny_tokenizer_file, tmp_path / "out", f"model.{tower}.init={folder}")
    last = assert_one_line_error(
        code, err, 3, "input error", f"'model.{tower}.init'", str(folder / "model.safetensors")
    )
    assert "unreadable" in last
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.parametrize("damage", [truncate, garbage_header], ids=["truncated", "garbage-header"])
def test_a_corrupted_published_checkpoint_folder_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_dataset: Path, damage: Any
) -> None:
    from tests.published_fixtures import build_clip

    folder = build_clip(tmp_path / "clip")
    damage(folder / "model.safetensors")
    code, err = evaluate_published(capsys, "published_dual_encoder", folder, tiny_dataset, tmp_path / "out")
    key = "method_overrides.published_dual_encoder.pretrained"
    assert_one_line_error(code, err, 3, "input error", key, str(folder / "model.safetensors"))


# -- 2. a ViT folder with a tensor of the wrong shape --------------------------------------------------------------
def test_a_vit_folder_with_a_wrong_shaped_tensor_names_it_and_both_shapes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_dataset: Path, tiny_tokenizer_file: Path
) -> None:
    folder = save_vit_folder(tmp_path / "vit_good")
    qkv = "blocks.1.attn.qkv.weight"
    bad = edit_weights(folder, tmp_path / "vit_bad", lambda t: t.update({qkv: torch.zeros(48, 32)}))
    code, err = pretrain(capsys, tiny_dataset, tiny_tokenizer_file, tmp_path / "out", f"model.vision.init={bad}")
    assert_one_line_error(code, err, 3, "input error", "'model.vision.init'", qkv, "[48, 32]", "[96, 32]")


# -- 3. a single timm weight file of a non-default architecture ----------------------------------------------------
def test_a_single_timm_file_describes_its_architecture(tmp_path: Path) -> None:
    """``arch_kwargs`` in the config, or timm's ``config.json`` beside the file, give the model arguments; without
    either the file does not fit the architecture's defaults, and the message says which key to set."""
    from safetensors.torch import save_file

    from benchmark.errors import DataFileError
    from benchmark.models.method import BuildContext
    from benchmark.models.pretrained import resolve_model_config

    reference = tiny_vit()
    path = tmp_path / "plain" / "vit.safetensors"
    path.parent.mkdir()
    save_file(reference.state_dict(), str(path))
    vision = {"patch_size": 8, "width": 32, "depth": 1, "heads": 2, "mlp_ratio": 4.0}
    text = {"width": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0}
    block = {**vision, "init": str(path), "arch": "vit_tiny_patch16_224"}
    with pytest.raises(DataFileError, match=r"cls_token has shape \[1, 1, 32\].*model\.vision\.arch_kwargs"):
        resolve_model_config({"vision": block, "text": text})
    described = save_vit_folder(tmp_path / "beside") / "model.safetensors"  # timm's config.json beside the file
    for model in (
        resolve_model_config({"vision": {**block, "arch_kwargs": TINY_VIT_ARGS}, "text": text}),
        resolve_model_config({"vision": {**block, "init": str(described)}, "text": text}),
    ):
        resolved = model["vision"]
        assert (resolved["width"], resolved["depth"], resolved["image_size"]) == (32, 2, 32)
        assert resolved["arch_kwargs"]["embed_dim"] == 32
        ctx = BuildContext(model, 32, 40, 12, {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}, load_pretrained=True)
        x = torch.rand(2, 3, 32, 32)
        assert torch.equal(ctx.vision_encoder().eval().forward_features(x), reference.forward_features(x))


def test_a_single_timm_file_with_its_arguments_trains(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_dataset: Path, tiny_tokenizer_file: Path
) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "vit.safetensors"
    save_file(tiny_vit().state_dict(), str(path))
    arch_kwargs = json.dumps(TINY_VIT_ARGS)
    code, err = pretrain(
        capsys,
        tiny_dataset,
        tiny_tokenizer_file,
        tmp_path / "out",
        f"model.vision.init={path}",
        "model.vision.arch=vit_tiny_patch16_224",
        f"model.vision.arch_kwargs={arch_kwargs}",
        "pretrain.steps=2",
        "pretrain.warmup_steps=1",
        "validation.every=null",
    )
    assert code == 0, err
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert result["weights"]["vision"] == {"init": str(path), "files": {"vit.safetensors": digest}}


# -- 4. BLIP's text length against a checkpoint with fewer positions -----------------------------------------------
def test_blip_default_text_length_beyond_the_checkpoint_says_how_to_set_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_dataset: Path
) -> None:
    from tests.published_fixtures import build_blip

    folder = build_blip(tmp_path / "blip", positions=32)
    code, err = evaluate_published(capsys, "published_matcher", folder, tiny_dataset, tmp_path / "out")
    last = assert_one_line_error(
        code, err, 2, "configuration error", "default text length 35", "32 text positions", str(folder)
    )
    assert "set method_overrides.published_matcher.max_length to at most 32" in last


# -- 5. a batch larger than the training split ---------------------------------------------------------------------
def test_a_batch_larger_than_the_configured_split_is_refused_before_any_job(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run(capsys, "validate-config", "--config", str(SMOKE), "--set", "datasets.scenes.splits.train=10")
    assert code == 2 and "Traceback" not in err, err
    assert "'pretrain.batch_size' (32) exceeds the 10 training images of dataset 'scenes'" in err
    assert "'finetune.retrieval.batch_size' (32) exceeds the 10 training images" in err
    assert "finetune.grounding" not in err  # grounding draws expressions: only the job can count them


def test_official_training_sizes_known_from_the_config() -> None:
    from benchmark.datasets import get_adapter

    karpathy = get_adapter("karpathy")
    spec = {"kind": "karpathy", "root": "/nowhere", "collection": "coco"}
    assert karpathy.train_images({**spec, "subset": {"train": 10}}) == 10
    assert karpathy.train_images({**spec, "subset": {"train": "all"}}) is None
    assert karpathy.train_images(spec) == 113_287  # Karpathy's COCO train + restval


def test_a_batch_larger_than_the_built_split_is_a_config_error_before_training(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_dataset: Path, tiny_tokenizer_file: Path
) -> None:
    code, err = pretrain(capsys, tiny_dataset, tiny_tokenizer_file, tmp_path / "out", "pretrain.batch_size=128")
    assert_one_line_error(
        code, err, 2, "configuration error", "'pretrain.batch_size' (128)", "64 training images", "'scenes'"
    )
    assert not (tmp_path / "out" / "training_state.partial.safetensors").exists()


# -- 6. a corrupt image outside the decoded sample -----------------------------------------------------------------
@pytest.fixture()
def coco_copy(tmp_path: Path) -> dict[str, Any]:
    """COCO in Karpathy's layout with real JPEG images, and the dataset block that reads it."""
    from tests.fixtures.official_formats import write_karpathy

    native = build_small_scenes(tmp_path / "native")
    root = tmp_path / "root"
    write_karpathy(native, root, "coco", lossless=False)
    block = {
        "kind": "karpathy",
        "root": str(root),
        "collection": "coco",
        "image_size": 32,
        "subset": {"train": "all", "val": "all", "test": "all"},
    }
    return {"root": root, "block": block}


def unsampled_train_image(block: dict[str, Any]) -> Path:
    """A training image that ``verify_images: sample`` does not decode (the sample's rule, applied here)."""
    from benchmark.datasets import get_adapter
    from benchmark.datasets.official import IMAGES_VERIFIED_PER_SPLIT

    adapter = get_adapter("karpathy")
    converted = adapter.read(adapter.settings(block))
    images = converted.splits["train"].images
    step = len(images) / IMAGES_VERIFIED_PER_SPLIT
    sampled = {int(k * step) for k in range(IMAGES_VERIFIED_PER_SPLIT)}
    position = next(p for p in range(len(images)) if p not in sampled)
    return converted.image_root / images[position]["file_name"]


def convert(capsys: pytest.CaptureFixture[str], block: dict[str, Any], out: Path) -> tuple[int, str]:
    return run(
        capsys,
        "data",
        "--config",
        str(SMOKE),
        "--set",
        f"datasets.coco={json.dumps(block)}",
        "--set",
        "run_datasets=[coco]",
        "--set",
        "tasks=[retrieval]",
        "--dataset",
        "coco",
        "--out",
        str(out),
    )


def test_a_truncated_image_outside_the_sample_is_named_at_conversion(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, coco_copy: dict[str, Any]
) -> None:
    from benchmark.data.images import looks_complete

    image = unsampled_train_image(coco_copy["block"])
    assert image.read_bytes()[:3] == b"\xff\xd8\xff" and looks_complete(image)
    truncate(image, keep=0.7)  # the header survives: only the end marker shows the damage
    assert not looks_complete(image)
    code, err = convert(capsys, coco_copy["block"], tmp_path / "build")
    assert_one_line_error(code, err, 3, "input error", str(image), "truncated")


def test_an_image_damaged_after_conversion_is_named_with_its_dataset_at_training_time(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, coco_copy: dict[str, Any], tiny_tokenizer_file: Path
) -> None:
    code, err = convert(capsys, coco_copy["block"], tmp_path / "build")
    assert code == 0, err
    image = unsampled_train_image(coco_copy["block"])
    truncate(image, keep=0.7)
    data = tmp_path / "build"
    code, err = pretrain(capsys, data, tiny_tokenizer_file, tmp_path / "out", "pretrain.batch_size=8")
    assert_one_line_error(
        code, err, 3, "input error", str(image), "split 'train'", str(data), "karpathy", "verify_images: all"
    )
