"""Cost of one retrieval robustness cell of a fusion head: all pairs vs the fixed candidate sets.

    PYTHONPATH=. .venv/bin/python scripts/candidate_cost.py                 # early_concat, default problem
    PYTHONPATH=. .venv/bin/python scripts/candidate_cost.py --method cross_attention --repeats 3

Builds the default profile's synthetic test split (``workflows/config/default.yaml``: its image size,
captions per image and test size; a few train scenes for the tokenizer) and an untrained model of the
default size (the cost does not depend on the weights), then times one cell — the retrieval evaluation of
the clean test split, per-item encodings included — under each protocol, on one thread: all pairs on the
whole split, all pairs on the first ``--old-subset`` images (the old ``robustness.max_images: 30``), and
the candidate protocol (``evaluate.retrieval.candidates`` distractors) on the whole split. It prints the
pairs the fusion head scores, forward FLOPs (torch's FlopCounterMode: one pair's ``score_prepared`` ×
pairs, plus the per-item encodings) and the wall time. A measurement, not a test: on a shared CPU compare
the FLOPs and the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmark.config import load_config, stage_spec
from benchmark.data.dataset import load_split
from benchmark.data.standard_form import read_captions
from benchmark.data.synthetic import build_synthetic_dataset
from benchmark.data.tokenizer import load_tokenizer, special_token_ids, train_tokenizer
from benchmark.evaluation.retrieval import candidate_scores, retrieval_scores, test_subset
from benchmark.models.method import BuildContext
from benchmark.paths import REPO_ROOT
from benchmark.registry import load_method
from benchmark.train.efficiency import forward_flops

CPU = torch.device("cpu")


def _data(config: dict[str, Any], root: Path) -> Path:
    spec = stage_spec(config, "data", dataset="scenes")
    spec = {k: v for k, v in spec.items() if k not in ("stage", "dataset")}
    spec["splits"] = {"train": 100, "val": 10, "test": spec["splits"]["test"]}
    build_synthetic_dataset(spec, root)
    return root


def _flops(model: Any, split: Any, tokenizer: Any, pairs: int, count: int | None) -> float:
    """Forward FLOPs of one cell: per-item encodings of the images and captions, plus ``pairs`` fusions."""
    from benchmark.data.sampling import trim_padding
    from benchmark.data.tokenizer import encode

    images, texts, _ = test_subset(split, count)
    tokens = trim_padding(encode(tokenizer, texts))
    items = forward_flops(lambda: model.prepare_images(images)) + forward_flops(lambda: model.prepare_texts(tokens))
    one_image, one_text = model.prepare_images(images[:1]), model.prepare_texts({k: v[:1] for k, v in tokens.items()})
    per_pair = forward_flops(lambda: model.score_prepared(one_image, one_text))
    return float(items + per_pair * pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="early_concat")
    parser.add_argument("--config", default=str(REPO_ROOT / "workflows/config/default.yaml"))
    parser.add_argument("--old-subset", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config([Path(args.config)])
    settings = {**config["evaluate"]["retrieval"], "dataset": "scenes"}
    with tempfile.TemporaryDirectory() as tmp:
        data = _data(config, Path(tmp) / "data")
        captions = [c for caps in read_captions(data, "train").values() for c in caps]
        tokenizer_file = Path(tmp) / "tokenizer.json"
        max_length = config["tokenizer"]["max_length"]
        tokenizer_file.write_text(train_tokenizer(captions, vocab_size=500, max_length=max_length).to_str())
        tokenizer = load_tokenizer(tokenizer_file, max_length)
        test = load_split(data, "test")
        torch.manual_seed(0)
        ctx = BuildContext(
            config["model"], test.image_size, tokenizer.get_vocab_size(), max_length, special_token_ids(tokenizer)
        )
        model = load_method(args.method)(ctx).eval()
        batch = config["evaluate"]["batch_size"]
        runs = {
            f"all pairs, first {args.old_subset} images": lambda: retrieval_scores(
                model, test, tokenizer, CPU, batch, {**settings, "max_images": args.old_subset}
            )[3],
            f"all pairs, whole split ({len(test)} images)": lambda: retrieval_scores(
                model, test, tokenizer, CPU, batch, {**settings, "max_images": None}
            )[3],
            f"candidates K={settings['candidates']}, whole split": lambda: candidate_scores(
                model, test, tokenizer, CPU, batch, {**settings, "max_images": None}
            )[5],
        }
        print(f"{args.method}, {len(test)} test images, {sum(len(c) for c in test.captions)} captions, 1 thread")
        print(f"{'protocol':<40} {'pairs':>9} {'GFLOPs':>8} {'seconds':>8}")
        for name, run in runs.items():
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                record = run()
                seconds.append(time.perf_counter() - start)
            count = args.old_subset if "first" in name else None
            pairs = int(record.get("pairs_scored", 0))
            gflops = _flops(model, test, tokenizer, pairs, count) / 1e9
            print(f"{name:<40} {pairs:>9,} {gflops:>8.1f} {min(seconds):>8.1f}")


if __name__ == "__main__":
    main()
