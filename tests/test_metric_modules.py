"""The ``evaluate`` modules in benchmark/hf_metrics give FuseBench's own numbers, offline.

A module is only worth shipping if a researcher's loop reports exactly what FuseBench reports,
so every numeric check here is equality with the function FuseBench's evaluation calls
(:func:`benchmark.metrics.retrieval.retrieval_metrics`,
:func:`benchmark.metrics.detection.grounding_metrics`) on the same inputs, fed through
``evaluate.load(path)``, ``add_batch`` and ``compute`` the way a user would.
"""

from __future__ import annotations

import doctest
import os
from pathlib import Path
from typing import Any

import evaluate
import numpy as np
import pytest

from benchmark import hf_metrics
from benchmark.hf_metrics import module_path
from benchmark.metrics.detection import COCO_STATS, grounding_metrics
from benchmark.metrics.retrieval import retrieval_metrics

GROUNDING_KEYS = [*COCO_STATS, "mIoU", "Acc@0.5", "N-acc", "T-acc", "no_target_balanced_acc"]


@pytest.fixture
def load(tmp_path: Path) -> Any:
    """``evaluate.load`` of a FuseBench module by local path; its temporary arrow files go to tmp_path."""

    def _load(task: str, **kwargs: Any) -> Any:
        return evaluate.load(module_path(task), cache_dir=str(tmp_path), **kwargs)

    return _load


def _owners(rng: np.random.Generator, n_images: int) -> np.ndarray:
    """Caption → image index with 1–4 captions per image, shuffled so an image's captions are not adjacent."""
    owner = np.repeat(np.arange(n_images), rng.integers(1, 5, size=n_images))
    return rng.permutation(owner)


