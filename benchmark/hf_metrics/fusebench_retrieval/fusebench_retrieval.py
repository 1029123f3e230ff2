"""FuseBench image↔text retrieval recall@K as a Hugging Face ``evaluate`` module.

The numbers come from :func:`benchmark.metrics.retrieval.retrieval_metrics`, the function
FuseBench's own evaluation calls, so a training loop that uses this module reports exactly
the value FuseBench would. This file only adapts evaluate's one-row-per-example input model
to that function's score matrix and checks the inputs.

Load it by path (works offline):

    import evaluate
    from benchmark.hf_metrics import module_path

    recall = evaluate.load(module_path("retrieval"))
    recall.compute(predictions=scores, references=image_index, ks=[1, 5, 10])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import datasets
import evaluate
import numpy as np

from benchmark.metrics.retrieval import retrieval_metrics

DEFAULT_KS = (1, 5, 10)

_DESCRIPTION = """\
Image-text retrieval recall@K in both directions, FuseBench's protocol (CLIP_benchmark / LAVIS
definitions), computed by FuseBench's own code (benchmark.metrics.retrieval.retrieval_metrics).

Every caption (text) is a text-to-image (t2i) query over the gallery of all images; it hits at K when its own
image ranks within the top K. Every gallery image is an image-to-text (i2t) query over all captions; it hits
at K when ANY of its captions ranks within the top K (so an image with 5 captions needs one of them in the
top K). Recall@K is the fraction of queries that hit; mean_R is the mean of R@K over both directions and
every K. Correspondence: t2i_R@K is LAVIS's img_r@K (CLIP_benchmark image_retrieval_recall@K), i2t_R@K is
LAVIS's txt_r@K (CLIP_benchmark text_retrieval_recall@K), and mean_R with ks=[1, 5, 10] is LAVIS's r_mean
(on a 0-1 scale rather than percent).

Ties are deterministic: items with equal scores rank by gallery index, lower first (a stable descending
sort). For t2i the gallery index is the image index (the column of the score rows); for i2t it is the
caption's position in the order the predictions were added. torch.topk leaves tie order unspecified, so
recall computed from topk can differ from this value when scores tie.

An image that no reference points to is still an i2t query; it has no caption to find and counts as a miss,
as in FuseBench (a warning is issued). Non-finite scores are rejected.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of list of float): one row per caption: the caption's score against every gallery image
        (higher = more similar), i.e. one row of the texts x images score matrix. Every row has the same
        length, the number of gallery images; row order is caption order.
    references (list of int): per caption, the 0-based index of its image in the gallery, i.e. the column of
        its row that is the positive. Several captions may point to the same image.
    ks (list of int, optional): the recall cutoffs K, default [1, 5, 10] (FuseBench's
        evaluate.retrieval.ks).
    i2t_scores (array-like, optional): texts x images scores used to rank the captions for each image when
        they differ from the t2i scores (as after a per-direction shortlist and re-ranking); rows in the same
        caption order as the predictions. Default: the predictions themselves.

Returns:
    dict: 't2i_R@K' and 'i2t_R@K' for every K (fractions in [0, 1]) and 'mean_R'.

Example:
    >>> import evaluate
    >>> from benchmark.hf_metrics import module_path
    >>> recall = evaluate.load(module_path("retrieval"))
    >>> # 3 captions over a gallery of 2 images; captions 0 and 1 describe image 0, caption 2 image 1
    >>> recall.compute(predictions=[[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]], references=[0, 0, 1], ks=[1])
    {'t2i_R@1': 0.6666666666666666, 'i2t_R@1': 1.0, 'mean_R': 0.8333333333333333}

    In a loop, add each batch's rows as they come and compute once at the end:

    >>> for scores, image_index in batches:  # scores: captions in the batch x all gallery images
    ...     recall.add_batch(predictions=scores, references=image_index)
    >>> results = recall.compute(ks=[1, 5, 10])
