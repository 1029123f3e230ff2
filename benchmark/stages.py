"""The pipeline's stages, one function each; the CLI and Snakemake call these.

Every stage takes its *spec* (see :func:`benchmark.config.stage_spec`), reads its inputs,
and writes its outputs atomically together with a result JSON carrying provenance.

Inputs cannot be mislabelled: a checkpoint records the job it belongs to (stage, method, seed,
task, dataset, and the sha256 of the tokenizer file and the data build's manifest it was trained
with), and fine-tuning, evaluation and robustness refuse one from another job before writing
anything (:func:`benchmark.train.checkpoint.check_job`). A dataset with ``pretrain_from`` is
fine-tuned from another dataset's pretraining: its ``pretrained_on`` is the dataset expected there.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmark.config import config_hash
from benchmark.errors import ConfigError, DataFileError
from benchmark.io import write_json
from benchmark.provenance import provenance
from benchmark.results import items_path, metric_rows, not_applicable_rows, write_cell_items, write_items
from benchmark.tasks import get_task

log = logging.getLogger("fusebench")


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


def dataset_note(data_dir: Path) -> dict[str, Any]:
    """What every result states about its data: official files (sha256), subset, leakage guard."""
    from benchmark.data.coco import read_manifest

    manifest = read_manifest(Path(data_dir))
    keys = ("official_format", "sources", "subset", "leakage_guard")
    return {k: manifest[k] for k in keys if manifest.get(k)}


def data_protocol(data_dir: Path, checkpoint_meta: dict[str, Any]) -> dict[str, Any]:
    """The evaluated dataset's note, and the pretraining data's (from the checkpoint's metadata) when it has one."""
    record: dict[str, Any] = {}
    if note := dataset_note(data_dir):
        record["dataset"] = note
    if pretrain := checkpoint_meta.get("pretrain_data"):
        record["pretraining_data"] = pretrain
    return record


def input_hashes(data_dir: Path, tokenizer_file: Path) -> dict[str, str]:
    """The sha256 of the tokenizer file and of the data build's manifest, as checkpoints record them."""
    from benchmark.data.coco import MANIFEST, read_manifest
    from benchmark.io import sha256_file

    read_manifest(data_dir)  # a missing or broken data build is named here, as an input error
    if not Path(tokenizer_file).is_file():
        raise DataFileError(f"tokenizer file not found: {tokenizer_file}")
    return {"tokenizer_sha256": sha256_file(Path(tokenizer_file)), "data_sha256": sha256_file(data_dir / MANIFEST)}


def _hash_sources(data_dir: Path, tokenizer_file: Path) -> dict[str, str]:
    """Where the requested hashes of :func:`input_hashes` come from, for a mismatch message."""
    from benchmark.data.coco import MANIFEST

    return {"tokenizer_sha256": f"--tokenizer {tokenizer_file}", "data_sha256": f"--data {Path(data_dir) / MANIFEST}"}


def check_init(spec: dict[str, Any], init: Path, meta: dict[str, Any], data_dir: Path, tokenizer_file: Path) -> None:
    """Fine-tuning starts from this job's pretraining: same method and seed, the dataset it is
    pretrained on (``pretrained_on``: itself, or its ``pretrain_from``), same tokenizer file, and,
    when pretrained on itself, same data build."""
    from benchmark.train.checkpoint import check_job

    pretrained_on = spec.get("pretrained_on", spec["dataset"])
    hashes = input_hashes(data_dir, tokenizer_file)
    wanted = {"stage": "pretrain", "method": spec["method"], "seed": spec["seed"], "dataset": pretrained_on}
    wanted["tokenizer_sha256"] = hashes["tokenizer_sha256"]
    if pretrained_on == spec["dataset"]:
        wanted["data_sha256"] = hashes["data_sha256"]
    sources = {"stage": "--init takes a pretrained checkpoint", **_hash_sources(data_dir, tokenizer_file)}
    if pretrained_on != spec["dataset"]:
        sources["dataset"] = f"{spec['dataset']!r} is pretrained on {pretrained_on!r}"
    check_job(init, meta, wanted, sources)


def check_finetuned(
    spec: dict[str, Any], checkpoint: Path, meta: dict[str, Any], data_dir: Path, tokenizer_file: Path
) -> None:
    """Evaluation scores this job's fine-tuned checkpoint: same method, seed, task, dataset,
    tokenizer file and data build."""
    from benchmark.train.checkpoint import check_job

    wanted = {
        "stage": "finetune",
        "method": spec["method"],
        "seed": spec["seed"],
        "task": spec["task"],
        "dataset": spec["dataset"],
        **input_hashes(data_dir, tokenizer_file),
    }
    sources = {"stage": f"{spec['stage']} takes a fine-tuned checkpoint", **_hash_sources(data_dir, tokenizer_file)}
    check_job(checkpoint, meta, wanted, sources)


def data_record_path(build_dir: Path) -> Path:
    """The data stage's result file, beside the folder a generated dataset is built into."""
    return Path(build_dir).parent / "data.result.json"


def run_data(spec: dict[str, Any], build_dir: Path) -> None:
    """Build the dataset ``spec`` describes into ``build_dir``, or check the one its adapter reads in place."""
    from benchmark.datasets import get_adapter

    started = time.perf_counter()
    adapter = get_adapter(spec["kind"])
    settings = {k: v for k, v in spec.items() if k not in ("stage", "dataset")}
    where = adapter.data_dir(settings, build_dir)
    log.info(
        "%s dataset %r (%s) at %s",
        "building" if adapter.generates else "checking",
        spec["dataset"],
        spec["kind"],
        where,
    )
    record = adapter.prepare(settings, build_dir)
    log.info("dataset %r: %s", spec["dataset"], {s: v["images"] for s, v in record["splits"].items()})
    write_json(data_record_path(build_dir), _result(spec, started, data_dir=str(where), **record))


def run_tokenizer(spec: dict[str, Any], data_dir: Path | None, out_file: Path) -> None:
    """Train the tokenizer on the training captions only; or, for a pretrained text tower (``spec["init"]``),
    write that model's own tokenizer in the same file format."""
    from benchmark.data.coco import read_captions, read_manifest
    from benchmark.data.tokenizer import export_pretrained_tokenizer, train_tokenizer
    from benchmark.io import write_text

    if "init" in spec:
        tokenizer = export_pretrained_tokenizer(spec["init"], spec["max_length"])
        write_text(out_file, tokenizer.to_str(pretty=True))
        log.info("tokenizer of %s: %d tokens → %s", spec["init"], tokenizer.get_vocab_size(), out_file)
        return
    if data_dir is None:
        raise DataFileError("fusebench tokenizer: --data is required to train a tokenizer")
    read_manifest(data_dir)
    captions = [c for caps in read_captions(data_dir, "train").values() for c in caps]
    tokenizer = train_tokenizer(captions, spec["vocab_size"], spec["max_length"])
    write_text(out_file, tokenizer.to_str(pretty=True))
    log.info("tokenizer: %d tokens from %d training captions → %s", tokenizer.get_vocab_size(), len(captions), out_file)


class _Session:
    """What training and evaluation stages share: device, data, tokenizer, method.

    ``tokenizer_file`` is None for a zero-shot method, which brings its own tokenizer (:meth:`use_method_tokenizer`).
    """

    def __init__(self, spec: dict[str, Any], data_dir: Path, tokenizer_file: Path | None, max_length: int) -> None:
        import torch

        from benchmark.data.tokenizer import load_tokenizer, special_token_ids
        from benchmark.device import resolve_device
        from benchmark.train import distributed

        self.torch = torch
        self.device = distributed.setup(resolve_device(spec["device"]))  # under torchrun: this rank's device
        self.data_dir = data_dir
        self.tokenizer: Any = None
        self.special: dict[str, int] = {}
        if tokenizer_file is not None:
            self.tokenizer = load_tokenizer(tokenizer_file, max_length)
            self.special = special_token_ids(self.tokenizer, tokenizer_file)

    def split(self, name: str) -> Any:
        from benchmark.data.dataset import load_split

        return load_split(self.data_dir, name)

    def use_method_tokenizer(self, model: Any) -> None:
        """A published model reads text through its own tokenizer; a method without one needs the run's."""
        from benchmark.errors import MethodError

        own = model.text_tokenizer() if model is not None else None
        if own is not None:
            self.tokenizer = own
        elif self.tokenizer is None and model is not None and "text" in model.modalities:
            raise MethodError(f"{model.name} is zero-shot but has no tokenizer of its own (text_tokenizer())")


def build_context(spec: dict[str, Any], session: _Session, train_split: Any) -> Any:
    """The BuildContext of a method built from ``spec`` (not from a checkpoint): pretrained towers are
    resolved from their sources (architecture, resolution, normalisation, sha256 of their files)."""
    from benchmark.data.concepts import concept_vocabulary
    from benchmark.data.grounding import attribute_vocabulary
    from benchmark.models.method import BuildContext
    from benchmark.models.pretrained import resolve_model_config

    model = resolve_model_config(spec["model"], max_length=spec["max_length"])
    image_size = model["vision"].get("image_size", train_split.image_size)  # a pretrained ViT's own resolution
    tokenizer = session.tokenizer
    vocab_size = tokenizer.get_vocab_size() if tokenizer is not None and hasattr(tokenizer, "get_vocab_size") else 0
    return BuildContext(
        model,
        image_size,
        vocab_size,
        spec["max_length"],
        session.special,
        concept_vocabulary(train_split),
        attribute_vocabulary(train_split),
        load_pretrained=True,
    )


def _zero_shot_context(spec: dict[str, Any], session: _Session) -> Any:
    """A zero-shot method's BuildContext: it reads its own weights and tokenizer, so only the image size of
    the evaluated data is filled in (no training split is read, no vocabulary learnt from it)."""
    from benchmark.data.coco import read_manifest
    from benchmark.data.dataset import image_size_of
    from benchmark.models.method import BuildContext

    return BuildContext({}, image_size_of(read_manifest(session.data_dir)), 0, 0, {})


def weights_protocol(meta: dict[str, Any], model: Any = None) -> dict[str, Any]:
    """Where external weights came from: a zero-shot model's own files, or a trained method's pretrained towers."""
    record: dict[str, Any] = {}
    if meta.get("zero_shot"):
        record["training"] = "zero-shot"
        record["weights"] = meta.get("weights", {})
    elif meta.get("weights"):  # fine-tuned from a published checkpoint
        record["weights"] = meta["weights"]
    elif sources := meta.get("context", {}).get("model", {}).get("sources"):
        record["weights"] = sources
    return record


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
    """Train ``model`` on ``losses`` (validated and, for fine-tuning, selected on the val split as ``spec``
    says, under the pretraining budget) and write its checkpoint and result."""
    from benchmark.device import describe
    from benchmark.train import distributed
    from benchmark.train.checkpoint import JOB_KEYS, save_checkpoint
    from benchmark.train.efficiency import efficiency_profile, parameter_count, training_step_flops
    from benchmark.train.loop import best_weights_path, train

    # under torchrun each rank counts its slice of the global batch
    flops_per_step = distributed.sum_over_ranks(
        training_step_flops(model, losses, weights) if weights is None or weights else None
    )
    if spec.get("compile"):  # after the FLOP count, which runs eagerly
        losses = session.torch.compile(losses, backend=spec["compile"])
    settings, budget = budgeted_settings(spec, flops_per_step)
    validation = validation_for(spec, session, model, run_seed, flops_per_step)
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
    # a partial training state resumes only with the same spec, tokenizer, data build and init
    inputs = {key: checkpoint_meta.get(key) for key in (*JOB_KEYS, "init_spec_hash")}
    resume_key = config_hash({"spec": spec, "inputs": inputs})
    report = train(
        model, losses, weights, settings, session.device, run_seed, state_path, resume_key, description, validation
    )
    if not distributed.is_main():  # rank 0 writes the checkpoint and the result
        return
    meta = {**checkpoint_meta, "spec_hash": config_hash(spec), "stage": spec["stage"]}
    if report.validation is not None:
        meta["selected_step"] = report.validation["selected_step"]
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
            budget=budget,
            parameters=efficiency["parameters"],
            efficiency={**efficiency, "flops_train_per_step": flops_per_step},
            **weights_protocol(checkpoint_meta),
        ),
    )
    state_path.unlink(missing_ok=True)
    best_weights_path(state_path).unlink(missing_ok=True)
    log.info(
        "%s done: final loss %.4f in %.1fs%s",
        description,
        report.final_losses.get("loss", float("nan")),
        report.wall_time_s,
        f"; kept step {report.validation['selected_step']} ({report.validation['rule']})" if report.validation else "",
    )


