"""The pretraining stage: build a method from config (pretrained towers from their sources) and train its objectives."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmark.data.sampling import ImageTextData
from benchmark.registry import built_from
from benchmark.seeding import derive_seed, method_seed, seed_everything
from benchmark.stages.inputs import input_hashes
from benchmark.stages.records import dataset_note
from benchmark.stages.session import Session, build_context, method_class
from benchmark.stages.training import check_batch_fits, not_applicable_checkpoint, train_stage
from benchmark.train.distributed import shard


@dataclass
class PretrainingJob:
    """A pretraining job set up as :func:`run_pretrain` trains it (``fusebench perf`` times the same step):
    the seeded session, the method's build context and class, and — unless ``reason`` says the method cannot
    be built on the data — the model and its training data."""

    spec: dict[str, Any]
    session: Session
    run_seed: int
    ctx: Any
    cls: Any
    reason: str | None
    model: Any = None
    data: Any = None

    def losses(self, step: int) -> dict[str, Any]:
        """The method's pretraining losses on ``step``'s batch (this rank's slice of it under torchrun)."""

        batch = self.data.batch(step, self.spec["optim"]["batch_size"], self.run_seed)
        return self.model.pretrain_losses(shard(batch))


def prepare_pretraining(spec: dict[str, Any], data_dir: Path, tokenizer_file: Path) -> PretrainingJob:
    """Seed the job and build its method from config (pretrained towers from their sources) and its data."""

    session = Session(spec, data_dir, tokenizer_file, spec["max_length"])
    # common random numbers: no method in the run seed (data order, per-step masks and negatives, validation
    # batches) nor in the towers' initialisation seed; only the method's own heads draw from a seed with it
    run_seed = derive_seed("pretrain", spec["dataset"], spec["seed"])
    cls = method_class(built_from(spec))
    seed_everything(method_seed(run_seed, cls))
    train_split = session.split("train")
    ctx = replace(build_context(spec, session, train_split), init_seed=derive_seed(run_seed, "init"))
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
        **({"base_method": spec["base_method"]} if "base_method" in spec else {}),
        "seed": spec["seed"],
        "dataset": spec["dataset"],
        **input_hashes(data_dir, tokenizer_file),
        "context": job.ctx.to_json(),
        "overrides": spec["overrides"],
    }
    if note := dataset_note(data_dir):  # official data: its files, subset and leakage guard travel with the weights
        meta["pretrain_data"] = {"dataset": spec["dataset"], **note}
    if job.reason:
        not_applicable_checkpoint(spec, None, meta, out_dir, job.reason, started)
        return
    train_stage(
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
