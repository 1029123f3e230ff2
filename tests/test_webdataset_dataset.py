"""``kind: webdataset`` against shards written as open_clip / img2dataset write them.

A small synthetic dataset (the default ``scenes`` block, 24/8/8 images of 32 px) is written by
:func:`tests.fixtures.official_formats.write_webdataset` (``lossless=True``: PNG bytes, one sample
per (image, caption) pair: 24 × 5 = 120 samples in shards of 16, plus ``sizes.json``), converted by
the adapter, and must load as exactly those pairs: sample k's pixels are its native image's, its
one caption is the pair's caption, its id is k. Damaged inputs must fail naming the file at fault.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import torch
from jsonschema import Draft202012Validator

from benchmark.data.dataset import load_split
from benchmark.data.images import as_tensor
from benchmark.datasets.base import check_adapter, served_tasks
from benchmark.datasets.webdataset import WebDatasetCorpus, expand_shards
from benchmark.errors import DataFileError
from tests.helpers import SMALL_IMAGE_SIZE, SMALL_SCENES, build_small_scenes

SIZES, SIZE = SMALL_SCENES, SMALL_IMAGE_SIZE
SHARD_SIZE = 16
SHARD_DIR = "webdataset/train"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The native dataset, its train split as shards, and the (image id, caption) pairs written, once per module."""
    from tests.fixtures.official_formats import read_native, write_webdataset

    tmp = tmp_path_factory.mktemp("webdataset")
    build_small_scenes(tmp / "native")
    written = write_webdataset(tmp / "native", tmp / "root", "train", shard_size=SHARD_SIZE, lossless=True)
    data = read_native(tmp / "native")
    pairs = [(img.image_id, c) for img in data.images if img.split == "train" for c in data.captions[img.image_id]]
    paths = {img.image_id: img.path for img in data.images}
    native = load_split(tmp / "native", "train")
    return {"tmp": tmp, "root": tmp / "root", "written": written, "pairs": pairs, "paths": paths, "native": native}


def corpus_spec(root: Path, shards: str, **keys: Any) -> dict[str, Any]:
    """A configuration block with every default filled in (what ``read`` is given)."""
    block = {"kind": "webdataset", "root": str(root), "shards": shards, "image_size": SIZE, **keys}
    return WebDatasetCorpus().settings(block)


def written(corpus: dict[str, Any]) -> str:
    """The pattern of every shard written, relative to the root."""
    return f"{SHARD_DIR}/{corpus['written']['pattern']}"


def copied(corpus: dict[str, Any], dest: Path) -> Path:
    """A writable copy of the shard folder under ``dest`` (a root of its own)."""
    shutil.copytree(corpus["root"] / SHARD_DIR, dest / SHARD_DIR)
    return dest


def test_adapter_meets_the_contract() -> None:
    requirements = {"retrieval": ("images", "captions"), "grounding": ("images", "instances", "refs")}
    WebDatasetCorpus.kind = "webdataset"
    check_adapter(WebDatasetCorpus, requirements)
    assert served_tasks(WebDatasetCorpus, requirements) == []  # only ever a pretrain_from source
    schema = Draft202012Validator(WebDatasetCorpus.config_schema)
    assert schema.is_valid({"kind": "webdataset", "root": "d", "shards": "cc3m/{00000..00331}.tar", "max_samples": 9})
    assert not schema.is_valid({"kind": "webdataset", "root": "d"})  # shards are required
    assert not schema.is_valid({"kind": "webdataset", "root": "d", "shards": "x.tar", "max_samples": 0})
    assert not schema.is_valid({"kind": "webdataset", "root": "d", "shards": "x.tar", "split": "train"})
    assert expand_shards("a/{00..02}.tar::b/x.tar") == ["a/00.tar", "a/01.tar", "a/02.tar", "b/x.tar"]


