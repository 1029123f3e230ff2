"""The pipeline's stages, one function each; the CLI and Snakemake call these.

Every stage takes its *spec* (see :func:`benchmark.config.stage_spec`), reads its inputs,
and writes its outputs atomically together with a result JSON carrying provenance.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmark.config import config_hash
from benchmark.errors import DataFileError
from benchmark.io import write_json
from benchmark.provenance import provenance

log = logging.getLogger("fusebench")


def task_metrics(task: str, settings: dict[str, Any]) -> list[str]:
    """The metric names a task reports with these settings (used for 'not applicable' rows)."""
    if task == "retrieval":
        return [f"{d}_R@{k}" for d in ("t2i", "i2t") for k in settings["ks"]] + ["mean_R"]
    if task == "grounding":
        from benchmark.metrics.detection import COCO_STATS

        return [*COCO_STATS, "mIoU", "Acc@0.5", "N-acc"]
    raise ValueError(f"unknown task {task!r}")


UNDEFINED = "undefined: no ground truth of this kind in the test set"


def metric_rows(spec: dict[str, Any], method: str, metrics: dict[str, float | None]) -> list[dict[str, Any]]:
    """Rows for computed metrics; a None value (e.g. COCO AP_large without large objects) is marked undefined."""
    return [
        _row(spec, method, name, value, "ok" if value is not None else UNDEFINED) for name, value in metrics.items()
    ]


def _row(
    spec: dict[str, Any],
    method: str,
    metric: str,
    value: float | None,
    status: str = "ok",
    corruption: str = "none",
    severity: int = 0,
) -> dict[str, Any]:
    """One row of the tidy results table."""
    return {
        "dataset": spec["dataset"],
        "method": method,
        "seed": spec["seed"],
        "task": spec["task"],
        "metric": metric,
        "corruption": corruption,
        "severity": severity,
        "value": value,
        "status": status,
    }


def _result(
    spec: dict[str, Any], started: float, device_info: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    record = {
        "spec": spec,
        "provenance": provenance(
            config_hash(spec),
            {
                "device": device_info or {"type": "cpu"},
                "seed": spec.get("seed"),
                "wall_time_s": round(time.perf_counter() - started, 3),
            },
        ),
    }
    record.update(fields)
    return record


def run_data(spec: dict[str, Any], out_dir: Path) -> None:
    """Generate the dataset described by ``spec`` into ``out_dir``."""
    from benchmark.data.synthetic import build_synthetic_dataset

    started = time.perf_counter()
    log.info("building dataset %r into %s", spec["dataset"], out_dir)
    manifest = build_synthetic_dataset({k: v for k, v in spec.items() if k not in ("stage", "dataset")}, out_dir)
    log.info("dataset %r: %s", spec["dataset"], {s: v["images"] for s, v in manifest["splits"].items()})
    write_json(out_dir.parent / "data.result.json", _result(spec, started, splits=manifest["splits"]))


def run_tokenizer(spec: dict[str, Any], data_dir: Path, out_file: Path) -> None:
    """Train the tokenizer on the training captions only."""
    from benchmark.data.coco import read_captions, read_manifest
    from benchmark.data.tokenizer import train_tokenizer
    from benchmark.io import write_text

    read_manifest(data_dir)
    captions = [c for caps in read_captions(data_dir, "train").values() for c in caps]
    tokenizer = train_tokenizer(captions, spec["vocab_size"], spec["max_length"])
    write_text(out_file, tokenizer.to_str(pretty=True))
    log.info("tokenizer: %d tokens from %d training captions → %s", tokenizer.get_vocab_size(), len(captions), out_file)


class _Session:
    """What training and evaluation stages share: device, data, tokenizer, method."""

    def __init__(self, spec: dict[str, Any], data_dir: Path, tokenizer_file: Path, max_length: int) -> None:
        import torch

        from benchmark.data.tokenizer import load_tokenizer, special_token_ids
        from benchmark.device import resolve_device

        self.torch = torch
        self.device = resolve_device(spec["device"])
        self.data_dir = data_dir
        self.tokenizer = load_tokenizer(tokenizer_file, max_length)
        self.special = special_token_ids(self.tokenizer)

    def split(self, name: str) -> Any:
        from benchmark.data.dataset import load_split

        return load_split(self.data_dir, name)


def _method_class(name: str) -> Any:
    from benchmark.registry import load_method

    return load_method(name)


def _train_stage(
    spec: dict[str, Any],
    session: _Session,
    model: Any,
    losses: Any,
    weights: dict[str, float] | None,
    run_seed: int,
    out_dir: Path,
    checkpoint_meta: dict[str, Any],
    started: float,
    profile_batch: dict[str, Any] | None = None,
) -> None:
    from benchmark.device import describe
    from benchmark.train.checkpoint import save_checkpoint
    from benchmark.train.efficiency import efficiency_profile, parameter_count
    from benchmark.train.loop import OptimSettings, train

    settings = OptimSettings(**spec["optim"])
    state_path = out_dir / "training_state.partial.safetensors"
    description = f"{spec['stage']} {spec['method']} seed={spec['seed']}" + (
        f" {spec['task']}" if spec.get("task") else ""
    )
    log.info(
        "%s on %s: %d steps, objectives %s → %s",
        description,
        session.device,
        settings.steps,
        weights or "task losses",
        out_dir,
    )
    report = train(
        model, losses, weights, settings, session.device, run_seed, state_path, config_hash(spec), description
    )
    meta = {**checkpoint_meta, "spec_hash": config_hash(spec), "stage": spec["stage"]}
    save_checkpoint(out_dir / "model.safetensors", model, meta)
    efficiency = efficiency_profile(model, profile_batch) if profile_batch else {"parameters": parameter_count(model)}
    write_json(
        out_dir / "result.json",
        _result(
            spec,
            started,
            describe(session.device),
            method=model.describe(),
            objectives=weights or "task losses, weight 1 each",
            train=asdict(report),
            parameters=efficiency["parameters"],
            efficiency=efficiency,
        ),
    )
    state_path.unlink(missing_ok=True)
    log.info(
        "%s done: final loss %.4f in %.1fs",
        description,
        report.final_losses.get("loss", float("nan")),
        report.wall_time_s,
    )


def run_pretrain(spec: dict[str, Any], data_dir: Path, tokenizer_file: Path, out_dir: Path) -> None:
    """Build the method from config and train it on its declared pretraining objectives."""
    from benchmark.data.concepts import concept_vocabulary
    from benchmark.data.grounding import attribute_vocabulary
    from benchmark.data.sampling import ImageTextData
    from benchmark.models.method import BuildContext
    from benchmark.seeding import derive_seed, seed_everything

    started = time.perf_counter()
    session = _Session(spec, data_dir, tokenizer_file, spec["max_length"])
    run_seed = derive_seed("pretrain", spec["dataset"], spec["method"], spec["seed"])
    seed_everything(run_seed)
    train_split = session.split("train")
    ctx = BuildContext(
        spec["model"],
        train_split.image_size,
        session.tokenizer.get_vocab_size(),
        spec["max_length"],
        session.special,
        concept_vocabulary(train_split),
        attribute_vocabulary(train_split),
    )
    cls = _method_class(spec["method"])
    model = cls(ctx, **spec["overrides"]).to(session.device)
    data = ImageTextData.from_split(train_split, session.tokenizer, session.device, ctx.concepts)
    batch_size = spec["optim"]["batch_size"]
    meta = {"method": spec["method"], "context": ctx.to_json(), "overrides": spec["overrides"]}
    _train_stage(
        spec,
        session,
        model,
        lambda step: model.pretrain_losses(data.batch(step, batch_size, run_seed)),
        model.objective_weights,
        run_seed,
        out_dir,
        meta,
        started,
        profile_batch=data.batch(0, min(8, len(data)), run_seed),
    )


def load_trained(checkpoint: Path, device: Any) -> tuple[Any, dict[str, Any]]:
    """Rebuild a method from a checkpoint's metadata and load its weights."""
    from benchmark.models.method import BuildContext
    from benchmark.train.checkpoint import load_weights, read_metadata

    meta = read_metadata(checkpoint)
    try:
        ctx = BuildContext.from_json(meta["context"])
        cls = _method_class(meta["method"])
    except (KeyError, TypeError) as exc:
        raise DataFileError(f"checkpoint {checkpoint} has incomplete metadata: {exc!r}") from None
    model = cls(ctx, **meta.get("overrides", {}))
    load_weights(model, checkpoint)
    return model.to(device), meta


