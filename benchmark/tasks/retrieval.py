"""Image↔text retrieval: recall@K in both directions, over the test images and their captions.

Protocol (details in :mod:`benchmark.evaluation.retrieval` and :mod:`benchmark.metrics.retrieval`):
every test caption is a query over the test images (``t2i``) and every test image a query over
the captions (``i2t``, a hit when *any* of its captions ranks within K); ties go to the lower
gallery index. The score comes from the method's embeddings, its fusion head on every pair, or
an ITC shortlist re-ranked by the fusion head (ALBEF/BLIP), recorded with each number. On a
compositional test split the headline metrics are also reported with the caption (t2i) or image
(i2t) queries of the seen and of the held-out subset, over the full gallery (``mean_R@held_out``,
:mod:`benchmark.metrics.compositional`).

Two protocols, each reported under its own metric names (``evaluate.retrieval.protocols``):
``all_pairs`` (the names above: every query ranks the whole gallery) and ``candidates`` (``cand_`` + the
same names: every query ranks its positives plus ``candidates`` distractors drawn once per query from the
split, identical for every method, :mod:`benchmark.evaluation.candidates`; cost linear in the split). The
robustness grid measures ``robustness_protocols`` (by default the candidate sets, so the whole test split
is affordable for a fusion head); validation measures ``all_pairs`` only.

Reference row: ``chance``, the exact expectation of a uniformly random ranking (of the whole gallery,
and of each candidate set for the ``cand_`` metrics; :meth:`Retrieval.chance` gives it per evaluation from
its item records). Bootstrap unit:
an image with its captions (galleries stay fixed). Missing modality is not applicable: retrieval
ranks one modality against the other, so an absent item cannot be ranked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmark.data.standard_form import read_captions, read_manifest
from benchmark.errors import ConfigError
from benchmark.metrics.bootstrap import MergedItems, RetrievalItems
from benchmark.metrics.retrieval import DIRECTIONS, chance_retrieval_metrics, metric_names, per_query_chance
from benchmark.tasks.base import Task

POSITIVE_INT = {"type": "integer", "minimum": 1}


PROTOCOLS_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "uniqueItems": True,
    "items": {"enum": ["all_pairs", "candidates"]},
}


def protocols(settings: dict[str, Any]) -> list[str]:
    """The protocols the main evaluation runs (default: all pairs only)."""
    return _checked(settings, settings.get("protocols") or ["all_pairs"], "protocols")


def robustness_protocols(settings: dict[str, Any]) -> list[str]:
    """The protocols the robustness grid runs (default: the main evaluation's)."""
    return _checked(settings, settings.get("robustness_protocols") or protocols(settings), "robustness_protocols")


def _checked(settings: dict[str, Any], names: list[str], key: str) -> list[str]:

    if "candidates" in names and not settings.get("candidates"):
        raise ConfigError(f"'evaluate.retrieval.{key}' lists 'candidates' but 'evaluate.retrieval.candidates' is null")
    return list(names)


def candidate_chance(owners: list[int], n_images: int, settings: dict[str, Any]) -> dict[str, float]:
    """Chance of the candidate protocol: each caption ranks its image among 1 + K, each image its c captions
    among c + K (fewer when the split has fewer others)."""

    captions = np.bincount(np.asarray(owners, dtype=np.int64), minlength=n_images)
    distractors = int(settings["candidates"])
    t2i_size = np.full(len(owners), 1 + min(distractors, n_images - 1))
    i2t_size = captions + np.minimum(distractors, len(owners) - captions)
    return per_query_chance(np.ones(len(owners)), t2i_size, captions, i2t_size, settings["ks"])


class Retrieval(Task):
    title = "image↔text retrieval"
    requires = ("images", "captions")
    table_metrics = ("t2i_R@1", "t2i_R@5", "t2i_R@10", "i2t_R@1", "i2t_R@5", "i2t_R@10", "mean_R", "cand_mean_R")
    headline_metrics = ("mean_R", "t2i_R@1", "i2t_R@1")
    subset_metrics = headline_metrics
    abbreviation = "Ret"
    references: ClassVar[dict[str, str]] = {"chance": "is the exact expectation of a uniformly random ranking"}
    reference_settings = ("ks", "max_images", "protocols", "candidates")
    bootstrap_unit = "an image with its captions"
    efficiency = ("flops_score_pair", "MFLOPs / pair (retrieval)")
    validates_pretraining = True  # val retrieval is the pretraining curve of a method that can rank
    subset_note = "ranks the full test gallery for the subset's queries"
    mmi_note = "per direction (MMI_t2i, MMI_i2t) on the mean of that direction's R@K"
    settings_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["ks", "max_images", "exhaustive_max_images", "shortlist_k"],
        "properties": {
            "ks": {"type": "array", "minItems": 1, "uniqueItems": True, "items": POSITIVE_INT},
            "max_images": {
                "description": "score only the first N test images and their captions (null = all)",
                "oneOf": [{"type": "null"}, POSITIVE_INT],
            },
            "exhaustive_max_images": {
                "description": "fusion heads score every pair up to this many images, else ITC shortlist",
                "type": "integer",
                "minimum": 0,
            },
            "shortlist_k": {**POSITIVE_INT, "description": "candidates re-ranked per query"},
            "protocols": PROTOCOLS_SCHEMA,
            "robustness_protocols": PROTOCOLS_SCHEMA,
            "candidates": {
                "description": "distractors per query of the candidate protocol (null: no candidate protocol)",
                "oneOf": [{"type": "null"}, POSITIVE_INT],
            },
        },
    }
    prefixes: ClassVar[dict[str, str]] = {"all_pairs": "", "candidates": "cand_"}
    """Protocol → the prefix of its metric names (and of its per-item record names)."""

    def metric_names(self, settings: dict[str, Any]) -> list[str]:

        names = metric_names(settings["ks"])
        return [f"{self.prefixes[p]}{name}" for p in protocols(settings) for name in names]

    def protocol_counts(self, protocol: dict[str, Any]) -> str | None:
        """Images and captions: every caption is a text→image query, every image an image→text query."""
        if "texts" not in protocol:
            return None
        return (
            f"{protocol['images']:,} test images and their {protocol['texts']:,} captions"
            f" ({protocol['texts']:,} text→image and {protocol['images']:,} image→text queries)"
        )

    def measures_pretraining(self, model: Any) -> bool:
        """A method that can rank: embeddings or a pair scorer, and retrieval among its tasks."""
        return (
            (model.has_embeddings or model.has_pair_scorer)
            and self.name in model.tasks
            and not self.not_applicable_reason(model)
        )

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
        """Every configured protocol's metrics, under its prefix; the protocol record is the first protocol's,
        with each other one's under its name (``"candidates": {…, "chance": {metric: value}}``); the item records
        of each protocol under its prefix (``cand_t2i_rank``, …)."""
        from benchmark.evaluation.retrieval import evaluate_protocols

        names = protocols(settings)
        measured = evaluate_protocols(model, split, tokenizer, device, batch_size, settings, names, self.subset_metrics)
        metrics: dict[str, float | None] = {}
        record: dict[str, Any] = {}
        items: dict[str, Any] = {}
        for position, name in enumerate(names):
            values, protocol, arrays = measured[name]
            prefix = self.prefixes[name]
            metrics |= {f"{prefix}{k}": v for k, v in values.items()}
            record |= protocol if position == 0 else {name: protocol}
            items |= {f"{prefix}{k}": v for k, v in arrays.items()}
        return metrics, record, items

    def items(self, arrays: dict[str, Any]) -> Any:
        """Each protocol's records (its prefixed arrays) as one :class:`~benchmark.metrics.bootstrap.ItemScores`;
        it also gives each metric's chance level (``chance`` / ``chance_batch``)."""

        parts = []
        for prefix in self.prefixes.values():
            if f"{prefix}t2i_rank" not in arrays:
                continue
            ks = tuple(int(k) for k in arrays[f"{prefix}ks"])
            parts.append(
                RetrievalItems(
                    arrays[f"{prefix}t2i_rank"],
                    arrays[f"{prefix}text_owner"],
                    arrays[f"{prefix}i2t_rank"],
                    ks,
                    arrays.get(f"{prefix}t2i_gallery"),
                    arrays.get(f"{prefix}i2t_gallery"),
                    prefix,
                    caption_subset=arrays.get(f"{prefix}caption_subset"),  # tagged splits (the net gap's bootstrap)
                    image_subset=arrays.get(f"{prefix}image_subset"),
                )
            )
        if not parts:
            raise ValueError(f"no retrieval item records among {sorted(arrays)}")
        return parts[0] if len(parts) == 1 else MergedItems(parts)

    def chance(self, arrays: dict[str, Any]) -> dict[str, float]:
        """metric → its chance level in the evaluation whose per-item records are ``arrays`` (one ``.items.npz``,
        or one robustness cell's): the exact expectation of a uniformly random ranking of each query's gallery
        (its candidate set for ``cand_`` metrics), averaged over the queries as the metric is. A corruption
        changes neither the sets nor the positives, so every cell of a robustness job has its clean chance.
        ``self.items(arrays).chance_batch(weights)`` gives it per bootstrap resample."""
        return self.items(arrays).chance()

    def reference_rows(
        self, data_dir: Path, settings: dict[str, Any]
    ) -> tuple[dict[str, dict[str, float | None]], dict[str, Any]]:

        read_manifest(data_dir)
        captions = read_captions(data_dir, "test")
        image_ids = sorted(captions)[: settings.get("max_images") or None]
        owners = [k for k, image_id in enumerate(image_ids) for _ in captions[image_id]]
        chance: dict[str, float | None] = {}
        if "all_pairs" in protocols(settings):
            chance |= chance_retrieval_metrics(owners, len(image_ids), settings["ks"])
        if "candidates" in protocols(settings):
            chance |= {f"cand_{k}": v for k, v in candidate_chance(owners, len(image_ids), settings).items()}
        return {"chance": chance}, {"chance": "analytic uniform ranking"}

    def subset_settings(self, settings: dict[str, Any], test_size: int) -> dict[str, Any]:
        """The robustness subset is already cut, so ``max_images`` must not cut it again; and it is scored by
        the main table's protocol: where the main table re-ranks an ITC shortlist (more than
        ``exhaustive_max_images`` images), so does every cell of the grid, with the same ``shortlist_k``."""
        main_images = test_size if settings.get("max_images") is None else min(settings["max_images"], test_size)
        shortlist = main_images > settings.get("exhaustive_max_images", main_images)  # absent: names only
        subset = {**settings, "max_images": None, **({"exhaustive_max_images": 0} if shortlist else {})}
        return {**subset, "protocols": ["all_pairs"]}  # validation: the learning curves and selection's mean_R

    def robustness_settings(self, settings: dict[str, Any], test_size: int) -> dict[str, Any]:
        """The subset's settings (:meth:`subset_settings`) measured by ``robustness_protocols`` (default: the
        candidate sets, linear in the split for a fusion head)."""
        return {**self.subset_settings(settings, test_size), "protocols": robustness_protocols(settings)}

    def robustness_metric(self, summary: str, measured: Any) -> str:
        """The summary metric as the grid measured it: ``cand_<summary>`` when the grid ran the candidate
        protocol and not the all-pairs one."""
        measured = set(measured)
        return f"cand_{summary}" if summary not in measured and f"cand_{summary}" in measured else summary

    def missing_modality(self, subset: Any, corruption: str, severity: int) -> dict[str, Any] | str:
        return "retrieval ranks one modality against the other; an absent item cannot be ranked"

    def chance_level(self, metric: str, items: Any | None) -> float | None:
        """The exact expectation of a uniformly random ranking of the evaluation's galleries (each query's
        candidate set for ``cand_`` metrics), from the per-item records' own ``chance()`` — the same numbers
        :meth:`chance` records as ``protocol.chance``; unknown without the records (the gallery sizes)."""
        return None if items is None else items.chance().get(metric)

    def robustness_groups(self, metric_names: list[str], summary: str) -> dict[str, list[str]]:
        """One MMI column per direction (Qiu et al. report MMI per retrieval direction), on that direction's R@K;
        the summary metric alone when the rows have no per-direction recall."""

        names = sorted(set(metric_names))
        prefix = "cand_" if summary.startswith("cand_") else ""
        by_direction = {d: [m for m in names if m.startswith(f"{prefix}{d}_R@")] for d in DIRECTIONS}
        if all(by_direction.values()):
            return by_direction
        return super().robustness_groups(names, summary)

    def forward_example(self, model: Any, example: dict[str, Any]) -> Any:
        return model.score_pairs(example)