def budgeted_settings(spec: dict[str, Any], flops_per_step: float | None) -> tuple[Any, dict[str, Any]]:
    """The optimiser settings under the pretraining budget (``spec["budget"]``), and the budget's record.

    ``steps`` (the default) trains every method ``optim.steps`` steps. ``samples`` trains ``amount /
    batch_size`` steps; ``flops`` trains ``amount / flops_per_step`` steps, so a cheap method gets more steps
    than an expensive one for the same compute. Warm-up keeps its fraction of the steps.
    """
    from benchmark.train.loop import OptimSettings

    optim = dict(spec["optim"])
    budget = spec.get("budget") or {"unit": "steps"}
    unit = budget["unit"]
    if unit == "samples":
        steps = max(1, round(budget["amount"] / optim["batch_size"]))
    elif unit == "flops":
        if not flops_per_step:
            raise ValueError(f"budget: flops needs the training FLOPs of a step of {spec['method']}; none were counted")
        steps = max(1, round(budget["amount"] / flops_per_step))
    else:
        steps = optim["steps"]
    if steps != optim["steps"]:
        optim["warmup_steps"] = min(steps, round(optim["warmup_steps"] * steps / optim["steps"]))
        optim["steps"] = steps
    record = {"unit": unit, "steps": steps, "samples": steps * optim["batch_size"]}
    if flops_per_step:
        record["flops"] = steps * flops_per_step
    if unit != "steps":
        record["amount"] = budget["amount"]
    return OptimSettings(**optim), record