def test_shards_convert_to_the_pairs_written(corpus: dict[str, Any], tmp_path: Path) -> None:
    spec = corpus_spec(corpus["root"], written(corpus))
    assert WebDatasetCorpus().check(spec) == []
    assert len(WebDatasetCorpus().required_files(spec)) == len(corpus["written"]["shards"]) == 8
    record = WebDatasetCorpus().prepare(spec, tmp_path)
    pairs, native = corpus["pairs"], corpus["native"]
    assert record["splits"]["train"]["images"] == record["splits"]["train"]["captions"] == len(pairs) == 120
    got = load_split(tmp_path, "train")
    assert got.image_ids == list(range(len(pairs)))  # running index in shard order
    assert got.captions == [[caption] for _, caption in pairs]
    index = {image_id: k for k, image_id in enumerate(native.image_ids)}
    want = as_tensor(native.images)[[index[image_id] for image_id, _ in pairs]]
    assert torch.equal(as_tensor(got.images), want)  # lossless: the PNG bytes were never re-encoded
    first = tmp_path / "images" / "train" / "000000000.png"
    assert first.read_bytes() == corpus["paths"][pairs[0][0]].read_bytes()
    assert len(list((tmp_path / "images" / "train").iterdir())) == len(pairs)
    for split in ("val", "test"):  # a pretraining corpus: empty evaluation splits, still loadable
        empty = load_split(tmp_path, split)
        assert len(empty) == 0 and empty.captions == [] and tuple(as_tensor(empty.images).shape) == (0, 3, SIZE, SIZE)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert Path(manifest["image_root"]) == tmp_path.resolve()
    assert manifest["official_format"]["sizes_checked"] == [str(corpus["root"] / SHARD_DIR / "sizes.json")]
    assert len(manifest["sources"]) == 9  # eight shards and sizes.json, with their sha256
    assert WebDatasetCorpus().evaluation_images(spec) == set()


def test_max_samples_stops_reading(corpus: dict[str, Any], tmp_path: Path) -> None:
    root = copied(corpus, tmp_path / "root")
    sizes = root / SHARD_DIR / "sizes.json"
    sizes.write_text(json.dumps({name: 1 for name in corpus["written"]["shards"]}))  # not checked when cut
    (root / SHARD_DIR / "shard-00003.tar").write_bytes(b"never read")
    spec = corpus_spec(root, written(corpus), max_samples=SHARD_SIZE + 4)
    WebDatasetCorpus().prepare(spec, tmp_path / "build")
    got = load_split(tmp_path / "build", "train")
    assert got.captions == [[caption] for _, caption in corpus["pairs"][: SHARD_SIZE + 4]]
    notes = json.loads((tmp_path / "build" / "manifest.json").read_text())["official_format"]
    assert (notes["shards_read"], notes["cut_by_max_samples"], notes["sizes_checked"]) == (2, True, [])


def test_sizes_json_mismatch_names_the_file_and_both_numbers(corpus: dict[str, Any], tmp_path: Path) -> None:
    root = copied(corpus, tmp_path)
    sizes = root / SHARD_DIR / "sizes.json"
    listed = json.loads(sizes.read_text())
    listed["shard-00002.tar"] += 3
    sizes.write_text(json.dumps(listed))
    with pytest.raises(DataFileError, match=rf"{sizes}: .* hold 120 samples, but sizes.json lists 123 .*shard-00002"):
        WebDatasetCorpus().read(corpus_spec(root, written(corpus)))


def test_missing_shard_is_named_by_check(corpus: dict[str, Any], tmp_path: Path) -> None:
    root = copied(corpus, tmp_path)
    (root / SHARD_DIR / "shard-00005.tar").unlink()
    problems = WebDatasetCorpus().check(corpus_spec(root, f"{SHARD_DIR}/shard-{{00000..00007}}.tar"))
    assert len(problems) == 1 and problems[0][0] == "root"
    assert str(root / SHARD_DIR / "shard-00005.tar") in problems[0][1]
    assert "shard-00004.tar" not in problems[0][1] and "<key>.txt" in problems[0][1]  # the expected layout
    pattern = f"{SHARD_DIR}/shard-0000{{0,1}}.tar::{SHARD_DIR}/shard-00001.tar"
    twice = WebDatasetCorpus().check(corpus_spec(root, pattern))
    assert twice == [("shards", "the pattern names shard(s) webdataset/train/shard-00001.tar more than once")]


def _member(shard: Path, name: str) -> tarfile.TarInfo:
    with tarfile.open(shard) as tar:
        return tar.getmember(name)


