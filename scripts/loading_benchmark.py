"""Measure the input pipeline on real-sized splits: peak memory must not grow with the number of images.

    .venv/bin/python scripts/loading_benchmark.py                      # COCO-size fixture in a temp folder
    .venv/bin/python scripts/loading_benchmark.py --root ~/data --counts 1000 5000 --image-size 224

For each count N, the COCO Karpathy annotations are converted (``kind: karpathy``,
``subset: {test: N}``, streaming mode ``resident_max_mb: 0``); then a fresh process loads the test
split and decodes every image once in batches, as an evaluation job does, and prints its peak
resident set size (``ru_maxrss``) and the decode rate. Without ``--root`` it first writes the
COCO-size fixture of :func:`tests.fixtures.official_formats.write_big_retrieval_fixture`
(5,000 val and test images of 8×8 px, 25,010 test captions). The numbers are measurements,
not tests: the README quotes them with the command that produced them.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmark.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))  # tests.fixtures: the official-format writers are test fixtures, not the package


def convert(root: Path, count: int, image_size: int, out: Path) -> None:
    """The standard form of the first ``count`` test images, streamed (``resident_max_mb: 0``)."""
    from benchmark.datasets.karpathy import Karpathy

    spec = {
        "kind": "karpathy",
        "root": str(root),
        "collection": "coco",
        "image_size": image_size,
        "resident_max_mb": 0,
        "subset": {"train": _train_images(root), "test": count},
    }
    Karpathy().prepare(spec, out)


def measure(out: Path, batch_size: int, workers: int) -> dict[str, Any]:
    """Load the converted test split and decode every image once; peak RSS of this process in MB."""
    import torch

    from benchmark.data.dataset import load_split

    torch.set_num_threads(workers)
    started = time.perf_counter()
    split = load_split(out, "test")
    converted = time.perf_counter()
    checksum = 0
    for start in range(0, len(split), batch_size):
        checksum += int(split.images[start : start + batch_size].sum())
    decoded = time.perf_counter()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "images": len(split),
        "captions": sum(len(c) for c in split.captions),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "load_s": round(converted - started, 2),
        "decode_images_per_s": round(len(split) / max(decoded - converted, 1e-9), 1),
        "pixel_checksum": checksum,
    }


def _train_images(root: Path) -> int:
    from benchmark.io import read_json

    data = read_json(root / "coco" / "annotations" / "dataset_coco.json", what="Karpathy file")
    return sum(1 for image in data["images"] if image["split"] in ("train", "restval"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, help="folder in the official layout (default: write the fixture)")
    parser.add_argument("--counts", type=int, nargs="+", default=[500, 1000, 2500, 5000])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--side", type=int, default=8, help="side of the fixture's JPEGs in pixels (no --root)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one count
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.out, args.batch_size, args.workers)))
        return
    with tempfile.TemporaryDirectory(prefix="fusebench-loading-") as tmp:
        root = args.root
        if root is None:
            from tests.fixtures.official_formats import write_big_retrieval_fixture

            root = Path(tmp) / "data"
            write_big_retrieval_fixture(root, side=args.side)
        fixture = f" (fixture JPEGs of {args.side}×{args.side} px)" if args.root is None else ""
        settings = f"image size {args.image_size}, batch {args.batch_size}, {args.workers} decode threads"
        print(f"root {root}{fixture}, {settings}")
        print(f"{'images':>7} {'captions':>9} {'peak RSS MB':>12} {'load s':>7} {'decode img/s':>13}")
        for count in args.counts:
            out = Path(tmp) / f"build{count}"
            convert(root, count, args.image_size, out)
            command = [sys.executable, __file__, "--one", str(count)]
            command += ["--out", str(out), "--batch-size", str(args.batch_size), "--workers", str(args.workers)]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            print(
                f"{result['images']:>7} {result['captions']:>9} {result['peak_rss_mb']:>12} "
                f"{result['load_s']:>7} {result['decode_images_per_s']:>13}"
            )


if __name__ == "__main__":
    main()