def validation_for(
    spec: dict[str, Any], session: _Session, model: Any, run_seed: int, flops_per_step: float | None
) -> Any:
    """The job's :class:`~benchmark.train.loop.Validation` from ``spec["validation"]``; None without one or
    without a val split.

    Pretraining is measured by its objectives on val batches and, for a method that can rank, by val
    retrieval — its learning curve, not a selection (the pretrained checkpoint is the last step's).
    Fine-tuning is measured by the task's metrics on the val subset, and with ``select`` keeps the step
    with the best summary metric. Validation evaluates in batches of the training batch size, so that a
    change of ``evaluate.batch_size`` (speed only) does not re-run training.
    """
    from benchmark.data.coco import read_manifest
    from benchmark.train.loop import Validation

    settings = spec.get("validation")
    if not settings or "val" not in read_manifest(session.data_dir)["splits"]:
        return None
    val = session.split("val").head(settings["max_images"]).untagged()
    if spec["stage"] == "pretrain":
        return Validation(
            settings["every"], _pretrain_measure(spec, session, model, val, run_seed), None, flops_per_step
        )

    def measure(trained: Any) -> dict[str, float]:
        return _val_metrics(spec["task"], settings["task_settings"], trained, val, session, spec["optim"]["batch_size"])

    return Validation(
        settings["every"], measure, f"val_{settings['metric']}" if settings["select"] else None, flops_per_step
    )