def run_finetune(spec: dict[str, Any], data_dir: Path, tokenizer_file: Path, init: Path, out_dir: Path) -> None:
    """Continue from the pretrained checkpoint on the task's own loss."""
    from benchmark.data.sampling import ImageTextData
    from benchmark.seeding import derive_seed, seed_everything
    from benchmark.train.checkpoint import read_metadata

    started = time.perf_counter()
    run_seed = derive_seed("finetune", spec["task"], spec["dataset"], spec["method"], spec["seed"])
    seed_everything(run_seed)
    meta = read_metadata(init)
    session = _Session(spec, data_dir, tokenizer_file, meta["context"]["max_length"])
    model, meta = load_trained(init, session.device)
    if meta["method"] != spec["method"]:
        raise DataFileError(f"checkpoint {init} holds method {meta['method']!r}, not {spec['method']!r}")
    task = spec["task"]
    meta = {**meta, "init": str(init), "task": task}
    reason = model.not_applicable_reason(task)
    if reason:
        _not_applicable_checkpoint(spec, model, meta, out_dir, reason, started)
        return
    train_split = session.split("train")
    batch_size = spec["optim"]["batch_size"]
    if task == "grounding":
        from benchmark.data.grounding import GroundingData

        data: Any = GroundingData.from_split(train_split, session.tokenizer, session.device, model.ctx.attributes)
    else:
        data = ImageTextData.from_split(train_split, session.tokenizer, session.device, model.ctx.concepts)
    _train_stage(
        spec,
        session,
        model,
        lambda step: model.task_losses(task, data.batch(step, batch_size, run_seed)),
        None,
        run_seed,
        out_dir,
        meta,
        started,
    )


