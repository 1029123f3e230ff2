"""The fine-tuning stage: a task's loss, from the run's pretrained checkpoint or from a method's own weights."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmark.registry import built_from
from benchmark.seeding import derive_seed, method_seed, seed_everything
from benchmark.stages.inputs import check_init, input_hashes
from benchmark.stages.session import Session, build_context, method_class, trained_or_reason
from benchmark.stages.training import check_batch_fits, not_applicable_checkpoint, train_stage
from benchmark.tasks import get_task
from benchmark.train.checkpoint import read_metadata
from benchmark.train.distributed import shard


def run_finetune(spec: dict[str, Any], data_dir: Path, tokenizer_file: Path, init: Path | None, out_dir: Path) -> None:
    """Continue from the pretrained checkpoint on the task's own loss — or, for a method trained only by
    fine-tuning (``training = ("finetune",)``, no ``init``), start from the weights it builds itself
    (a published checkpoint)."""

    started = time.perf_counter()
    # common random numbers: no method in the run seed (data order, per-step draws, validation), as in pretraining
    run_seed = derive_seed("finetune", spec["task"], spec["dataset"], spec["seed"])
    task = spec["task"]
    if init is None:
        seed_everything(method_seed(run_seed, method_class(built_from(spec))))
        session = Session(spec, data_dir, tokenizer_file, spec["max_length"])
        model, meta, reason = _own_weights_model(spec, session, data_dir, tokenizer_file, run_seed)
    else:
        meta = read_metadata(init)
        check_init(spec, init, meta, data_dir, tokenizer_file)
        seed_everything(method_seed(run_seed, method_class(built_from(spec))))
        session = Session(spec, data_dir, tokenizer_file, meta["context"]["max_length"])
        model, meta, reason = trained_or_reason(init, meta, session.device, task)
        meta = {**meta, **_finetune_job(spec, meta, data_dir, tokenizer_file), "init": str(init)}
    session.use_method_tokenizer(model)
    if reason:
        not_applicable_checkpoint(spec, model, meta, out_dir, reason, started)
        return
    train_split = session.split("train")
    batch_size = spec["optim"]["batch_size"]
    data = get_task(task).training_data(train_split, session.tokenizer, session.device, model.ctx)
    check_batch_fits(spec, len(data), get_task(task).training_unit)
    train_stage(
        spec,
        session,
        model,
        lambda step: get_task(task).losses(model, shard(data.batch(step, batch_size, run_seed))),
        None,
        run_seed,
        out_dir,
        meta,
        started,
    )


def _own_weights_model(
    spec: dict[str, Any], session: Session, data_dir: Path, tokenizer_file: Path, run_seed: int
) -> tuple[Any, dict[str, Any], str | None]:
    """A method fine-tuned without FuseBench pretraining, built from ``spec`` and its own weights (towers it
    initialises drawn from ``run_seed``'s shared initialisation seed); its checkpoint metadata (as a pretrained
    checkpoint's plus the fine-tuning job); why ``spec``'s task is n/a."""

    cls = method_class(built_from(spec))
    ctx = replace(build_context(spec, session, session.split("train")), init_seed=derive_seed(run_seed, "init"))
    model = cls(ctx, **spec["overrides"]).to(session.device)
    meta = {
        "method": spec["method"],
        **({"base_method": spec["base_method"]} if "base_method" in spec else {}),
        "context": ctx.to_json(),
        "overrides": spec["overrides"],
        **_finetune_job(spec, {}, data_dir, tokenizer_file),
        "init": "own weights",
        "weights": model.weight_sources(),
    }
    return model, meta, cls.data_reason(ctx) or get_task(spec["task"]).not_applicable_reason(model)


def _finetune_job(
    spec: dict[str, Any], init_meta: dict[str, Any], data_dir: Path, tokenizer_file: Path
) -> dict[str, Any]:
    """What a fine-tuned checkpoint records of its job, on top of its pretraining's metadata."""
    job = {
        "seed": spec["seed"],
        "task": spec["task"],
        "dataset": spec["dataset"],
        "pretrained_on": init_meta.get("dataset", spec.get("pretrained_on", spec["dataset"])),
        "init_spec_hash": init_meta.get("spec_hash"),
        **input_hashes(data_dir, tokenizer_file),
    }
    if "data_sha256" in init_meta:
        job["pretrain_data_sha256"] = init_meta["data_sha256"]
    return job