def _val_metrics(
    task_name: str, settings: dict[str, Any], model: Any, val: Any, session: _Session, batch_size: int
) -> dict[str, float]:
    """The task's metrics on the val subset ``val``, scored as the main table scores test (``settings``), as
    ``val_<metric>``; undefined ones left out."""
    task = get_task(task_name)
    subset = task.subset_settings(settings, len(val))
    metrics = task.evaluate(model, val, session.tokenizer, session.device, batch_size, subset)[0]
    return {f"val_{k}": v for k, v in metrics.items() if v is not None}


def _pretrain_measure(spec: dict[str, Any], session: _Session, model: Any, val: Any, run_seed: int) -> Any:
    """Validation of a pretraining job: each objective (and their weighted sum) on ``batches`` fixed val
    batches, and val retrieval for a method that can rank (``settings["retrieval"]``)."""
    from benchmark.data.sampling import ImageTextData
    from benchmark.device import autocast
    from benchmark.seeding import derive_seed
    from benchmark.train.loop import weighted_total

    settings = spec["validation"]
    torch = session.torch
    data = ImageTextData.from_split(val, session.tokenizer, session.device, model.ctx.concepts)
    batch_size = min(spec["optim"]["batch_size"], len(data))
    weights = model.objective_weights
    retrieval = settings.get("retrieval")
    can_rank = (
        retrieval is not None
        and (model.has_embeddings or model.has_pair_scorer)
        and "retrieval" in model.tasks
        and not model.not_applicable_reason("retrieval")
    )
    seed = derive_seed(run_seed, "validation")

    def measure(trained: Any) -> dict[str, float]:
        sums: dict[str, float] = {}
        for index in range(settings["batches"]):
            torch.manual_seed(derive_seed(seed, index))  # the same masks at every point; the loop re-seeds each step
            with autocast(session.device):
                losses = trained.pretrain_losses(data.batch(index, batch_size, seed))
            losses["loss"] = weighted_total(losses, weights)
            for name, value in losses.items():
                sums[f"val_{name}"] = sums.get(f"val_{name}", 0.0) + float(value) / settings["batches"]
        if can_rank:
            sums.update(_val_metrics("retrieval", retrieval, trained, val, session, spec["optim"]["batch_size"]))
        return sums

    return measure