def _not_applicable_checkpoint(
    spec: dict[str, Any], model: Any, meta: dict[str, Any], out_dir: Path, reason: str, started: float
) -> None:
    """A method that cannot do the task: keep its weights, and say so in the result."""
    from benchmark.train.checkpoint import save_checkpoint

    save_checkpoint(
        out_dir / "model.safetensors",
        model,
        {**meta, "spec_hash": config_hash(spec), "stage": spec["stage"], "not_applicable": reason},
    )
    write_json(
        out_dir / "result.json", _result(spec, started, status="not applicable", reason=reason, method=model.describe())
    )
    log.info("%s %s: not applicable (%s)", spec["task"], spec["method"], reason)


def items_path(result_file: Path) -> Path:
    """Where the per-item records of an evaluation result live (for the bootstrap)."""
    return result_file.with_suffix(".items.npz")


def write_items(path: Path, items: dict[str, Any]) -> None:
    import numpy as np

    from benchmark.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **{k: np.asarray(v) for k, v in items.items()})


def _evaluation_session(
    spec: dict[str, Any], data_dir: Path, tokenizer_file: Path, checkpoint: Path
) -> tuple[_Session, Any, str | None]:
    """Seeded session and fine-tuned model for an evaluation stage, and why the task is n/a (if it is)."""
    from benchmark.seeding import derive_seed, seed_everything
    from benchmark.train.checkpoint import read_metadata

    seed_everything(derive_seed(spec["stage"], spec["task"], spec["dataset"], spec["method"], spec["seed"]))
    meta = read_metadata(checkpoint)
    session = _Session(spec, data_dir, tokenizer_file, meta["context"]["max_length"])
    model, _ = load_trained(checkpoint, session.device)
    return session, model, model.not_applicable_reason(spec["task"])


def _task_evaluator(task: str) -> Any:
    """The evaluation function of ``task`` (same signature for every task)."""
    if task == "grounding":
        from benchmark.tasks.grounding import evaluate_grounding

        return evaluate_grounding
    from benchmark.tasks.retrieval import evaluate_retrieval

    return evaluate_retrieval


