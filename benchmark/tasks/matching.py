"""Image–text matching (ITM): does a method's pair score tell a true (image, caption) pair from a mismatched one?

Protocol. The first ``max_images`` test images (all when null) and each of their captions form the
positive pairs. Each positive (image i, caption c) gets one negative: image i with a caption of another
image whose text differs from every caption of image i (a caption that other images share is never a
negative), drawn uniformly from those candidates with a stream seeded by ``negatives_seed`` — one draw per
test split, the same for every method (ITM's random negatives, as UNITER and ViLT draw them; Chen et al.,
ECCV 2020; Kim et al., ICML 2021). The set is balanced: as many negatives as positives. The pair score is
the method's own through the method contract: its fusion head on the pair (``prepare_images`` /
``prepare_texts`` / ``score_prepared``) or the dot product of its embeddings — what ``score_pairs`` computes.

Metrics (fractions, higher is better; H(x) = 1 for x > 0, ½ for x = 0, 0 for x < 0):

* ``match_AUROC`` — the area under the ROC curve of the pair score separating positives from negatives,
  computed as the Mann–Whitney statistic: AUROC = (1 / (P·N)) Σ_p Σ_n H(s_p − s_n) over the P positive and
  N negative scores, the probability that a random positive outscores a random negative, ties counted ½
  (J. A. Hanley & B. J. McNeil, "The meaning and use of the area under a receiver operating characteristic
  (ROC) curve", Radiology 143(1), 1982; T. Fawcett, "An introduction to ROC analysis", Pattern Recognition
  Letters 27(8), 2006). Threshold-free, so a dot product and a calibrated ITM logit are compared alike.
  The summary metric.
* ``match_acc`` — two-alternative matching accuracy: (1 / P) Σ_p H(s(i, c_p) − s(i, c'_p)), the share of
  positives that outscore their own negative (the same image with the mismatched caption): the image-to-
  caption choice of ARO and SugarCrepe (Yuksekgonul et al., ICLR 2023; Hsieh et al., NeurIPS 2023) with a
  random instead of a hard negative.

Reference row: ``chance_pairs`` — every pair scored alike: both metrics are ½ exactly. Bootstrap unit: an
image with its captions and their negatives (weights w_u per image; AUROC becomes Σ w_p w_n H / (Σ w_p Σ w_n)
with each pair weighted by its image). Fine-tuning: the binary cross-entropy of the pair score (as a logit)
on each batch's true pairs and on in-batch mismatched pairs (every image with the next image's caption),
ITM's loss (Chen et al. 2020). Which methods: any that reads both modalities and scores a pair (a pair
scorer or embeddings), whether or not its file lists the task; others are "not applicable" with the
reason. Missing modality is not applicable: without the image or the caption there is no pair to score.

Opt-in (``opt_in = True``): ``tasks: all`` (the default) leaves this task out, so the default and smoke runs
are unchanged; name it to run it, e.g. ``tasks: [retrieval, grounding, matching]`` or the override
``tasks=[matching]``. Its defaults are in ``workflows/config/default.yaml`` (``finetune.matching``,
``evaluate.matching``, ``robustness.summary_metric.matching``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from benchmark.seeding import derive_seed
from benchmark.tasks.base import Task

METRICS = ("match_AUROC", "match_acc")


def heaviside(x: np.ndarray) -> np.ndarray:
    """H(x): 1 where x > 0, ½ where x = 0, 0 where x < 0."""
    return (np.sign(x) + 1.0) / 2.0


def matching_metrics(positive: np.ndarray, negative: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    """``match_AUROC`` and ``match_acc`` of positive scores ``positive[p]`` and their own negatives' ``negative[p]``
    (module docstring), each pair weighted by ``weights[p]`` (1 everywhere by default)."""
    positive, negative = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    w = np.ones(len(positive)) if weights is None else np.asarray(weights, dtype=float)
    return {name: float(values[0]) for name, values in weighted_metrics(positive, negative, w[None]).items()}


def weighted_metrics(positive: np.ndarray, negative: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Both metrics for each row of pair weights ``weights`` (B × P): AUROC = w H w' / (Σw)², acc = w h / Σw."""
    if len(positive) == 0:
        return {name: np.full(len(weights), np.nan) for name in METRICS}
    outscores = heaviside(positive[:, None] - negative[None, :])  # P × N, N = P (one negative per positive)
    total = weights.sum(axis=1)
    auroc = np.einsum("bp,pn,bn->b", weights, outscores, weights) / total**2
    accuracy = weights @ heaviside(positive - negative) / total
    return {"match_AUROC": auroc, "match_acc": accuracy}