@dataclass
class PretrainingJob:
    """A pretraining job set up as :func:`run_pretrain` trains it (``fusebench perf`` times the same step):
    the seeded session, the method's build context and class, and — unless ``reason`` says the method cannot
    be built on the data — the model and its training data."""

    spec: dict[str, Any]
    session: _Session
    run_seed: int
    ctx: Any
    cls: Any
    reason: str | None
    model: Any = None
    data: Any = None

    def losses(self, step: int) -> dict[str, Any]:
        """The method's pretraining losses on ``step``'s batch (this rank's slice of it under torchrun)."""
        from benchmark.train.distributed import shard

        batch = self.data.batch(step, self.spec["optim"]["batch_size"], self.run_seed)
        return self.model.pretrain_losses(shard(batch))


def check_batch_fits(spec: dict[str, Any], available: int, unit: str) -> None:
    """The job's training batch fits its built training split (``available`` ``unit``, after the subset and the
    leakage guard): a batch never holds an item twice, so a larger one could never be drawn. A configuration
    error (exit 2) naming the key, found before the first step; the configuration check finds most cases before
    any job starts (:func:`benchmark.config.validate_config`)."""
    batch_size = spec["optim"]["batch_size"]
    if batch_size > available:
        where = "pretrain" if spec["stage"] == "pretrain" else f"finetune.{spec['task']}"
        raise ConfigError(
            f"'{where}.batch_size' ({batch_size}) exceeds the {available} training {unit} of dataset "
            f"{spec['dataset']!r} as built (after its subset and leakage guard); lower it to at most {available}"
        )


def prepare_pretraining(spec: dict[str, Any], data_dir: Path, tokenizer_file: Path) -> PretrainingJob:
    """Seed the job and build its method from config (pretrained towers from their sources) and its data."""
    from benchmark.data.sampling import ImageTextData
    from benchmark.seeding import derive_seed, seed_everything

    session = _Session(spec, data_dir, tokenizer_file, spec["max_length"])
    run_seed = derive_seed("pretrain", spec["dataset"], spec["method"], spec["seed"])
    seed_everything(run_seed)
    train_split = session.split("train")
    ctx = build_context(spec, session, train_split)
    cls = _method_class(spec["method"])
    job = PretrainingJob(spec, session, run_seed, ctx, cls, cls.data_reason(ctx))
    if job.reason is None:
        job.model = cls(ctx, **spec["overrides"]).to(session.device)
        job.data = ImageTextData.from_split(train_split, session.tokenizer, session.device, ctx.concepts)
        check_batch_fits(spec, len(job.data), "images")
    return job


