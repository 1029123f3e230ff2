"""What checking every image at conversion costs on a COCO-size dataset (issue: a corrupt image outside the
decoded sample must be named before any job trains).

Writes the COCO-size Karpathy fixture (113,287 train + 5,000 val + 5,000 test real JPEGs, written by
``tests.fixtures.official_formats.write_big_retrieval_fixture``) into a temporary folder, then times, on
every image: the header, size and end-marker check (``benchmark.data.images.looks_complete``), and a full
decode (``decode_image``, what ``verify_images: all`` does) on a slice, extrapolated. Prints one line each.

    .venv/bin/python scripts/image_check_benchmark.py [--side 64] [--decode-sample 2000] [--keep DIR]

Measurement, not a test: the numbers depend on the disk and its cache (the files were just written, so
they are in the page cache; a cold cache adds the disk's seek time per file to both checks).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmark.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))  # tests.fixtures: the official-format writers are test fixtures, not the package

COCO_KARPATHY = {"train": 113_287, "val": 5_000, "test": 5_000}


def main() -> None:
    from benchmark.data.images import decode_image, looks_complete
    from tests.fixtures.official_formats import write_big_retrieval_fixture

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=64, help="side of the fixture's noise JPEGs in pixels")
    parser.add_argument("--decode-sample", type=int, default=2000, help="images decoded to time a full decode")
    parser.add_argument("--keep", help="write the fixture here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.keep or scratch)
        written = write_big_retrieval_fixture(root, COCO_KARPATHY, side=args.side)
        files = sorted((root / "coco" / "images").rglob("*.jpg"))
        size = sum(f.stat().st_size for f in files)
        print(
            f"fixture: {len(files)} JPEGs of {args.side}x{args.side} px, {size / 2**20:.0f} MiB, "
            f"written in {written['seconds']} s"
        )
        start = time.perf_counter()
        suspects = sum(not looks_complete(f, (args.side, args.side)) for f in files)
        header = time.perf_counter() - start
        print(
            f"header + size + end-marker check of every image: {header:.1f} s "
            f"({header / len(files) * 1e6:.0f} µs per file), {suspects} suspect(s)"
        )
        sample = files[:: max(1, len(files) // args.decode_sample)]
        start = time.perf_counter()
        for f in sample:
            decode_image(f, 224, "resize")
        per_file = (time.perf_counter() - start) / len(sample)
        print(
            f"full decode at 224 px (verify_images: all): {per_file * 1e3:.2f} ms per file, "
            f"~{per_file * len(files):.0f} s for every image"
        )


if __name__ == "__main__":
    main()