def run_evaluate(spec: dict[str, Any], data_dir: Path, tokenizer_file: Path, checkpoint: Path, out_file: Path) -> None:
    """Score the fine-tuned model on the clean test split; one row per metric."""
    from benchmark.device import describe

    started = time.perf_counter()
    session, model, reason = _evaluation_session(spec, data_dir, tokenizer_file, checkpoint)
    if reason:
        rows = [
            _row(spec, spec["method"], name, None, f"not applicable: {reason}")
            for name in task_metrics(spec["task"], spec)
        ]
        write_items(items_path(out_file), {})
        write_json(
            out_file,
            _result(
                spec,
                started,
                describe(session.device),
                status="not applicable",
                reason=reason,
                rows=rows,
                items=items_path(out_file).name,
            ),
        )
        log.info("%s %s: not applicable (%s) → %s", spec["task"], spec["method"], reason, out_file)
        return
    test = session.split("test")
    metrics, protocol, items = _task_evaluator(spec["task"])(
        model, test, session.tokenizer, session.device, spec["batch_size"], spec
    )
    rows = metric_rows(spec, spec["method"], metrics)
    write_items(items_path(out_file), items)
    write_json(
        out_file,
        _result(spec, started, describe(session.device), protocol=protocol, rows=rows, items=items_path(out_file).name),
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
    spec: dict[str, Any], data_dir: Path, tokenizer_file: Path, checkpoint: Path, out_file: Path
) -> None:
    """Re-measure the task on the robustness subset, clean and under every (corruption, severity)."""
    from benchmark.device import describe
    from benchmark.tasks.robustness import evaluate_robustness

    started = time.perf_counter()
    session, model, reason = _evaluation_session(spec, data_dir, tokenizer_file, checkpoint)
    settings = spec["robustness"]
    rows: list[dict[str, Any]] = []
    if reason:
        from benchmark.tasks.robustness import grid

        for corruption, severity in [("none", 0), *grid(settings)]:
            rows.extend(
                _row(spec, spec["method"], name, None, f"not applicable: {reason}", corruption, severity)
                for name in task_metrics(spec["task"], spec["task_settings"])
            )
        write_json(
            out_file,
            _result(spec, started, describe(session.device), status="not applicable", reason=reason, rows=rows),
        )
        return
    evaluate_task = _task_evaluator(spec["task"])
    task_settings = {**spec["task_settings"], "max_images": None}

    def evaluate(split: Any, **missing: Any) -> Any:
        return evaluate_task(
            model, split, session.tokenizer, session.device, spec["batch_size"], task_settings, **missing
        )

    results = evaluate_robustness(model, session.split("test"), spec["task"], settings, evaluate)
    for corruption, severity, metrics, status in results:
        if metrics is None:
            rows.extend(
                _row(spec, spec["method"], name, None, status, corruption, severity)
                for name in task_metrics(spec["task"], spec["task_settings"])
            )
        else:
            rows.extend(
                _row(spec, spec["method"], name, value, "ok" if value is not None else UNDEFINED, corruption, severity)
                for name, value in metrics.items()
            )
    write_json(
        out_file,
        _result(
            spec,
            started,
            describe(session.device),
            rows=rows,
            protocol={"subset_images": settings["max_images"], "severities": settings["severities"]},
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


REFERENCE_DETECTORS = {"ref_whole_image": "whole_image", "ref_all_objects": "all_objects"}


def run_reference(spec: dict[str, Any], data_dir: Path, out_file: Path) -> None:
    """Reference rows that need no training.

    Retrieval: ``chance``, the exact expectation of a uniformly random ranking. Grounding:
    detectors that ignore the text — ``ref_whole_image`` (one box, the whole image) and
    ``ref_all_objects`` (the true box of every object in the image, an oracle detector).
    """
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    spec_rows = {**spec, "seed": None}
    if spec["task"] == "retrieval":
        from benchmark.data.coco import read_captions, read_manifest
        from benchmark.metrics.retrieval import chance_retrieval_metrics

        read_manifest(data_dir)
        captions = read_captions(data_dir, "test")
        image_ids = sorted(captions)[: spec.get("max_images") or None]
        owners = [k for k, image_id in enumerate(image_ids) for _ in captions[image_id]]
        rows = metric_rows(spec_rows, "chance", chance_retrieval_metrics(owners, len(image_ids), spec["ks"]))
        protocol: dict[str, Any] = {"chance": "analytic uniform ranking"}
    else:
        from benchmark.data.dataset import load_split
        from benchmark.metrics.detection import grounding_metrics
        from benchmark.tasks.grounding import ground_truth, reference_predictions

        test = load_split(data_dir, "test")
        targets, sizes = ground_truth(test)
        for name, kind in REFERENCE_DETECTORS.items():
            metrics = grounding_metrics(targets, reference_predictions(test, kind), sizes, spec["score_threshold"])
            rows.extend(metric_rows(spec_rows, name, metrics))
        protocol = {
            "ref_whole_image": "one box covering the image, score 1",
            "ref_all_objects": "the true box of every object in the image, score 1 (text ignored)",
        }
    write_json(out_file, _result(spec, started, protocol=protocol, rows=rows))
