"""Robustness evaluation: every task metric re-measured under corruption, per (corruption, severity).

The test subset is the first ``robustness.max_images`` test images (null: all) with their captions and
referring expressions — the same subset for every method and for the clean reference
(``corruption = none, severity = 0``) that the summaries divide by. Families:

* ``image``: the test images pass through :mod:`benchmark.corruptions.image`;
* ``text``: captions and expressions pass through :mod:`benchmark.corruptions.text`; the
  sentence-level ones (``formal`` … ``back_translation``) through the models that
  ``robustness.sentence_models`` names, loaded once per job (:func:`load_sentence_models`), each
  unique text generated once and reused at every severity; :func:`sentence_model_protocol` gives
  the model folders and file digests for the result's protocol;
* ``missing``: ``missing_image`` / ``missing_text`` withhold that modality from a seeded
  fraction severity/5 of the test examples (20 % … 100 %, :func:`missing_mask`), as the task
  says (``Task.missing_modality``; retrieval ranks one modality against the other, so there
  it is not applicable). The method receives ``None``; a method that cannot run without the
  modality is reported as not applicable.

Every measured cell keeps its per-item records (one file per job, :func:`benchmark.results.write_cell_items`):
the robustness summaries' intervals resample them (:mod:`benchmark.report.robustness`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from benchmark.corruptions.families import family
from benchmark.corruptions.image import corrupt_images
from benchmark.corruptions.text import (
    SCENE_LEXICON,
    SENTENCE_PERTURBATIONS,
    Lexicon,
    ModelRequiredError,
    SentenceRewriter,
    corrupt_sentences,
    corrupt_text,
    load_lexicon,
    load_sentence_rewriter,
    model_required,
)
from benchmark.data.dataset import SceneSplit
from benchmark.data.images import as_tensor
from benchmark.errors import ConfigError, MissingModalityError
from benchmark.evaluation.retrieval import EncodingCache, reusing_encodings
from benchmark.results import Cell
from benchmark.tasks.base import Task


def grid(settings: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """(corruption, severity) in a fixed order: image, text, missing."""
    names = list(settings["image"]) + list(settings["text"]) + [f"missing_{m}" for m in settings["missing"]]
    for name in names:
        for severity in settings["severities"]:
            yield name, severity


def corrupt_split(
    split: SceneSplit,
    corruption: str,
    severity: int,
    lexicon: Lexicon | None = None,
    sentence_models: Mapping[str, SentenceRewriter] | None = None,
) -> SceneSplit:
    """A copy of ``split`` whose images or texts are corrupted (seeded per example); ``lexicon`` gives the
    synonyms of the lexical text perturbations (default: the synthetic scenes' built-in lexicon);
    ``sentence_models`` the rewriters of the sentence-level ones (:func:`load_sentence_models`)."""
    if family(corruption) == "image":
        return replace(split, images=corrupt_images(as_tensor(split.images), corruption, severity, split.image_ids))
    if corruption in SENTENCE_PERTURBATIONS:
        return _rewrite_split(split, corruption, severity, (sentence_models or {}).get(corruption))
    captions = [
        [corrupt_text(c, corruption, severity, cid, lexicon) for c, cid in zip(caps, ids)]
        for caps, ids in zip(split.captions, split.caption_ids())
    ]
    refs = [
        {**r, "sentence": corrupt_text(r["sentence"], corruption, severity, r["ref_id"], lexicon)} for r in split.refs
    ]
    return replace(split, captions=captions, refs=refs)


def _rewrite_split(split: SceneSplit, corruption: str, severity: int, rewriter: SentenceRewriter | None) -> SceneSplit:
    """Captions and expressions under a sentence-level perturbation, generated in one batched pass."""
    if rewriter is None:
        raise ModelRequiredError(model_required(corruption))
    texts = [c for caps in split.captions for c in caps] + [r["sentence"] for r in split.refs]
    rewritten = dict(zip(texts, corrupt_sentences(texts, corruption, severity, rewriter)))
    captions = [[rewritten[c] for c in caps] for caps in split.captions]
    refs = [{**r, "sentence": rewritten[r["sentence"]]} for r in split.refs]
    return replace(split, captions=captions, refs=refs)


def load_sentence_models(settings: Mapping[str, Any], device: Any = "cpu") -> dict[str, SentenceRewriter]:
    """The rewriter of every sentence-level perturbation in ``robustness.text``: load once per robustness job.

    ``settings`` is the ``robustness`` block; a sentence-level name without an entry in
    ``sentence_models`` is a ConfigError (:func:`benchmark.config.validate_config` reports it first).
    """
    configured = settings.get("sentence_models") or {}
    rewriters = {}
    for name in (n for n in settings["text"] if n in SENTENCE_PERTURBATIONS):
        if name not in configured:
            raise ConfigError(f"'robustness.text' lists {name!r}: {model_required(name)}")
        rewriters[name] = load_sentence_rewriter(name, configured[name], device)
    return rewriters


def sentence_model_protocol(sentence_models: Mapping[str, SentenceRewriter]) -> dict[str, Any]:
    """``{"sentence_models": {name: {models: [{source, directory, files: {path: sha256}}], prefixes, decoding}}}``
    for the robustness result's protocol; ``{}`` when no sentence-level perturbation ran."""
    if not sentence_models:
        return {}
    return {"sentence_models": {name: rewriter.provenance() for name, rewriter in sentence_models.items()}}


def robustness_lexicon(settings: dict[str, Any]) -> Lexicon | None:
    """The built-in scene lexicon extended by the file ``robustness.lexicon`` names, or None (built-in only)."""
    path = settings.get("lexicon")
    return {**SCENE_LEXICON, **load_lexicon(path)} if path else None


def evaluate_robustness(
    split: SceneSplit,
    task: Task,
    settings: dict[str, Any],
    evaluate: Callable[..., tuple[Any, ...]],
    sentence_models: Mapping[str, SentenceRewriter] | None = None,
    items: dict[Cell, dict[str, Any]] | None = None,
    reuse_encodings: bool = True,
) -> list[tuple[str, int, dict[str, float | None] | None, str]]:
    """(corruption, severity, metrics or None, status) for the clean subset and every grid cell.

    ``evaluate(split, **withheld)`` returns (metrics, protocol[, per-item records]). ``items``, when
    given, receives each measured cell's per-item records keyed by (corruption, severity), for
    :func:`benchmark.results.write_cell_items` and the robustness intervals. ``sentence_models``
    (default: :func:`load_sentence_models` on the CPU) rewrites the texts of the sentence-level
    perturbations; pass it to record :func:`sentence_model_protocol` from the same models.

    A corruption changes one side: under an image corruption the texts are the clean subset's, under
    a text perturbation the images are. ``reuse_encodings`` (default) keeps the clean subset's
    per-item encodings and reuses them wherever the same inputs come again
    (:class:`benchmark.evaluation.retrieval.EncodingCache`, keyed by the inputs' contents): the same
    numbers as computing every cell from scratch (False), without re-running a tower on clean inputs.
    """

    subset = task.robustness_subset(split, settings["max_images"])
    lexicon = robustness_lexicon(settings)
    if sentence_models is None:
        sentence_models = load_sentence_models(settings)
    cache = EncodingCache() if reuse_encodings else None

    def measure(corruption: str, severity: int, cell_split: SceneSplit, **withheld: Any) -> dict[str, float | None]:
        with reusing_encodings(cache):
            measured = evaluate(cell_split, **withheld)
        if items is not None and len(measured) > 2:
            items[(corruption, severity)] = measured[2]
        return measured[0]

    results: list[tuple[str, int, dict[str, float | None] | None, str]] = [
        ("none", 0, measure("none", 0, subset), "ok")
    ]
    if cache is not None:
        cache.frozen = True  # keep the clean encodings only: a corrupted cell's are never asked for again
    for corruption, severity in grid(settings):
        if family(corruption) != "missing":
            corrupted = corrupt_split(subset, corruption, severity, lexicon, sentence_models)
            results.append((corruption, severity, measure(corruption, severity, corrupted), "ok"))
            continue
        withheld = task.missing_modality(subset, corruption, severity)
        if isinstance(withheld, str):
            results.append((corruption, severity, None, f"not applicable: {withheld}"))
            continue
        try:
            results.append((corruption, severity, measure(corruption, severity, subset, **withheld), "ok"))
        except MissingModalityError as error:
            results.append((corruption, severity, None, f"not applicable: {error}"))
    return results