@pytest.mark.parametrize("where", ["inside-a-member", "between-two-samples"])
def test_truncated_tar_names_the_shard(corpus: dict[str, Any], tmp_path: Path, where: str) -> None:
    root = copied(corpus, tmp_path)
    shard = root / SHARD_DIR / "shard-00001.tar"
    png, meta = _member(shard, "000010002.png"), _member(shard, "000010002.json")  # the third sample of shard 1
    cut = png.offset_data + png.size // 2 if where == "inside-a-member" else meta.offset_data + 512
    with open(shard, "r+b") as handle:
        handle.truncate(cut)
    with pytest.raises(DataFileError, match=rf"{shard} is truncated: .* end-of-archive marker"):
        WebDatasetCorpus().prepare(corpus_spec(root, written(corpus)), tmp_path / "build")


def test_truncated_gzip_shard_names_the_shard_and_key(corpus: dict[str, Any], tmp_path: Path) -> None:
    import gzip

    source = corpus["root"] / SHARD_DIR / "shard-00001.tar"
    png = _member(source, "000010002.png")
    shard = tmp_path / "gz" / "shard-00001.tar.gz"
    shard.parent.mkdir()
    shard.write_bytes(gzip.compress(source.read_bytes()[: png.offset_data + png.size // 2]))
    spec = corpus_spec(tmp_path, "gz/shard-00001.tar.gz")
    with pytest.raises(DataFileError, match=rf"{shard} is truncated or corrupt at sample key '000010002'"):
        WebDatasetCorpus().read(spec)


def test_corrupt_header_names_the_shard_and_last_key(corpus: dict[str, Any], tmp_path: Path) -> None:
    root = copied(corpus, tmp_path)
    shard = root / SHARD_DIR / "shard-00001.tar"
    header = _member(shard, "000010003.png").offset  # the fourth sample's first header
    with open(shard, "r+b") as handle:
        handle.seek(header)
        handle.write(b"garbage" * 20)
    with pytest.raises(
        DataFileError, match=rf"{shard} is corrupt after sample key '000010002' \(member '000010002.json'\)"
    ):
        WebDatasetCorpus().read(corpus_spec(root, written(corpus)))


def _tar(path: Path, members: dict[str, bytes]) -> None:
    import io

    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"a.png": b"<png>", "a.json": b"{}"}, r"sample key 'a' lacks a \.txt member \(it has json, png\)"),
        ({"a.txt": b"a caption"}, r"sample key 'a' lacks an image member \(it has txt\)"),
        ({"a.png": b"not an image", "a.txt": b"x"}, r"sample key 'a' \(a\.png\): the image bytes are not"),
        ({"a.png": b"<png>", "a.txt": b"\xff\xfe"}, r"sample key 'a' \(a\.txt\): the caption is not UTF-8"),
        ({"../a.png": b"<png>", "../a.txt": b"x"}, r"sample key '\.\./a' would write outside"),
    ],
    ids=["no-txt", "no-image", "not-an-image", "not-utf8", "escaping-key"],
)
def test_bad_sample_names_the_shard_and_key(
    corpus: dict[str, Any], tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    png = corpus["paths"][corpus["pairs"][0][0]].read_bytes()
    shard = tmp_path / "bad" / "00000.tar"
    _tar(shard, {name: png if data == b"<png>" else data for name, data in members.items()})
    spec = corpus_spec(tmp_path, "bad/00000.tar")
    with pytest.raises(DataFileError, match=rf"WebDataset shard {shard}: {message}"):
        WebDatasetCorpus().read(spec)


def test_key_repeated_across_shards_is_an_error(corpus: dict[str, Any], tmp_path: Path) -> None:
    png = corpus["paths"][corpus["pairs"][0][0]].read_bytes()
    for name in ("00000.tar", "00001.tar"):
        _tar(tmp_path / "dup" / name, {"k.png": png, "k.txt": b"a caption"})
    spec = corpus_spec(tmp_path, "dup/{00000..00001}.tar")
    with pytest.raises(DataFileError, match=r"00001\.tar: sample key 'k' was already used in .*00000\.tar"):
        WebDatasetCorpus().read(spec)
    _tar(tmp_path / "empty" / "00000.tar", {})
    with pytest.raises(DataFileError, match=r"shards 'empty/00000.tar' under .* hold no sample"):
        WebDatasetCorpus().read(corpus_spec(tmp_path, "empty/00000.tar"))
