"""Table footers: the data every number was computed on (files, subsets, leakage guard) and the weights it came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def source_parts(note: dict[str, Any]) -> list[str]:
    """A data build's note (:func:`benchmark.stages.dataset_note`) as footer phrases: each file read
    (sha256 prefix), then each split's subset."""
    parts = [f"{Path(path).name} sha256 {digest[:12]}" for path, digest in sorted(note.get("sources", {}).items())]
    for split, cut in sorted(note.get("subset", {}).items()):
        official = f", official {cut['official_images']:,}" if cut.get("official_images") else ""
        parts.append(f"subset {split} {cut['images']} of {cut['of_images']} images{official}")
    return parts


def data_footer(results: list[tuple[Path, dict[str, Any]]]) -> str:
    """Per dataset read from official files: its sources (sha256 prefix), subset and leakage guard; for a
    dataset pretrained on another, that dataset's files and subset too (``pretrained on coco [...]``)."""
    notes: dict[str, str] = {}
    for _, record in results:
        dataset = record.get("spec", {}).get("dataset")
        protocol = record.get("protocol", {})
        note = protocol.get("dataset")
        if not dataset or not note or dataset in notes:
            continue
        pretraining = protocol.get("pretraining_data") or {}
        parts = []
        if pretraining.get("dataset", dataset) != dataset:
            read = source_parts(pretraining)
            parts.append(f"pretrained on {pretraining['dataset']}" + (f" [{'; '.join(read)}]" if read else ""))
        parts += source_parts(note)
        guard = pretraining.get("leakage_guard") or note.get("leakage_guard") or {}
        if guard:
            parts.append(
                f"{guard['removed_train_images']} train images removed (evaluation images of "
                f"{', '.join(guard['excluded_evaluation_images_of'])})"
            )
        notes[dataset] = f"{dataset} ({'; '.join(parts)})"
    return "; ".join(notes[d] for d in sorted(notes))


def weights_footer(results: list[tuple[Path, dict[str, Any]]]) -> str:
    """Per method built from external weights: zero-shot or not, each source and its files' sha256 (prefix)."""
    notes: dict[str, str] = {}
    for _, record in results:
        method = record.get("spec", {}).get("method")
        protocol = record.get("protocol", {})
        weights = protocol.get("weights")
        if not method or not weights or method in notes:
            continue
        parts = ["zero-shot"] if protocol.get("training") == "zero-shot" else []
        for component, source in sorted(weights.items()):
            files = ", ".join(
                f"{Path(name).name} sha256 {digest[:12]}" for name, digest in sorted(source.get("files", {}).items())
            )
            parts.append(
                f"{component} from {source.get('init', source.get('source'))}" + (f" ({files})" if files else "")
            )
        notes[method] = f"{method} ({'; '.join(parts)})"
    return "; ".join(notes[m] for m in sorted(notes))
