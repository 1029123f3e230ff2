"""The evaluation stages: the test split, the robustness grid, and a task's reference rows."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from benchmark.corruptions.image import frost_photo_digests, table_for
from benchmark.device import describe
from benchmark.errors import DataFileError
from benchmark.io import write_json
from benchmark.registry import built_from
from benchmark.results import items_path, metric_rows, not_applicable_rows, write_cell_items, write_items
from benchmark.robustness.grid import evaluate_robustness, grid, load_sentence_models, sentence_model_protocol
from benchmark.seeding import derive_seed, seed_everything
from benchmark.stages.inputs import check_finetuned
from benchmark.stages.records import data_protocol, result_record, weights_protocol
from benchmark.stages.session import Session, method_class, trained_or_reason, zero_shot_context
from benchmark.tasks import get_task
from benchmark.train.checkpoint import read_metadata

log = logging.getLogger("fusebench")


def _evaluation_session(
    spec: dict[str, Any], data_dir: Path, tokenizer_file: Path | None, checkpoint: Path | None
) -> tuple[Session, Any, dict[str, Any], str | None]:
    """Seeded session, the model to evaluate and its metadata, and why the task is n/a.

    The model is this job's fine-tuned checkpoint, or — for a zero-shot method (``spec["zero_shot"]``,
    no checkpoint) — the method built from its own published weights.
    """

    # evaluation's draws (corruptions, missing modalities, matching negatives) are seeded by their own parts,
    # none by the method; the global seed leaves the method out too (common random numbers)
    seed = derive_seed(spec["stage"], spec["task"], spec["dataset"], spec["seed"])
    if spec.get("zero_shot"):
        seed_everything(seed)
        session = Session(spec, data_dir, None, 0)
        cls = method_class(built_from(spec))
        ctx = zero_shot_context(spec, session)
        # n/a (the task, or labels this dataset lacks) is known before its weights are read
        if reason := cls.data_reason(ctx) or get_task(spec["task"]).not_applicable_reason(cls):
            return session, None, {"method": spec["method"], "zero_shot": True, "without_weights": True}, reason
        model = cls(ctx, **spec["overrides"]).to(session.device).eval()
        session.use_method_tokenizer(model)
        meta = {"method": spec["method"], "zero_shot": True, "weights": model.weight_sources()}
        log.info("%s: zero-shot, weights %s", spec["method"], {k: v.get("source") for k, v in meta["weights"].items()})
        return session, model, meta, None
    if checkpoint is None or tokenizer_file is None:
        raise DataFileError(f"{spec['stage']} of {spec['method']}: --checkpoint and --tokenizer are required")
    meta = read_metadata(checkpoint)
    check_finetuned(spec, checkpoint, meta, data_dir, tokenizer_file)
    seed_everything(seed)
    session = Session(spec, data_dir, tokenizer_file, meta["context"]["max_length"])
    model, meta, reason = trained_or_reason(checkpoint, meta, session.device, spec["task"])
    session.use_method_tokenizer(model)
    return session, model, meta, reason


def _write_not_applicable(
    spec: dict[str, Any],
    started: float,
    session: Session,
    reason: str,
    rows: list[dict[str, Any]],
    out_file: Path,
    write_records: Any,
) -> None:
    """An evaluation or robustness job whose method cannot do the task: its n/a rows, and an empty records
    file (``write_records``: the job's own kind) so that the job's outputs are complete."""

    write_records(items_path(out_file), {})
    record = result_record(spec, started, describe(session.device), status="not applicable", reason=reason, rows=rows)
    write_json(out_file, {**record, "items": items_path(out_file).name})


def run_evaluate(
    spec: dict[str, Any], data_dir: Path, tokenizer_file: Path | None, checkpoint: Path | None, out_file: Path
) -> None:
    """Score the fine-tuned model on the clean test split; one row per metric."""

    started = time.perf_counter()
    task = get_task(spec["task"])
    session, model, meta, reason = _evaluation_session(spec, data_dir, tokenizer_file, checkpoint)
    if reason:
        rows = not_applicable_rows(spec, spec["method"], task.metric_names(spec), reason)
        _write_not_applicable(spec, started, session, reason, rows, out_file, write_items)
        log.info("%s %s: not applicable (%s) → %s", spec["task"], spec["method"], reason, out_file)
        return
    test = session.split("test")
    evaluation_started = time.perf_counter()
    metrics, protocol, items = task.evaluate(model, test, session.tokenizer, session.device, spec["batch_size"], spec)
    phases = {"setup_s": evaluation_started - started, "evaluation_s": time.perf_counter() - evaluation_started}
    rows = metric_rows(spec, spec["method"], metrics)
    chance = task.chance(items)  # metric → chance level (retrieval: of the whole gallery, of each candidate set)
    protocol = {**protocol, **({"chance": chance} if chance else {}), **data_protocol(data_dir, meta)}
    protocol |= weights_protocol(meta)
    write_items(items_path(out_file), items)
    write_json(
        out_file,
        result_record(
            spec,
            started,
            describe(session.device),
            phases,
            protocol=protocol,
            rows=rows,
            items=items_path(out_file).name,
        ),
    )
    log.info(
        "%s %s seed=%s: %s → %s",
        spec["task"],
        spec["method"],
        spec["seed"],
        ", ".join(f"{k}={v:.3f}" for k, v in metrics.items() if v is not None),
        out_file,
    )


def run_robustness(
    spec: dict[str, Any], data_dir: Path, tokenizer_file: Path | None, checkpoint: Path | None, out_file: Path
) -> None:
    """Re-measure the task on the robustness subset, clean and under every (corruption, severity)."""

    started = time.perf_counter()
    task = get_task(spec["task"])
    names = task.metric_names(
        task.robustness_settings(spec["task_settings"], 0)
    )  # the test size: no name depends on it
    session, model, meta, reason = _evaluation_session(spec, data_dir, tokenizer_file, checkpoint)
    settings = spec["robustness"]
    rows: list[dict[str, Any]] = []
    if reason:
        for corruption, severity in [("none", 0), *grid(settings)]:
            rows.extend(not_applicable_rows(spec, spec["method"], names, reason, corruption, severity))
        _write_not_applicable(spec, started, session, reason, rows, out_file, write_cell_items)
        return
    test = session.split("test")
    # the dataset names the retrieval candidate sets' draw (benchmark.evaluation.candidates), as in evaluation
    task_settings = {**task.robustness_settings(spec["task_settings"], len(test)), "dataset": spec["dataset"]}

    def evaluate(split: Any, **missing: Any) -> Any:
        return task.evaluate(
            model, split, session.tokenizer, session.device, spec["batch_size"], task_settings, **missing
        )

    sentence_models = load_sentence_models(settings, session.device)  # generative text perturbations, if any
    cell_items: dict[Any, dict[str, Any]] = {}  # (corruption, severity) → per-item records
    evaluation_started = time.perf_counter()
    results = evaluate_robustness(test, task, settings, evaluate, sentence_models, items=cell_items)
    phases = {"setup_s": evaluation_started - started, "evaluation_s": time.perf_counter() - evaluation_started}
    for corruption, severity, metrics, status in results:
        if metrics is None:
            rows.extend(not_applicable_rows(spec, spec["method"], names, status, corruption, severity))
        else:
            rows.extend(metric_rows(spec, spec["method"], metrics, corruption, severity))
    write_cell_items(items_path(out_file), cell_items)
    write_json(
        out_file,
        result_record(
            spec,
            started,
            describe(session.device),
            phases,
            rows=rows,
            items=items_path(out_file).name,
            protocol={
                "subset_images": settings["max_images"],  # null: the whole test split
                "severities": settings["severities"],
                "image_corruption_table": table_for(test.image_size),
                "subset_settings": task_settings,  # the grid's protocol on the subset
                # metric → chance level of the clean cell, the same in every cell (Task.chance; none: {})
                "chance": task.chance(cell_items[("none", 0)]) if ("none", 0) in cell_items else {},
                # ImageNet-C's frost photographs, read from the imagecorruptions package: their sha256
                **(
                    {"frost_photographs": frost_photo_digests()} if any(c == "frost" for c, _ in grid(settings)) else {}
                ),
                **sentence_model_protocol(sentence_models),
                **data_protocol(data_dir, meta),
                **weights_protocol(meta),
            },
        ),
    )
    log.info(
        "robustness %s %s seed=%s: %d (corruption, severity) cells → %s",
        spec["task"],
        spec["method"],
        spec["seed"],
        len(results) - 1,
        out_file,
    )


def run_reference(spec: dict[str, Any], data_dir: Path, out_file: Path) -> None:
    """The task's reference rows, which need no training (see each task's ``references``)."""
    started = time.perf_counter()
    references, protocol = get_task(spec["task"]).reference_rows(data_dir, spec)
    spec_rows = {**spec, "seed": None}
    rows = [r for name, metrics in references.items() for r in metric_rows(spec_rows, name, metrics)]
    write_json(out_file, result_record(spec, started, protocol=protocol, rows=rows))