def _pairs(rng: np.random.Generator, n: int = 24) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Grounding pairs with 0, 1 and several targets and 0, 1 and several predicted boxes, non-square images."""
    predictions, references = [], []
    for k in range(n):
        width, height = int(rng.integers(40, 120)), int(rng.integers(40, 120))
        n_targets = (0, 1, 3)[k % 3]
        targets = np.column_stack([rng.uniform(0, 30, (n_targets, 2)), rng.uniform(4, 40, (n_targets, 2))])
        n_boxes = (0, 1, 2, 5)[k % 4]
        if n_targets and k % 2:  # jittered copies of the targets: real hits at several IoUs
            boxes = targets[rng.integers(0, n_targets, n_boxes)] + rng.normal(0, 2, (n_boxes, 4))
        else:  # anywhere: mostly false positives
            boxes = np.column_stack([rng.uniform(0, 30, (n_boxes, 2)), rng.uniform(4, 40, (n_boxes, 2))])
        boxes[:, 2:] = np.abs(boxes[:, 2:]) + 1
        predictions.append({"boxes": boxes.tolist(), "scores": rng.uniform(0, 1, n_boxes).round(2).tolist()})
        references.append({"boxes": targets.tolist(), "image_size": [width, height]})
    return predictions, references


def _direct_grounding(
    predictions: list[dict[str, Any]], references: list[dict[str, Any]], threshold: float, acc_iou: str = "iou"
) -> dict:
    """What FuseBench computes on these pairs, with its own argument layout."""
    targets = [np.asarray(r["boxes"], dtype=np.float64).reshape(-1, 4) for r in references]
    detections = [
        (np.asarray(p["boxes"], dtype=np.float64).reshape(-1, 4), np.asarray(p["scores"])) for p in predictions
    ]
    sizes = [tuple(r["image_size"]) for r in references]
    return grounding_metrics(targets, detections, sizes, threshold, acc_iou)


# --- loading -------------------------------------------------------------------------------------------------


def test_module_path_names_an_evaluate_script_folder() -> None:
    for task, name in hf_metrics.MODULES.items():
        folder = Path(module_path(task))
        assert folder.name == name and (folder / f"{name}.py").is_file()
        assert not (folder / "__init__.py").exists()  # loaded by path, not imported as a package
    with pytest.raises(ValueError, match="no evaluate module for task 'robustness'"):
        module_path("robustness")


def test_modules_load_offline_by_folder_and_by_file(load: Any, tmp_path: Path) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set in conftest: loading must not need the Hub
    for task, name in hf_metrics.MODULES.items():
        module = load(task)
        assert module.name == name
        by_file = evaluate.load(str(Path(module_path(task)) / f"{name}.py"), cache_dir=str(tmp_path))
        assert type(by_file).__name__ == type(module).__name__
        assert "FuseBench" in module.description and "Example" in module.inputs_description


def test_package_docstring_example_runs() -> None:
    result = doctest.testmod(hf_metrics, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# --- retrieval -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retrieval_equals_fusebench_on_random_scores(load: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    owner = _owners(rng, n_images=13)
    scores = rng.normal(size=(len(owner), 13))
    ks = [1, 2, 5, 10]
    result = load("retrieval").compute(predictions=scores.tolist(), references=owner.tolist(), ks=ks)
    assert result == retrieval_metrics(scores, owner, ks)


def test_retrieval_ties_follow_gallery_order(load: Any) -> None:
    rng = np.random.default_rng(7)
    owner = _owners(rng, n_images=9)
    scores = rng.integers(0, 3, size=(len(owner), 9)).astype(float)  # many ties in both directions
    module = load("retrieval")
    assert module.compute(predictions=scores.tolist(), references=owner.tolist()) == retrieval_metrics(
        scores, owner, [1, 5, 10]
    )
    # All scores equal: the lowest index wins every tie (the documented protocol), so at K=1 only image 0's two
    # captions hit (t2i), and only the image that owns caption 0 (i2t).
    owner = np.array([0, 0, 1, 2])
    flat = np.zeros((4, 3))
    result = module.compute(predictions=flat.tolist(), references=owner.tolist(), ks=[1])
    assert result == retrieval_metrics(flat, owner, [1])
    assert result["t2i_R@1"] == 2 / 4 and result["i2t_R@1"] == 1 / 3


def test_retrieval_separate_i2t_scores(load: Any) -> None:
    rng = np.random.default_rng(3)
    owner = _owners(rng, n_images=11)
    t2i, i2t = rng.normal(size=(len(owner), 11)), rng.normal(size=(len(owner), 11))
    result = load("retrieval").compute(predictions=t2i.tolist(), references=owner.tolist(), i2t_scores=i2t)
    assert result == retrieval_metrics(t2i, owner, [1, 5, 10], i2t_scores=i2t)
    assert result != retrieval_metrics(t2i, owner, [1, 5, 10])  # the i2t matrix is really used


def test_retrieval_add_batch_equals_one_compute(load: Any) -> None:
    rng = np.random.default_rng(4)
    owner = _owners(rng, n_images=10)
    scores = rng.normal(size=(len(owner), 10))
    module = load("retrieval")
    half = len(owner) // 2
    module.add_batch(predictions=scores[:half], references=owner[:half])  # numpy in, as from a training loop
    module.add_batch(predictions=scores[half:], references=owner[half:])
    batched = module.compute(ks=[1, 3])
    assert batched == load("retrieval").compute(predictions=scores, references=owner, ks=[1, 3])
    assert batched == retrieval_metrics(scores, owner, [1, 3])


def test_retrieval_warns_about_images_without_captions(load: Any) -> None:
    scores = [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]]
    with pytest.warns(RuntimeWarning, match="1 of 3 gallery images have no caption"):
        result = load("retrieval").compute(predictions=scores, references=[0, 1], ks=[1])
    assert result == retrieval_metrics(np.array(scores), [0, 1], [1])  # FuseBench counts it as a miss too


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"predictions": [[0.1, 0.2], [0.3, 0.4]], "references": [0, 2]},
            r"reference 2 \(caption 1\) is outside the gallery of 2 images",
        ),
        (
            {"predictions": [[0.1, 0.2], [0.3, 0.4]], "references": [-1, 0]},
            r"reference -1 \(caption 0\) is outside the gallery",
        ),
        ({"predictions": [[0.1, 0.2], [0.3]], "references": [0, 1]}, "prediction row 1 has 1 scores but row 0 has 2"),
        (
            {"predictions": [[0.1, 0.2], [0.3, 0.4]], "references": [0, 1], "i2t_scores": np.zeros((2, 3))},
            r"i2t_scores has shape \(2, 3\), expected \(2, 2\)",
        ),
        ({"predictions": [[0.1, 0.2], [0.3, 0.4]], "references": [0, 1], "ks": [0, 1]}, "ks must be"),
        ({"predictions": [[0.1, float("nan")], [0.3, 0.4]], "references": [0, 1]}, "NaN or infinity"),
    ],
)
def test_retrieval_bad_inputs_are_named(load: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load("retrieval").compute(**kwargs)


# --- grounding -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_grounding_equals_fusebench_on_random_pairs(load: Any, seed: int) -> None:
    predictions, references = _pairs(np.random.default_rng(seed))
    result = load("grounding").compute(predictions=predictions, references=references)
    expected = _direct_grounding(predictions, references, 0.5)
    assert list(result) == GROUNDING_KEYS
    assert result == expected
    assert all(result[k] is not None for k in ("AP", "mIoU", "Acc@0.5", "N-acc", "T-acc"))  # all three pair kinds
    giou = load("grounding").compute(predictions=predictions, references=references, acc_iou="giou")
    assert giou == _direct_grounding(predictions, references, 0.5, "giou")
    assert giou["Acc@0.5"] <= result["Acc@0.5"] and giou["mIoU"] == result["mIoU"]  # GIoU ≤ IoU; mIoU stays IoU


def test_grounding_module_defaults_are_fusebench_defaults() -> None:
    """The module's keyword defaults are workflows/config/default.yaml's evaluate.grounding values."""
    import importlib.util

    from benchmark.config import load_yaml
    from benchmark.paths import DEFAULT_CONFIG

    script = Path(module_path("grounding")) / "fusebench_grounding.py"
    spec = importlib.util.spec_from_file_location("fusebench_grounding_module", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    defaults = load_yaml(DEFAULT_CONFIG)["evaluate"]["grounding"]
    assert defaults["score_threshold"] == module.DEFAULT_SCORE_THRESHOLD
    assert defaults["acc_iou"] == module.DEFAULT_ACC_IOU


def test_grounding_score_threshold_reaches_n_acc(load: Any) -> None:
    predictions = [
        {"boxes": [[10, 10, 6, 6]], "scores": [0.6]},
        {"boxes": [[1, 1, 5, 5]], "scores": [0.8]},
        {"boxes": [[5, 4, 10, 10]], "scores": [0.9]},
    ]
    references = [
        {"boxes": [], "image_size": [48, 32]},
        {"boxes": [], "image_size": [48, 32]},
        {"boxes": [[4, 4, 10, 10]], "image_size": [48, 32]},
    ]
    module = load("grounding")
    default = module.compute(predictions=predictions, references=references)
    strict = module.compute(predictions=predictions, references=references, score_threshold=0.7)
    assert default == _direct_grounding(predictions, references, 0.5) and default["N-acc"] == 0.0
    assert strict == _direct_grounding(predictions, references, 0.7) and strict["N-acc"] == 0.5
    high = module.compute(predictions=predictions, references=references, score_threshold=0.95)
    assert default["T-acc"] == 1.0  # the targeted pair's box scores 0.9
    assert high == _direct_grounding(predictions, references, 0.95) and high["T-acc"] == 0.0


def test_grounding_unknown_acc_iou_is_named(load: Any) -> None:
    pair = ({"boxes": [[1, 2, 3, 4]], "scores": [0.5]}, {"boxes": [[1, 2, 3, 4]], "image_size": [48, 48]})
    with pytest.raises(ValueError, match="acc_iou must be one of 'iou', 'giou', got 'diou'"):
        load("grounding").compute(predictions=[pair[0]], references=[pair[1]], acc_iou="diou")


def test_grounding_undefined_values_are_none(load: Any) -> None:
    predictions = [{"boxes": [], "scores": []}]
    references = [{"boxes": [[4, 4, 10, 10], [20, 20, 8, 8]], "image_size": [48, 48]}]
    result = load("grounding").compute(predictions=predictions, references=references)
    assert result == _direct_grounding(predictions, references, 0.5)
    assert result["Acc@0.5"] is None and result["N-acc"] is None and result["mIoU"] == 0.0


def test_grounding_add_batch_equals_one_compute(load: Any) -> None:
    predictions, references = _pairs(np.random.default_rng(5), n=18)
    module = load("grounding")
    module.add_batch(predictions=predictions[:7], references=references[:7])
    # the second batch as numpy arrays, empty ones included, as a detector returns them
    as_arrays = [
        {"boxes": np.asarray(p["boxes"]).reshape(-1, 4), "scores": np.asarray(p["scores"])} for p in predictions[7:]
    ]
    module.add_batch(predictions=as_arrays, references=references[7:])
    batched = module.compute()
    assert batched == load("grounding").compute(predictions=predictions, references=references)
    assert batched == _direct_grounding(predictions, references, 0.5)


@pytest.mark.parametrize(
    ("prediction", "reference", "message"),
    [
        (
            {"boxes": [[1, 2, 3]], "scores": [0.5]},
            {"boxes": [[1, 2, 3, 4]], "image_size": [48, 48]},
            r"prediction 1 box 0 has 3 numbers, expected 4",
        ),
        (
            {"boxes": [[1, 2, 3, 4]], "scores": [0.5]},
            {"boxes": [[1, 2, 3, 4], [1, 2, 3, 4, 5]], "image_size": [48, 48]},
            r"reference 1 box 1 has 5 numbers, expected 4",
        ),
        (
            {"boxes": [[1, 2, 3, 4]], "scores": [0.5, 0.4]},
            {"boxes": [], "image_size": [48, 48]},
            "prediction 1 has 1 boxes but 2 scores",
        ),
        (
            {"boxes": [[1, 2, 3, 4]], "scores": [0.5]},
            {"boxes": [], "image_size": [48]},
            r"reference 1 image_size is \[48\], expected \[width, height\]",
        ),
    ],
)
def test_grounding_bad_inputs_are_named(load: Any, prediction: dict, reference: dict, message: str) -> None:
    good = ({"boxes": [], "scores": []}, {"boxes": [], "image_size": [48, 48]})
    with pytest.raises(ValueError, match=message):
        load("grounding").compute(predictions=[good[0], prediction], references=[good[1], reference])


def test_modules_reproduce_a_fusebench_evaluation_of_a_model(
    load: Any, tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict
) -> None:
    """A researcher's loop that feeds the model's scores and boxes to the modules gets the numbers the
    pipeline's evaluation reports for the same model (cross-attention: fusion-head scores, dense boxes)."""
    import torch

    from benchmark.data.dataset import load_split
    from benchmark.data.grounding import GroundingData
    from benchmark.data.tokenizer import load_tokenizer, special_token_ids
    from benchmark.evaluation.grounding import evaluate_grounding, ground_truth, predict
    from benchmark.evaluation.retrieval import evaluate_retrieval, retrieval_scores
    from benchmark.models.method import BuildContext
    from benchmark.registry import load_method

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    tokenizer = load_tokenizer(tiny_tokenizer_file, 24)
    test = load_split(tiny_dataset, "test")
    ctx = BuildContext(
        smoke_config["model"], test.image_size, tokenizer.get_vocab_size(), 24, special_token_ids(tokenizer)
    )
    model = load_method("cross_attention")(ctx).eval()
    settings = {"ks": [1, 5, 10], "max_images": None, "exhaustive_max_images": 100, "shortlist_k": 4}
    pipeline, _, _ = evaluate_retrieval(model, test, tokenizer, cpu, 64, settings)
    t2i, i2t, owners, _ = retrieval_scores(model, test, tokenizer, cpu, 64, settings)
    ours = load("retrieval").compute(predictions=t2i.tolist(), references=owners, ks=[1, 5, 10], i2t_scores=i2t)
    assert ours == pipeline

    settings = {"max_detections": 100, "nms_iou": 0.5, "score_threshold": 0.5, "acc_iou": "iou"}
    pipeline, _, _ = evaluate_grounding(model, test, tokenizer, cpu, 64, settings)
    data = GroundingData.from_split(test, tokenizer, cpu, model.ctx.attributes)
    predictions = predict(model, data, test.image_size, 64, cpu, settings)
    targets, sizes = ground_truth(test)
    ours = load("grounding").compute(
        predictions=[{"boxes": b.tolist(), "scores": s.tolist()} for b, s in predictions],
        references=[{"boxes": t.tolist(), "image_size": list(size)} for t, size in zip(targets, sizes)],
        score_threshold=0.5,
    )
    assert ours == pipeline
