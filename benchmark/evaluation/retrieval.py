"""Image↔text retrieval: the evaluation protocols, chosen per method and recorded with results.

* ``embedding``: scores are dot products of ``embed_image`` and ``embed_text`` (dual encoders,
  late fusion); every pair is scored.
* ``exhaustive``: a fusion head scores every (text, image) pair; per-item encodings
  (``prepare_images`` / ``prepare_texts``) are computed once and only the fusion runs per pair.
  Used when the test set has at most ``exhaustive_max_images`` images, or always for a method
  without embeddings to shortlist with.
* ``itc_shortlist``: ALBEF/BLIP's protocol for large test sets — for each query the top
  ``shortlist_k`` candidates by embedding similarity are re-scored by the fusion head; the
  rest keep their similarity order below every shortlisted candidate.

These rank each query against the whole gallery (the ``all_pairs`` protocol of the settings). The
``candidates`` protocol (:func:`evaluate_candidates`) ranks each query against a fixed candidate set — its
positives plus K distractors drawn once per query from named parts (:mod:`benchmark.evaluation.candidates`),
the same for every method: a method with embeddings takes the candidates' dot products, a fusion head scores
only the candidate pairs, O(queries × (K + positives)). :func:`evaluate_protocols` runs the configured ones.

Only the first ``max_images`` test images (and their captions) are used when it is set, the
same subset for every method.

Per-item encodings are computed once per call, and across calls inside :func:`reusing_encodings`
(a robustness job: under an image corruption the captions are the clean ones, under a text
perturbation the images are), from an :class:`EncodingCache` keyed by what was encoded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import torch

from benchmark.data.compositional import count_tags
from benchmark.data.dataset import SceneSplit
from benchmark.data.images import Images, take_head
from benchmark.data.sampling import trim_padding
from benchmark.data.tokenizer import encode
from benchmark.device import autocast
from benchmark.evaluation.candidates import CandidateSets, candidate_ranks, draw_candidate_sets
from benchmark.metrics.compositional import retrieval_subset_metrics
from benchmark.metrics.retrieval import best_positive_rank, per_query_chance, per_query_recall, retrieval_metrics
from benchmark.models.method import FusionMethod

Prepared = dict[str, torch.Tensor]


def _batched(fn: Callable[[int, int], Any], count: int, batch_size: int, device: torch.device) -> Any:
    """Run ``fn(start, stop)`` over chunks; concatenate tensors or dicts of tensors."""
    chunks = []
    for start in range(0, count, batch_size):
        with autocast(device):
            chunks.append(fn(start, min(count, start + batch_size)))
    if isinstance(chunks[0], dict):
        return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
    return torch.cat(chunks)


class EncodingCache:
    """Per-item encodings (prepared items, embeddings) of one model, reused when the same inputs come again.

    An entry is keyed by the encoding (``prepare_images``, ``embed_text``, …), the batch size it was
    computed in and the sha256 of the inputs' names, dtypes, shapes and bytes — by what was encoded,
    never by which object held it, so a corrupted input cannot hit a clean entry and a reused one is
    the same computation, bit for bit. It serves one model (the first it is used with; another is an
    error), whose weights must not change while it lives: one robustness job. ``frozen``: look up
    only, keep nothing new (a robustness job keeps the clean subset's encodings, not every cell's).
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, int, str], Any] = {}
        self._model: FusionMethod | None = None
        self.frozen = False
        self.hits = 0

    def get(self, model: FusionMethod, name: str, digest: str, batch_size: int, compute: Callable[[], Any]) -> Any:
        """Encoding ``name`` of the inputs whose :func:`input_digest` is ``digest``: cached, or ``compute()``
        (then kept unless frozen)."""
        if self._model is None:
            self._model = model
        elif self._model is not model:
            raise ValueError("an EncodingCache serves one model; make a new one for another model")
        key = (name, batch_size, digest)
        if key in self._entries:
            self.hits += 1
            return self._entries[key]
        value = compute()
        if not self.frozen:
            self._entries[key] = value
        return value