def run_pretrain(spec: dict[str, Any], data_dir: Path, tokenizer_file: Path, out_dir: Path) -> None:
    """Build the method from config (pretrained towers from their sources) and train it on its declared
    pretraining objectives."""
    started = time.perf_counter()
    job = prepare_pretraining(spec, data_dir, tokenizer_file)
    meta = {
        "method": spec["method"],
        "seed": spec["seed"],
        "dataset": spec["dataset"],
        **input_hashes(data_dir, tokenizer_file),
        "context": job.ctx.to_json(),
        "overrides": spec["overrides"],
    }
    if note := dataset_note(data_dir):  # official data: its files, subset and leakage guard travel with the weights
        meta["pretrain_data"] = {"dataset": spec["dataset"], **note}
    if job.reason:
        _not_applicable_checkpoint(spec, None, meta, out_dir, job.reason, started)
        return
    _train_stage(
        spec,
        job.session,
        job.model,
        job.losses,
        job.model.objective_weights,
        job.run_seed,
        out_dir,
        meta,
        started,
        profile_batch=job.data.batch(0, min(8, len(job.data)), job.run_seed),
    )


def run_finetune(spec: dict[str, Any], data_dir: Path, tokenizer_file: Path, init: Path | None, out_dir: Path) -> None:
    """Continue from the pretrained checkpoint on the task's own loss — or, for a method trained only by
    fine-tuning (``training = ("finetune",)``, no ``init``), start from the weights it builds itself
    (a published checkpoint)."""
    from benchmark.seeding import derive_seed, seed_everything
    from benchmark.train.checkpoint import read_metadata
    from benchmark.train.distributed import shard

    started = time.perf_counter()
    run_seed = derive_seed("finetune", spec["task"], spec["dataset"], spec["method"], spec["seed"])
    task = spec["task"]
    if init is None:
        seed_everything(run_seed)
        session = _Session(spec, data_dir, tokenizer_file, spec["max_length"])
        model, meta, reason = _own_weights_model(spec, session, data_dir, tokenizer_file)
    else:
        meta = read_metadata(init)
        check_init(spec, init, meta, data_dir, tokenizer_file)
        seed_everything(run_seed)
        session = _Session(spec, data_dir, tokenizer_file, meta["context"]["max_length"])
        model, meta, reason = _trained_or_reason(init, meta, session.device, task)
        meta = {**meta, **_finetune_job(spec, meta, data_dir, tokenizer_file), "init": str(init)}
    session.use_method_tokenizer(model)
    if reason:
        _not_applicable_checkpoint(spec, model, meta, out_dir, reason, started)
        return
    train_split = session.split("train")
    batch_size = spec["optim"]["batch_size"]
    data = get_task(task).training_data(train_split, session.tokenizer, session.device, model.ctx)
    check_batch_fits(spec, len(data), get_task(task).training_unit)
    _train_stage(
        spec,
        session,
        model,
        lambda step: model.task_losses(task, shard(data.batch(step, batch_size, run_seed))),
        None,
        run_seed,
        out_dir,
        meta,
        started,
    )


def _own_weights_model(
    spec: dict[str, Any], session: _Session, data_dir: Path, tokenizer_file: Path
) -> tuple[Any, dict[str, Any], str | None]:
    """A method fine-tuned without FuseBench pretraining, built from ``spec`` and its own weights; its
    checkpoint metadata (as a pretrained checkpoint's plus the fine-tuning job); why ``spec``'s task is n/a."""
    cls = _method_class(spec["method"])
    ctx = build_context(spec, session, session.split("train"))
    model = cls(ctx, **spec["overrides"]).to(session.device)
    meta = {
        "method": spec["method"],
        "context": ctx.to_json(),
        "overrides": spec["overrides"],
        **_finetune_job(spec, {}, data_dir, tokenizer_file),
        "init": "own weights",
        "weights": model.weight_sources(),
    }
    return model, meta, cls.data_reason(ctx) or model.not_applicable_reason(spec["task"])


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