@dataclass
class MatchingItems:
    """Per positive pair: its score, its negative's score and its image (the bootstrap unit)."""

    positive: np.ndarray
    negative: np.ndarray
    owner: np.ndarray  # per positive: the index of its image among the ``units`` test images
    units: int

    def metrics(self, weights: np.ndarray) -> dict[str, float]:
        return {name: float(values[0]) for name, values in self.metrics_batch(np.asarray(weights)[None]).items()}

    def metrics_batch(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric for each row of unit weights (B × units): a pair counts as often as its image."""
        pair_weights = np.asarray(weights, dtype=float)[:, self.owner]
        return weighted_metrics(self.positive, self.negative, pair_weights)


def draw_negatives(captions: list[list[str]], seed: int) -> np.ndarray:
    """Per caption (in order, image by image): the index of its negative caption, or −1 when every other
    caption reads like one of its image's (module docstring: one uniform draw per positive)."""

    texts = [c for caps in captions for c in caps]
    owners = np.array([i for i, caps in enumerate(captions) for _ in caps], dtype=int)
    draws = np.random.default_rng(derive_seed("matching negatives", seed)).random(len(texts))
    negatives = np.full(len(texts), -1, dtype=int)
    for index, caps in enumerate(captions):
        own = set(caps)
        candidates = [q for q, text in enumerate(texts) if owners[q] != index and text not in own]
        for p in np.flatnonzero(owners == index):
            if candidates:
                negatives[p] = candidates[int(draws[p] * len(candidates))]
    return negatives


def pair_scores(
    model: Any, images: Any, tokens: dict[str, Any], pairs: np.ndarray, batch_size: int, device: Any
) -> np.ndarray:
    """The method's score of each (image, text) row of ``pairs`` (K × 2 indices), per-item work done once:
    its fusion head on prepared items, or the dot product of its embeddings (``FusionMethod.score_pairs``)."""
    import torch

    from benchmark.device import autocast

    def chunked(encode: Any, count: int) -> Any:
        chunks = []
        for start in range(0, count, batch_size):
            with autocast(device):
                chunks.append(encode(start, min(count, start + batch_size)))
        if isinstance(chunks[0], dict):
            return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
        return torch.cat(chunks)

    def texts(a: int, b: int) -> dict[str, Any]:
        return {k: v[a:b] for k, v in tokens.items()}

    n_texts = len(tokens["input_ids"])
    index = torch.as_tensor(pairs, dtype=torch.long, device=device)
    if model.has_pair_scorer:
        prepared_images = chunked(lambda a, b: model.prepare_images(images[a:b]), len(images))
        prepared_texts = chunked(lambda a, b: model.prepare_texts(texts(a, b)), n_texts)

        def score(a: int, b: int) -> Any:
            image_part = {k: v[index[a:b, 0]] for k, v in prepared_images.items()}
            text_part = {k: v[index[a:b, 1]] for k, v in prepared_texts.items()}
            return model.score_prepared(image_part, text_part).float()

        scores = chunked(score, len(index))
    else:
        image_emb = chunked(lambda a, b: model.embed_image(images[a:b]).float(), len(images))
        text_emb = chunked(lambda a, b: model.embed_text(texts(a, b)).float(), n_texts)
        scores = (image_emb[index[:, 0]] * text_emb[index[:, 1]]).sum(-1)
    return scores.cpu().double().numpy()


class Matching(Task):
    title = "image–text matching"
    requires = ("images", "captions")
    table_metrics = METRICS
    headline_metrics = METRICS
    abbreviation = "ITM"
    references: ClassVar[dict[str, str]] = {"chance_pairs": "scores every pair alike (both metrics ½ exactly)"}
    bootstrap_unit = "an image with its captions and their mismatched captions"
    opt_in = True  # not in ``tasks: all``: the default and smoke runs stay as they were
    settings_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["max_images", "negatives_seed"],
        "properties": {
            "max_images": {
                "description": "match only the first N test images and their captions (null = all)",
                "oneOf": [{"type": "null"}, {"type": "integer", "minimum": 1}],
            },
            "negatives_seed": {
                "description": "the seed of the mismatched captions' draw (the same for every method)",
                "type": "integer",
                "minimum": 0,
            },
        },
    }

    def metric_names(self, settings: dict[str, Any]) -> list[str]:
        return list(METRICS)

    def not_applicable_reason(self, method: Any) -> str | None:
        """Any method that reads both modalities and scores a pair (a fusion head or embeddings)."""
        from benchmark.models.method import FusionMethod

        kind = method if isinstance(method, type) else type(method)
        name = kind.name or kind.__name__
        if method.not_applicable_reason(self.name) is None:
            return None  # the method's file lists the task
        if len(kind.modalities) < 2:
            return f"{name} reads only the {kind.modalities[0]}; {self.name} scores (image, caption) pairs"
        if kind.score_prepared is FusionMethod.score_prepared and kind.embed_image is FusionMethod.embed_image:
            return f"{name} has neither a pair scorer nor embeddings: it cannot score an (image, caption) pair"
        return None

    def losses(self, model: Any, batch: Any) -> Any:
        """ITM's binary cross-entropy: the batch's true pairs (label 1), each image with the next one's caption (0)."""
        import torch
        import torch.nn.functional as F

        mismatched = {**batch, "text": {k: v.roll(1, dims=0) for k, v in batch["text"].items()}}
        logits = torch.cat([model.score_pairs(batch), model.score_pairs(mismatched)]).float()
        labels = torch.cat([torch.ones(len(logits) // 2), torch.zeros(len(logits) // 2)]).to(logits.device)
        return {"itm": F.binary_cross_entropy_with_logits(logits, labels)}

    def evaluate(
        self,
        model: Any,
        split: Any,
        tokenizer: Any,
        device: Any,
        batch_size: int,
        settings: dict[str, Any],
        **missing: Any,
    ) -> tuple[dict[str, float | None], dict[str, Any], dict[str, Any]]:

        import torch

        from benchmark.data.images import take_head
        from benchmark.data.sampling import trim_padding
        from benchmark.data.tokenizer import encode

        count = len(split) if settings["max_images"] is None else min(settings["max_images"], len(split))
        captions = [list(caps) for caps in split.captions[:count]]
        texts = [c for caps in captions for c in caps]
        owner = np.array([i for i, caps in enumerate(captions) for _ in caps], dtype=int)
        negative = draw_negatives(captions, settings["negatives_seed"])
        kept = np.flatnonzero(negative >= 0)
        model.eval()
        with torch.no_grad():
            images = take_head(split.images, count).to(device)
            tokens = {k: v.to(device) for k, v in trim_padding(encode(tokenizer, texts)).items()}
            pairs = np.concatenate([np.stack([owner[kept], kept], 1), np.stack([owner[kept], negative[kept]], 1)])
            scores = pair_scores(model, images, tokens, pairs, batch_size, device)
        items = MatchingItems(scores[: len(kept)], scores[len(kept) :], owner[kept], count)
        metrics = items.metrics(np.ones(count))
        protocol = {
            "images": count,
            "captions": len(texts),
            "matched_pairs": len(kept),
            "mismatched_pairs": len(kept),
            "negatives": "one caption of another image per caption, text unlike the image's own, seeded",
            "negatives_seed": settings["negatives_seed"],
            "score": "pair scorer" if model.has_pair_scorer else "embedding dot product",
        }
        records = {"positive": items.positive, "negative": items.negative, "owner": items.owner, "units": count}
        return {k: (None if np.isnan(v) else v) for k, v in metrics.items()}, protocol, records

    def items(self, arrays: dict[str, Any]) -> Any:
        return MatchingItems(arrays["positive"], arrays["negative"], arrays["owner"], int(arrays["units"]))

    def protocol_counts(self, protocol: dict[str, Any]) -> str | None:
        if "matched_pairs" not in protocol:
            return None
        return (
            f"{protocol['images']:,} test images and their {protocol['captions']:,} captions "
            f"({protocol['matched_pairs']:,} matched and {protocol['mismatched_pairs']:,} mismatched pairs)"
        )

    def reference_rows(
        self, data_dir: Any, settings: dict[str, Any]
    ) -> tuple[dict[str, dict[str, float | None]], dict[str, Any]]:
        return {"chance_pairs": dict.fromkeys(METRICS, 0.5)}, {"chance_pairs": "every pair scored alike: ties count ½"}

    def subset_settings(self, settings: dict[str, Any], test_size: int) -> dict[str, Any]:
        """The robustness subset (or val subset) is already cut: ``max_images`` must not cut it again."""
        return {**settings, "max_images": None}

    def chance_level(self, metric: str, items: Any | None) -> float | None:
        """½ for both metrics: a scorer that cannot tell a matched pair from its mismatch (the ``chance_pairs`` row)."""
        return 0.5 if metric in METRICS else None

    def missing_modality(self, subset: Any, corruption: str, severity: int) -> dict[str, Any] | str:
        return "matching scores an (image, caption) pair; without one of them there is no pair to score"
