"""Image↔text retrieval: recall@K in both directions, over the test images and their captions.

Protocol (details in :mod:`benchmark.evaluation.retrieval` and :mod:`benchmark.metrics.retrieval`):
every test caption is a query over the test images (``t2i``) and every test image a query over
the captions (``i2t``, a hit when *any* of its captions ranks within K); ties go to the lower
gallery index. The score comes from the method's embeddings, its fusion head on every pair, or
an ITC shortlist re-ranked by the fusion head (ALBEF/BLIP), recorded with each number. On a
compositional test split the headline metrics are also reported with the caption (t2i) or image
(i2t) queries of the seen and of the held-out subset, over the full gallery (``mean_R@held_out``,
:mod:`benchmark.metrics.compositional`).

Reference row: ``chance``, the exact expectation of a uniformly random ranking. Bootstrap unit:
an image with its captions (galleries stay fixed). Missing modality is not applicable: retrieval
ranks one modality against the other, so an absent item cannot be ranked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from benchmark.tasks.base import Task

POSITIVE_INT = {"type": "integer", "minimum": 1}


class Retrieval(Task):
    title = "image↔text retrieval"
    requires = ("images", "captions")
    table_metrics = ("t2i_R@1", "t2i_R@5", "t2i_R@10", "i2t_R@1", "i2t_R@5", "i2t_R@10", "mean_R")
    headline_metrics = ("mean_R", "t2i_R@1", "i2t_R@1")
    subset_metrics = headline_metrics
    abbreviation = "Ret"
    references: ClassVar[dict[str, str]] = {"chance": "is the exact expectation of a uniformly random ranking"}
    reference_settings = ("ks", "max_images")
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
        },
    }

    def metric_names(self, settings: dict[str, Any]) -> list[str]:
        from benchmark.metrics.retrieval import metric_names

        return metric_names(settings["ks"])

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
        from benchmark.evaluation.retrieval import evaluate_retrieval

        return evaluate_retrieval(model, split, tokenizer, device, batch_size, settings, self.subset_metrics)

    def items(self, arrays: dict[str, Any]) -> Any:
        from benchmark.metrics.bootstrap import RetrievalItems

        ks = tuple(int(k) for k in arrays["ks"])
        return RetrievalItems(arrays["t2i_rank"], arrays["text_owner"], arrays["i2t_rank"], ks)

    def reference_rows(
        self, data_dir: Path, settings: dict[str, Any]
    ) -> tuple[dict[str, dict[str, float | None]], dict[str, Any]]:
        from benchmark.data.standard_form import read_captions, read_manifest
        from benchmark.metrics.retrieval import chance_retrieval_metrics

        read_manifest(data_dir)
        captions = read_captions(data_dir, "test")
        image_ids = sorted(captions)[: settings.get("max_images") or None]
        owners = [k for k, image_id in enumerate(image_ids) for _ in captions[image_id]]
        chance = chance_retrieval_metrics(owners, len(image_ids), settings["ks"])
        return {"chance": chance}, {"chance": "analytic uniform ranking"}

    def subset_settings(self, settings: dict[str, Any], test_size: int) -> dict[str, Any]:
        """The robustness subset is already cut, so ``max_images`` must not cut it again; and it is scored by
        the main table's protocol: where the main table re-ranks an ITC shortlist (more than
        ``exhaustive_max_images`` images), so does every cell of the grid, with the same ``shortlist_k``."""
        main_images = test_size if settings["max_images"] is None else min(settings["max_images"], test_size)
        shortlist = main_images > settings["exhaustive_max_images"]
        return {**settings, "max_images": None, **({"exhaustive_max_images": 0} if shortlist else {})}

    def missing_modality(self, subset: Any, corruption: str, severity: int) -> dict[str, Any] | str:
        return "retrieval ranks one modality against the other; an absent item cannot be ranked"

    def chance_level(self, metric: str, items: Any | None) -> float | None:
        """The exact expectation of a uniformly random ranking of the evaluation's galleries
        (:func:`~benchmark.metrics.retrieval.chance_retrieval_metrics`): K / images for t2i R@K, from each
        image's caption count for i2t; unknown without the per-item records (the gallery sizes)."""
        from benchmark.metrics.retrieval import chance_retrieval_metrics

        if items is None:
            return None
        chance = chance_retrieval_metrics(items.text_owner, len(items.i2t_rank), items.ks)
        return chance.get(metric)

    def robustness_groups(self, metric_names: list[str], summary: str) -> dict[str, list[str]]:
        """One MMI column per direction (Qiu et al. report MMI per retrieval direction), on that direction's R@K;
        the summary metric alone when the rows have no per-direction recall."""
        from benchmark.metrics.retrieval import DIRECTIONS

        names = sorted(set(metric_names))
        by_direction = {d: [m for m in names if m.startswith(f"{d}_R@")] for d in DIRECTIONS}
        if all(by_direction.values()):
            return by_direction
        return super().robustness_groups(names, summary)

    def forward_example(self, model: Any, example: dict[str, Any]) -> Any:
        return model.score_pairs(example)