def _not_applicable_checkpoint(
    spec: dict[str, Any], model: Any, meta: dict[str, Any], out_dir: Path, reason: str, started: float
) -> None:
    """A method that cannot do the task (or be built on the data): keep its weights if any, and say so."""
    from benchmark.train.checkpoint import save_checkpoint, save_not_applicable

    meta = {**meta, "spec_hash": config_hash(spec), "stage": spec["stage"], "not_applicable": reason}
    if model is None:
        save_not_applicable(out_dir / "model.safetensors", {**meta, "without_weights": True})
    else:
        save_checkpoint(out_dir / "model.safetensors", model, meta)
    described = model.describe() if model is not None else {"name": spec["method"]}
    write_json(
        out_dir / "result.json", _result(spec, started, status="not applicable", reason=reason, method=described)
    )
    log.info("%s %s: not applicable (%s)", spec.get("task", spec["stage"]), spec["method"], reason)


def _trained_or_reason(
    checkpoint: Path, meta: dict[str, Any], device: Any, task: str
) -> tuple[Any, dict[str, Any], str | None]:
    """The trained model, its metadata (``meta``, already read) and why ``task`` is not applicable; no model
    when it never could be built."""
    from benchmark.train.checkpoint import load_trained

    if meta.get("without_weights"):
        return None, meta, str(meta["not_applicable"])
    model, meta = load_trained(checkpoint, device, meta)
    return model, meta, model.not_applicable_reason(task)


def _evaluation_session(
    spec: dict[str, Any], data_dir: Path, tokenizer_file: Path | None, checkpoint: Path | None
) -> tuple[_Session, Any, dict[str, Any], str | None]:
    """Seeded session, the model to evaluate and its metadata, and why the task is n/a.

    The model is this job's fine-tuned checkpoint, or — for a zero-shot method (``spec["zero_shot"]``,
    no checkpoint) — the method built from its own published weights.
    """
    from benchmark.seeding import derive_seed, seed_everything
    from benchmark.train.checkpoint import read_metadata

    seed = derive_seed(spec["stage"], spec["task"], spec["dataset"], spec["method"], spec["seed"])
    if spec.get("zero_shot"):
        seed_everything(seed)
        session = _Session(spec, data_dir, None, 0)
        cls = _method_class(spec["method"])
        ctx = _zero_shot_context(spec, session)
        # n/a (the task, or labels this dataset lacks) is known before its weights are read
        if reason := cls.data_reason(ctx) or cls.not_applicable_reason(spec["task"]):
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
    session = _Session(spec, data_dir, tokenizer_file, meta["context"]["max_length"])
    model, meta, reason = _trained_or_reason(checkpoint, meta, session.device, spec["task"])
    session.use_method_tokenizer(model)
    return session, model, meta, reason


def _write_not_applicable(
    spec: dict[str, Any],
    started: float,
    session: _Session,
    reason: str,
    rows: list[dict[str, Any]],
    out_file: Path,
    write_records: Any,
) -> None:
    """An evaluation or robustness job whose method cannot do the task: its n/a rows, and an empty records
    file (``write_records``: the job's own kind) so that the job's outputs are complete."""
    from benchmark.device import describe

    write_records(items_path(out_file), {})
    record = _result(spec, started, describe(session.device), status="not applicable", reason=reason, rows=rows)
    write_json(out_file, {**record, "items": items_path(out_file).name})