def input_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of named tensors: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


_ACTIVE_CACHE: ContextVar[EncodingCache | None] = ContextVar("fusebench_encoding_cache", default=None)


@contextmanager
def reusing_encodings(cache: EncodingCache | None) -> Iterator[EncodingCache | None]:
    """Inside the block, :func:`retrieval_scores` takes per-item encodings from ``cache`` (None: computes each)."""
    token = _ACTIVE_CACHE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE_CACHE.reset(token)


def _take(prepared: Prepared, index: torch.Tensor) -> Prepared:
    return {k: v[index] for k, v in prepared.items()}


def _score_pairs(
    model: FusionMethod,
    images: Prepared,
    texts: Prepared,
    image_index: torch.Tensor,
    text_index: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Fusion scores of the (image_index[k], text_index[k]) pairs, in chunks."""

    def chunk(a: int, b: int) -> torch.Tensor:
        return model.score_prepared(_take(images, image_index[a:b]), _take(texts, text_index[a:b])).float()

    return _batched(chunk, len(image_index), batch_size, device)


def test_subset(split: SceneSplit, max_images: int | None) -> tuple[Images, list[str], list[int]]:
    """Images, captions and caption owners of the first ``max_images`` test images."""
    count = len(split) if max_images is None else min(max_images, len(split))
    texts, owners = [], []
    for index in range(count):
        texts.extend(split.captions[index])
        owners.extend([index] * len(split.captions[index]))
    return take_head(split.images, count), texts, owners


class _Encoded:
    """The evaluated images and captions on the device, and their per-item encodings (each computed once per
    call, or taken from the active :class:`EncodingCache`)."""

    def __init__(
        self, model: FusionMethod, split: SceneSplit, tokenizer: Any, device: torch.device, batch_size: int, count: Any
    ) -> None:
        image_pixels, texts, self.owners = test_subset(split, count)
        self.model, self.device, self.batch_size = model, device, batch_size
        self.images = image_pixels.to(device)
        self.tokens = {k: v.to(device) for k, v in trim_padding(encode(tokenizer, texts)).items()}
        self.n_images, self.n_texts = len(self.images), len(texts)
        self.cache = _ACTIVE_CACHE.get()
        self.image_key = input_digest({"images": self.images}) if self.cache is not None else ""
        self.text_key = input_digest(self.tokens) if self.cache is not None else ""

    def _encoded(self, name: str, key: str, encode_chunk: Callable[[int, int], Any], count: int) -> Any:
        """Encoding ``name`` of every item, in chunks; from the active cache when there is one."""

        def compute() -> Any:
            return _batched(encode_chunk, count, self.batch_size, self.device)

        return compute() if self.cache is None else self.cache.get(self.model, name, key, self.batch_size, compute)

    def _texts(self, a: int, b: int) -> dict[str, torch.Tensor]:
        return {k: v[a:b] for k, v in self.tokens.items()}

    def similarity(self) -> torch.Tensor:
        """texts × images dot products of the embeddings."""
        model, images = self.model, self.images
        image_emb = self._encoded(
            "embed_image", self.image_key, lambda a, b: model.embed_image(images[a:b]).float(), self.n_images
        )
        text_emb = self._encoded(
            "embed_text", self.text_key, lambda a, b: model.embed_text(self._texts(a, b)).float(), self.n_texts
        )
        return text_emb @ image_emb.t()

    def prepared(self) -> tuple[Prepared, Prepared]:
        """The fusion head's per-item encodings of the images and of the captions."""
        model, images = self.model, self.images
        prepared_images = self._encoded(
            "prepare_images", self.image_key, lambda a, b: model.prepare_images(images[a:b]), self.n_images
        )
        prepared_texts = self._encoded(
            "prepare_texts", self.text_key, lambda a, b: model.prepare_texts(self._texts(a, b)), self.n_texts
        )
        return prepared_images, prepared_texts

    def score_pairs(self, image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        """The fusion head's scores of the (image_index[k], text_index[k]) pairs."""
        prepared_images, prepared_texts = self.prepared()
        return _score_pairs(
            self.model, prepared_images, prepared_texts, image_index, text_index, self.batch_size, self.device
        )


@torch.no_grad()
def retrieval_scores(
    model: FusionMethod,
    split: SceneSplit,
    tokenizer: Any,
    device: torch.device,
    batch_size: int,
    settings: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, list[int], dict[str, Any]]:
    """(t2i scores, i2t scores) as texts × images matrices, caption owners, protocol record."""
    model.eval()
    inputs = _Encoded(model, split, tokenizer, device, batch_size, settings.get("max_images"))
    n_images, n_texts, owners = inputs.n_images, inputs.n_texts, inputs.owners
    record: dict[str, Any] = {"texts": n_texts, "images": n_images}
    embeddings = inputs.similarity

    if not model.has_pair_scorer:
        if not model.has_embeddings:
            raise NotImplementedError(f"{model.name} has neither embeddings nor a pair scorer")
        scores = embeddings()
        record["protocol"] = "embedding"
        return scores.cpu().double().numpy(), scores.cpu().double().numpy(), owners, record

    shortlist = model.has_embeddings and n_images > settings["exhaustive_max_images"]
    if not shortlist:
        image_index = torch.arange(n_images, device=device).repeat_interleave(n_texts)
        text_index = torch.arange(n_texts, device=device).repeat(n_images)
        scores = inputs.score_pairs(image_index, text_index)
        matrix = scores.reshape(n_images, n_texts).t().cpu().double().numpy()
        record["protocol"] = "exhaustive" if model.has_embeddings else "exhaustive (no embeddings to shortlist with)"
        record["pairs_scored"] = n_images * n_texts
        return matrix, matrix, owners, record

    k = settings["shortlist_k"]
    similarity = embeddings()  # texts × images
    t2i_texts, t2i_images = _shortlist(similarity, k)
    i2t_images, i2t_texts = _shortlist(similarity.t(), k)
    # a pair on both shortlists (most of them: an image's top captions rank it high) is scored once
    pairs = torch.cat([t2i_images, i2t_images]) * n_texts + torch.cat([t2i_texts, i2t_texts])
    unique, inverse = torch.unique(pairs, return_inverse=True)
    scored = inputs.score_pairs(unique // n_texts, unique % n_texts)
    fused = scored[inverse]
    t2i = _rerank(similarity, t2i_texts, t2i_images, fused[: len(t2i_texts)])
    i2t = _rerank(similarity.t(), i2t_images, i2t_texts, fused[len(t2i_texts) :]).T
    record.update({"protocol": "itc_shortlist", "shortlist_k": k, "pairs_scored": len(unique)})
    return t2i, i2t, owners, record


def _shortlist(similarity: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(query, candidate) index pairs of each query's (row's) top-k candidates by similarity."""
    k = min(k, similarity.shape[1])
    top = similarity.topk(k, dim=1).indices  # ties: order irrelevant, all re-scored
    return torch.arange(similarity.shape[0], device=similarity.device).repeat_interleave(k), top.reshape(-1)


def _rerank(sim: torch.Tensor, queries: torch.Tensor, candidates: torch.Tensor, fused: torch.Tensor) -> np.ndarray:
    """Queries × candidates scores: the fusion head's on each query's shortlist, the others below them all, in ITC
    order."""
    offset = float(fused.min()) - float(sim.max()) - 1.0
    result = sim + offset
    result[queries, candidates] = fused
    return result.cpu().double().numpy()


@torch.no_grad()
def candidate_scores(
    model: FusionMethod,
    split: SceneSplit,
    tokenizer: Any,
    device: torch.device,
    batch_size: int,
    settings: dict[str, Any],
) -> tuple[np.ndarray, CandidateSets, np.ndarray, CandidateSets, list[int], dict[str, Any]]:
    """Scores of each query's fixed candidate set (:mod:`benchmark.evaluation.candidates`): text→image
    (captions × width) and image→text (images × width), their sets, caption owners and the protocol record.

    ``settings["candidates"]`` distractors per query, drawn from ``settings["dataset"]``, the split's name and
    each query's id. A method with embeddings but no pair scorer takes the candidates' dot products from the
    same similarity matrix as the all-pairs protocol; a fusion head scores only the candidate pairs (a pair in
    both directions' sets once)."""
    model.eval()
    if "dataset" not in settings:
        raise ValueError("the candidate protocol draws its sets from named parts: settings need 'dataset'")
    count = settings.get("max_images")
    inputs = _Encoded(model, split, tokenizer, device, batch_size, count)
    n_images, n_texts, owners = inputs.n_images, inputs.n_texts, inputs.owners
    distractors = int(settings["candidates"])
    owner = np.asarray(owners, dtype=np.int64)
    caption_ids = [cid for ids in split.caption_ids()[:n_images] for cid in ids]
    parts = (settings["dataset"], split.name)
    t2i = draw_candidate_sets([[o] for o in owner], n_images, distractors, caption_ids, *parts, "t2i")
    texts_of = [np.flatnonzero(owner == i) for i in range(n_images)]
    i2t = draw_candidate_sets(texts_of, n_texts, distractors, split.image_ids[:n_images], *parts, "i2t")
    # (image, text) of every candidate slot, padding at (0, 0): scored or gathered, then ignored
    t2i_images, t2i_texts = np.maximum(t2i.index, 0), np.broadcast_to(np.arange(n_texts)[:, None], t2i.index.shape)
    i2t_images, i2t_texts = np.broadcast_to(np.arange(n_images)[:, None], i2t.index.shape), np.maximum(i2t.index, 0)
    record: dict[str, Any] = {"texts": n_texts, "images": n_images, "distractors": distractors}
    if not model.has_pair_scorer:
        if not model.has_embeddings:
            raise NotImplementedError(f"{model.name} has neither embeddings nor a pair scorer")
        similarity = inputs.similarity().cpu().double().numpy()  # texts × images
        record["protocol"] = "embedding"
        return similarity[t2i_texts, t2i_images], t2i, similarity[i2t_texts, i2t_images], i2t, owners, record
    keys = np.concatenate(
        [(t2i_images * n_texts + t2i_texts)[t2i.valid], (i2t_images * n_texts + i2t_texts)[i2t.valid]]
    )
    unique, inverse = np.unique(keys, return_inverse=True)  # ascending: the exhaustive protocol's pair order
    pairs = torch.as_tensor(unique, device=device)
    scored = inputs.score_pairs(pairs // n_texts, pairs % n_texts).cpu().double().numpy()[inverse.reshape(-1)]
    t2i_scores, i2t_scores = np.zeros(t2i.index.shape), np.zeros(i2t.index.shape)
    t2i_scores[t2i.valid] = scored[: int(t2i.valid.sum())]
    i2t_scores[i2t.valid] = scored[int(t2i.valid.sum()) :]
    record.update({"protocol": "candidates", "pairs_scored": len(unique)})
    return t2i_scores, t2i, i2t_scores, i2t, owners, record


def evaluate_candidates(
    model: FusionMethod,
    split: SceneSplit,
    tokenizer: Any,
    device: torch.device,
    batch_size: int,
    settings: dict[str, Any],
) -> tuple[dict[str, float | None], dict[str, Any], dict[str, np.ndarray]]:
    """Recall@K in both directions and their mean over each query's fixed candidate set, the protocol record
    (its ``chance``: the exact expectation of a uniformly random ranking of every set), and per-query ranks
    with each query's set size (``t2i_gallery``, ``i2t_gallery``) for the bootstrap."""
    t2i_scores, t2i, i2t_scores, i2t, owners, protocol = candidate_scores(
        model, split, tokenizer, device, batch_size, settings
    )
    ks = [int(k) for k in settings["ks"]]
    items = {
        "t2i_rank": candidate_ranks(t2i_scores, t2i),
        "text_owner": np.asarray(owners),
        "i2t_rank": candidate_ranks(i2t_scores, i2t),
        "t2i_gallery": t2i.size,
        "i2t_gallery": i2t.size,
        "ks": np.asarray(ks),
    }
    metrics = per_query_recall(items["t2i_rank"], t2i.size, items["i2t_rank"], i2t.size, ks)
    chance = per_query_chance(t2i.positives, t2i.size, i2t.positives, i2t.size, ks)
    return dict(metrics), {**protocol, "chance": chance}, items


PROTOCOLS = ("all_pairs", "candidates")


def evaluate_protocols(
    model: FusionMethod,
    split: SceneSplit,
    tokenizer: Any,
    device: torch.device,
    batch_size: int,
    settings: dict[str, Any],
    protocols: Sequence[str],
    subset_metrics: Sequence[str] = (),
) -> dict[str, tuple[dict[str, float | None], dict[str, Any], dict[str, np.ndarray]]]:
    """protocol → (metrics, protocol record, per-item records) for each of ``protocols`` (``all_pairs``:
    :func:`evaluate_retrieval`, ``candidates``: :func:`evaluate_candidates`), the per-item encodings computed
    once for all of them (the active :class:`EncodingCache`, or one for this call)."""
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown retrieval protocol(s) {unknown}; known: {', '.join(PROTOCOLS)}")
    out = {}
    with reusing_encodings(_ACTIVE_CACHE.get() or EncodingCache()):
        for name in protocols:
            if name == "all_pairs":
                out[name] = evaluate_retrieval(model, split, tokenizer, device, batch_size, settings, subset_metrics)
            else:
                out[name] = evaluate_candidates(model, split, tokenizer, device, batch_size, settings)
    return out


def evaluate_retrieval(
    model: FusionMethod,
    split: SceneSplit,
    tokenizer: Any,
    device: torch.device,
    batch_size: int,
    settings: dict[str, Any],
    subset_metrics: Sequence[str] = (),
) -> tuple[dict[str, float | None], dict[str, Any], dict[str, np.ndarray]]:
    """Recall@K in both directions and their mean, the protocol record, and per-query ranks.

    On a split tagged seen / held-out, ``subset_metrics`` are also reported on each subset
    (:mod:`benchmark.metrics.compositional`: full gallery, the subset's queries) and the per-query records
    carry each query's tag (``caption_subset``, ``image_subset``)."""
    t2i, i2t, owners, protocol = retrieval_scores(model, split, tokenizer, device, batch_size, settings)
    owner = np.asarray(owners)
    positives = owner[:, None] == np.arange(t2i.shape[1])[None, :]
    items = {
        "t2i_rank": best_positive_rank(t2i, positives),
        "text_owner": owner,
        "i2t_rank": best_positive_rank(i2t.T, positives.T),
        "ks": np.asarray(settings["ks"]),
    }
    metrics: dict[str, float | None] = {**retrieval_metrics(t2i, owners, settings["ks"], i2t_scores=i2t)}
    if split.tagged and subset_metrics:
        count = t2i.shape[1]
        caption_subsets = [tag for tags in split.caption_subsets[:count] for tag in tags]
        metrics.update(
            retrieval_subset_metrics(
                t2i, i2t, owners, settings["ks"], caption_subsets, split.image_subsets[:count], subset_metrics
            )
        )
        protocol["subset_queries"] = {
            "t2i": count_tags(caption_subsets),
            "i2t": count_tags(split.image_subsets[:count]),
        }
        # each query's tag, for the compositional net gap's item bootstrap (RetrievalItems.restricted_to)
        items["caption_subset"] = np.asarray(caption_subsets, dtype=str)
        items["image_subset"] = np.asarray(split.image_subsets[:count], dtype=str)
    return metrics, protocol, items
