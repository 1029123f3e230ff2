"""Real-image input pipeline: transforms, lazy decoding equal to resident decoding, boxes in the model frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.data.dataset import load_split
from benchmark.data.images import ImageFiles, LazyImages, decode_image, load_images
from benchmark.datasets.official import ConvertedSplit, write_standard_form
from benchmark.errors import DataFileError

SIZES = [(40, 20), (20, 40), (32, 32), (50, 30)]  # (width, height) of each image


def _write_images(folder: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    records = []
    for k, (width, height) in enumerate(SIZES):
        name = f"img{k}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / name)
        records.append({"id": k + 1, "file_name": name, "width": width, "height": height})
    return records


def _standard_form(tmp_path: Path, resident_max_mb: float, transform: str = "resize") -> Path:
    images = tmp_path / "pictures"
    images.mkdir(exist_ok=True)
    records = _write_images(images)
    boxes = [
        {"id": 10 + k, "image_id": r["id"], "category_id": 1, "bbox": [2.0, 4.0, 10.0, 8.0]}
        for k, r in enumerate(records)
    ]
    split = ConvertedSplit(
        records,
        captions=[{"image_id": r["id"], "caption": f"picture {r['id']}"} for r in records],
        annotations=boxes,
        refs=[
            {"ref_id": r["id"], "image_id": r["id"], "sentence": "the box", "ann_ids": [10 + k], "kind": "single"}
            for k, r in enumerate(records)
        ],
    )
    out = tmp_path / f"form{resident_max_mb}{transform}"
    write_standard_form(
        out,
        {"train": split, "val": split, "test": split},
        [{"id": 1, "name": "thing", "supercategory": "thing"}],
        {
            "spec": {},
            "parts": ["images", "captions", "instances", "refs"],
            "image_root": str(images),
            "image_size": 16,
            "transform": transform,
            "resident_max_mb": resident_max_mb,
        },
    )
    return out


def test_transforms_give_the_model_resolution_and_leave_a_right_sized_image_untouched(tmp_path: Path) -> None:
    records = _write_images(tmp_path)
    for record in records:
        path = tmp_path / record["file_name"]
        for transform in ("resize", "center_crop"):
            assert decode_image(path, 16, transform).shape == (16, 16, 3)
    square = tmp_path / records[2]["file_name"]
    assert np.array_equal(decode_image(square, 32, "resize"), np.asarray(Image.open(square).convert("RGB")))
    # center_crop of a 40×20 image to 16: resize to 32×16, keep columns 8..24
    wide = Image.open(tmp_path / records[0]["file_name"]).convert("RGB")
    expected = np.asarray(wide.resize((32, 16), Image.Resampling.BICUBIC))[:, 8:24]
    assert np.array_equal(decode_image(tmp_path / records[0]["file_name"], 16, "center_crop"), expected)


def test_lazy_images_index_like_the_resident_tensor(tmp_path: Path) -> None:
    records = _write_images(tmp_path)
    files = ImageFiles(tuple(str(tmp_path / r["file_name"]) for r in records), 16, "resize", workers=2)
    resident = load_images(files, resident_max_mb=1)
    lazy = load_images(files, resident_max_mb=0)
    assert isinstance(resident, torch.Tensor) and isinstance(lazy, LazyImages)
    assert lazy.shape == resident.shape and len(lazy) == len(resident)
    assert torch.equal(lazy[1], resident[1])
    assert torch.equal(lazy[1:3], resident[1:3])
    index = torch.tensor([3, 0, 3])
    assert torch.equal(lazy[index], resident[index])
    assert torch.equal(lazy.head(2).materialize(), resident[:2])
    with pytest.raises(IndexError):
        lazy[torch.tensor([4])]


def test_streamed_split_equals_resident_split_and_boxes_scale_to_the_model_frame(tmp_path: Path) -> None:
    resident = load_split(_standard_form(tmp_path, 100), "test")
    streamed = load_split(_standard_form(tmp_path, 0), "test")
    assert isinstance(resident.images, torch.Tensor) and isinstance(streamed.images, LazyImages)
    assert torch.equal(streamed.images[:], resident.images)
    assert resident.image_size == 16
    for (width, height), boxes, ref in zip(SIZES, resident.boxes, resident.refs):
        scale = np.array([16 / width, 16 / height, 16 / width, 16 / height], dtype=np.float32)
        np.testing.assert_allclose(boxes, np.array([[2.0, 4.0, 10.0, 8.0]], dtype=np.float32) * scale)
        np.testing.assert_allclose(ref["boxes"], boxes)


def test_center_crop_is_refused_for_a_dataset_with_boxes(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="transform must be 'resize'"):
        load_split(_standard_form(tmp_path, 100, "center_crop"), "test")


def test_image_whose_size_disagrees_with_the_annotations_is_named(tmp_path: Path) -> None:
    root = _standard_form(tmp_path, 0)
    Image.new("RGB", (7, 7)).save(tmp_path / "pictures" / "img1.png")
    split = load_split(root, "test")
    with pytest.raises(DataFileError, match=r"img1\.png is 7x7 but the annotations say 20x40"):
        split.images[1]


def test_random_resized_crop_is_seeded_and_stays_within_its_scale() -> None:
    from benchmark.data.images import _crop_box, random_resized_crop
    from benchmark.seeding import torch_generator

    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    scale, ratio = (0.25, 0.5), (0.75, 4 / 3)
    first = random_resized_crop(images, scale, ratio, torch_generator(0, "augment", 3))
    again = random_resized_crop(images, scale, ratio, torch_generator(0, "augment", 3))
    other = random_resized_crop(images, scale, ratio, torch_generator(0, "augment", 4))
    assert first.shape == images.shape and first.dtype == torch.uint8
    assert torch.equal(first, again) and not torch.equal(first, other)
    generator = torch_generator(1)
    for _ in range(50):
        top, left, height, width = _crop_box(32, scale, (np.log(ratio[0]), np.log(ratio[1])), ratio, generator)
        assert top >= 0 and top + height <= 32 and left >= 0 and left + width <= 32
        assert 0.2 <= height * width / 32**2 <= 0.55  # scale bounds, up to rounding


def test_only_the_training_split_of_an_image_text_batch_is_augmented(tmp_path: Path) -> None:
    from benchmark.data.sampling import ImageTextData

    root = _standard_form(tmp_path, 100)
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["train_augment"] = {"random_resized_crop": {"scale": [0.3, 0.6], "ratio": [0.75, 1.3333]}}
    manifest_path.write_text(json.dumps(manifest))
    train, test = load_split(root, "train"), load_split(root, "test")
    assert train.augment and not test.augment

    plain = torch.stack([train.images[i] for i in range(len(train))])
    data = ImageTextData(
        images=train.images,
        input_ids=torch.zeros(4, 2, dtype=torch.long),
        attention_mask=torch.ones(4, 2, dtype=torch.long),
        caption_start=torch.arange(4),
        caption_count=torch.ones(4, dtype=torch.long),
        concepts=torch.zeros(4, 0),
        augment=train.augment,
    )
    batch, repeat = data.batch(0, 4, seed=7), data.batch(0, 4, seed=7)
    assert torch.equal(batch["image"], repeat["image"])
    assert not torch.equal(batch["image"], plain[batch["image_index"]])
    assert torch.equal(
        ImageTextData(**{**data.__dict__, "augment": {}}).batch(0, 4, 7)["image"], plain[batch["image_index"]]
    )


def test_grounding_is_scored_in_each_image_files_own_pixels(tmp_path: Path) -> None:
    """COCO's size buckets are in original pixels: targets and predictions go back to each file's frame."""
    from benchmark.evaluation.grounding import ground_truth, in_original_frame

    split = load_split(_standard_form(tmp_path, 100), "test")
    predictions = [(np.array([[0.0, 0.0, 16.0, 16.0]]), np.array([0.9])) for _ in split.refs]
    targets, predicted, sizes = in_original_frame(split, ground_truth(split)[0], predictions)
    assert sizes == SIZES
    for (width, height), boxes, (box, scores) in zip(SIZES, targets, predicted):
        np.testing.assert_allclose(boxes, [[2.0, 4.0, 10.0, 8.0]], rtol=1e-6)  # the box as annotated
        np.testing.assert_allclose(box, [[0.0, 0.0, width, height]])  # the whole image, in its own pixels
        assert scores.tolist() == [0.9]


def test_streamed_batches_with_prefetch_equal_resident_batches(tmp_path: Path) -> None:
    from benchmark.data.grounding import GroundingData
    from benchmark.data.sampling import ImageTextData

    resident, streamed = (
        load_split(_standard_form(tmp_path, 100), "train"),
        load_split(_standard_form(tmp_path, 0), "train"),
    )

    class Tokens:  # two-token texts: the batches' images are what is compared
        def encode_batch(self, texts: list[str]) -> list:
            from types import SimpleNamespace

            return [SimpleNamespace(ids=[1, 2], attention_mask=[1, 1]) for _ in texts]

    device = torch.device("cpu")
    for cls in (ImageTextData, GroundingData):
        kwargs = {} if cls is GroundingData else {"concepts": ()}
        a, b = (
            cls.from_split(resident, Tokens(), device, **kwargs),
            cls.from_split(streamed, Tokens(), device, **kwargs),
        )
        assert isinstance(b.images, LazyImages)
        for step in range(4):
            assert torch.equal(a.batch(step, 2, seed=5)["image"], b.batch(step, 2, seed=5)["image"])
        assert b.images._pending.get("positions")  # the next batch is being decoded