def run_evaluate(
    spec: dict[str, Any], data_dir: Path, tokenizer_file: Path | None, checkpoint: Path | None, out_file: Path
) -> None:
    """Score the fine-tuned model on the clean test split; one row per metric."""
    from benchmark.device import describe

    started = time.perf_counter()
    task = get_task(spec["task"])
    session, model, meta, reason = _evaluation_session(spec, data_dir, tokenizer_file, checkpoint)
    if reason:
        rows = not_applicable_rows(spec, spec["method"], task.metric_names(spec), reason)
        _write_not_applicable(spec, started, session, reason, rows, out_file, write_items)
        log.info("%s %s: not applicable (%s) → %s", spec["task"], spec["method"], reason, out_file)
        return
    test = session.split("test")
    metrics, protocol, items = task.evaluate(model, test, session.tokenizer, session.device, spec["batch_size"], spec)
    rows = metric_rows(spec, spec["method"], metrics)
    protocol = {**protocol, **data_protocol(data_dir, meta), **weights_protocol(meta)}
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
    spec: dict[str, Any], data_dir: Path, tokenizer_file: Path | None, checkpoint: Path | None, out_file: Path
) -> None:
    """Re-measure the task on the robustness subset, clean and under every (corruption, severity)."""
    from benchmark.corruptions.image import table_for
    from benchmark.device import describe
    from benchmark.tasks.robustness import evaluate_robustness, grid, load_sentence_models, sentence_model_protocol

    started = time.perf_counter()
    task = get_task(spec["task"])
    names = task.metric_names(spec["task_settings"])
    session, model, meta, reason = _evaluation_session(spec, data_dir, tokenizer_file, checkpoint)
    settings = spec["robustness"]
    rows: list[dict[str, Any]] = []
    if reason:
        for corruption, severity in [("none", 0), *grid(settings)]:
            rows.extend(not_applicable_rows(spec, spec["method"], names, reason, corruption, severity))
        _write_not_applicable(spec, started, session, reason, rows, out_file, write_cell_items)
        return
    test = session.split("test")
    task_settings = task.subset_settings(spec["task_settings"], len(test))

    def evaluate(split: Any, **missing: Any) -> Any:
        return task.evaluate(
            model, split, session.tokenizer, session.device, spec["batch_size"], task_settings, **missing
        )

    sentence_models = load_sentence_models(settings, session.device)  # generative text perturbations, if any
    cell_items: dict[Any, dict[str, Any]] = {}  # (corruption, severity) → per-item records
    results = evaluate_robustness(test, task, settings, evaluate, sentence_models, items=cell_items)
    for corruption, severity, metrics, status in results:
        if metrics is None:
            rows.extend(not_applicable_rows(spec, spec["method"], names, status, corruption, severity))
        else:
            rows.extend(metric_rows(spec, spec["method"], metrics, corruption, severity))
    write_cell_items(items_path(out_file), cell_items)
    write_json(
        out_file,
        _result(
            spec,
            started,
            describe(session.device),
            rows=rows,
            items=items_path(out_file).name,
            protocol={
                "subset_images": settings["max_images"],
                "severities": settings["severities"],
                "image_corruption_table": table_for(test.image_size),
                "subset_settings": task_settings,  # the main table's protocol on the subset
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
    write_json(out_file, _result(spec, started, protocol=protocol, rows=rows))


def run_tune_select(trial_results: list[Path], out_file: Path) -> None:
    """A method's learning-rate choice from its tuning trials' fine-tuning results (val only), as choice.json."""
    from benchmark.io import read_json
    from benchmark.train.tuning import choose

    started = time.perf_counter()
    trials: dict[float, dict[str, dict[str, Any]]] = {}
    methods = set()
    for path in trial_results:
        result = read_json(path, what="tuning trial result")
        spec = result.get("spec", {})
        if "tuning_trial" not in spec:
            raise DataFileError(f"{path} is not a tuning trial's fine-tuning result (its spec has no 'tuning_trial')")
        methods.add(spec["method"])
        trials.setdefault(float(spec["tuning_trial"]), {})[spec["task"]] = result
    if len(methods) != 1:
        raise DataFileError(f"tuning trials of several methods given together: {sorted(methods)}")
    choice = {"method": methods.pop(), **choose(trials), "trial_files": [str(p) for p in trial_results]}
    spec = {"stage": "tune_select", "method": choice["method"]}
    write_json(out_file, {**_result(spec, started), **choice})
    log.info(
        "tuning %s: learning-rate factor %s (%s) → %s", choice["method"], choice["lr_factor"], choice["rule"], out_file
    )