"""

_CITATION = """\
@software{fusebench2026,
  title   = {FuseBench: a reproducible benchmark of multimodal fusion strategies},
  author  = {{The FuseBench developers}},
  year    = {2026},
  version = {0.1.0}
}
@inproceedings{li2021albef,
  title     = {Align before Fuse: Vision and Language Representation Learning with Momentum Distillation},
  author    = {Li, Junnan and Selvaraju, Ramprasaath R. and Gotmare, Akhilesh Deepak and others},
  booktitle = {NeurIPS},
  year      = {2021}
}
"""


def _score_matrix(predictions: Sequence[Sequence[float]]) -> np.ndarray:
    """Stack the per-caption rows into the texts × images matrix, naming the first ragged row."""
    if len(predictions) == 0:
        raise ValueError("no predictions: add at least one caption's row of scores before compute")
    n_images = len(predictions[0])
    if n_images == 0:
        raise ValueError("prediction row 0 is empty: each row must hold one score per gallery image")
    for row, scores in enumerate(predictions):
        if len(scores) != n_images:
            raise ValueError(
                f"prediction row {row} has {len(scores)} scores but row 0 has {n_images}: every caption must be "
                "scored against the same gallery of images"
            )
    return np.asarray(predictions, dtype=np.float64)


def _owners(references: Sequence[int], n_images: int) -> np.ndarray:
    """Each caption's image index, checked against the gallery (an out-of-range index would silently miss)."""
    owner = np.asarray(references, dtype=np.int64)
    outside = np.flatnonzero((owner < 0) | (owner >= n_images))
    if outside.size:
        caption = int(outside[0])
        raise ValueError(
            f"reference {int(owner[caption])} (caption {caption}) is outside the gallery of {n_images} images: "
            f"references must be image indices 0..{n_images - 1}, the columns of the prediction rows"
        )
    return owner


def _cutoffs(ks: Sequence[int] | None) -> list[int]:
    """Validated K values; a K of 0 or below would report a recall of 0 rather than an error."""
    values = list(DEFAULT_KS if ks is None else ks)
    if not values or any(isinstance(k, bool) or int(k) != k or k < 1 for k in values):
        raise ValueError(f"ks must be a non-empty list of positive integers, got {ks!r}")
    return [int(k) for k in values]


# Subclass evaluate.Metric by attribute: evaluate.load instantiates the first Metric subclass in this file, and a
# `from evaluate import Metric` would make that the base class itself.
class FusebenchRetrieval(evaluate.Metric):
    """Recall@K (t2i, i2t) and mean_R, computed by :func:`benchmark.metrics.retrieval.retrieval_metrics`."""

    def _info(self) -> evaluate.MetricInfo:
        """Inputs are per caption, so that ``add_batch`` can take a batch of captions at a time."""
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.List(datasets.Value("float64")),
                    "references": datasets.Value("int64"),
                }
            ),
            reference_urls=["https://github.com/salesforce/LAVIS", "https://github.com/LAION-AI/CLIP_benchmark"],
        )

    def _compute(
        self,
        predictions: Sequence[Sequence[float]],
        references: Sequence[int],
        ks: Sequence[int] | None = None,
        i2t_scores: Any = None,
    ) -> dict[str, float]:
        """Rebuild the score matrix and hand it to FuseBench's function unchanged."""
        scores = _score_matrix(predictions)
        n_texts, n_images = scores.shape
        owner = _owners(references, n_images)
        cutoffs = _cutoffs(ks)
        i2t = None
        if i2t_scores is not None:
            i2t = np.asarray(i2t_scores, dtype=np.float64)
            if i2t.shape != scores.shape:
                raise ValueError(
                    f"i2t_scores has shape {i2t.shape}, expected ({n_texts}, {n_images}): texts x images, one row per "
                    "caption in the order the predictions were added"
                )
        uncaptioned = np.setdiff1d(np.arange(n_images), owner)
        if uncaptioned.size:
            warnings.warn(
                f"{uncaptioned.size} of {n_images} gallery images have no caption among the references "
                f"(first: {int(uncaptioned[0])}); as i2t queries they count as misses",
                RuntimeWarning,
                stacklevel=3,  # the caller of Metric.compute
            )
        return retrieval_metrics(scores, owner, cutoffs, i2t_scores=i2t)
