"""``fusebench perf``: pretraining throughput of the real training loop, against a naive loop, in one run.

Why one module over 400 lines: the naive reference loop and the real one must be measured by one
command on the same job setup; splitting them would put the comparison's two sides in two files.

Why a naive loop in the same run: a samples/s number alone says nothing about whether the loop is
fast — it depends on the machine, the model and the batch. Measured side by side on the same
machine, the same model init, the same batches and the same batch size, the ratio
optimized / naive is what the loop's optimisations buy. On CUDA the achieved TFLOP/s are also set
against a bf16 matmul peak measured in the same run (not a datasheet number, which no real step
reaches); on CPU that fraction is reported as n/a, and an fp32 matmul peak is recorded for
information only.

What is measured, per method (every method of the config with a pretraining stage, or ``--methods``):

- **optimized**: :func:`benchmark.train.loop.train` itself, as :func:`benchmark.stages.run_pretrain`
  calls it (the method built from the config by the stages' own functions, its declared objectives,
  the stateless batch sampler); ``warmup`` steps, then ``steps`` timed ones in the same call. Only
  training steps are timed: no validation points, no checkpoints.
- **naive**: the loop a first implementation would write: fp32, eager, a plain
  ``torch.optim.AdamW`` on all parameters, constant learning rate, ``loss.item()`` every step; the
  same batches, masks, objectives and gradient clipping, so the work per step is the same.
- **FLOPs per sample**: ``torch.utils.flop_counter.FlopCounterMode`` over one training step, forward
  and backward (one multiply-add = 2 FLOPs), as :func:`benchmark.train.efficiency.training_step_flops`
  counts it (the fused CPU attention's backward included),
  so CPU and GPU runs count the same. Achieved TFLOP/s = FLOPs/sample × samples/s.

The data is the config's dataset with its train split cut to two batches (a generated dataset's
scenes do not depend on the split sizes, so these are the run's first training scenes); throughput
does not depend on how many images the sampler draws from.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from benchmark.config import pretrain_dataset, resolve_methods, run_datasets, stage_spec
from benchmark.datasets import get_adapter
from benchmark.device import describe, resolve_device
from benchmark.errors import ConfigError
from benchmark.hashing import config_hash
from benchmark.io import write_json, write_text
from benchmark.provenance import provenance
from benchmark.registry import method_names, method_schedule
from benchmark.report.plots import STYLE, save
from benchmark.seeding import derive_seed, seed_everything
from benchmark.stages import prepare_pretraining, run_data, run_tokenizer
from benchmark.train.efficiency import training_step_flops
from benchmark.train.loop import OptimSettings, train, weighted_total

log = logging.getLogger("fusebench")

PERF_SEED = 0
"""The seed whose pretraining job is timed (its run seed, init and batches)."""


@dataclass(frozen=True)
class PerfOptions:
    """What ``fusebench perf`` measures (the CLI holds the defaults); ``None`` keeps the config's value."""

    steps: int  # timed steps per loop
    warmup: int  # steps run before the timed ones (first-step allocations, kernel choice, compilation)
    methods: tuple[str, ...] | None = None
    device: str | None = None
    batch_size: int | None = None
    dataset: str | None = None


@dataclass
class MethodRun:
    """One method built for its pretraining job exactly as :func:`benchmark.stages.run_pretrain` builds it."""

    method: str
    spec: dict[str, Any]  # the pretraining stage spec (device and batch size as measured)
    model: torch.nn.Module
    losses: Callable[[int], dict[str, torch.Tensor]]  # step → the method's pretraining losses on that step's batch
    weights: dict[str, float]  # the method's objective weights
    run_seed: int
    device: torch.device
    initial_state: dict[str, torch.Tensor]  # the init both loops start from

    @property
    def batch_size(self) -> int:
        return int(self.spec["optim"]["batch_size"])

    def reset(self) -> None:
        """Back to the initial weights, training mode and the job's seeded RNG state."""
        self.model.load_state_dict(self.initial_state)
        self.model.train()
        seed_everything(self.run_seed)


def perf_methods(config: dict[str, Any], requested: tuple[str, ...] | None) -> list[str]:
    """The config's methods that have a pretraining stage, or the ``requested`` ones (each checked)."""

    available = method_names()
    pretrained = [m for m in available if "pretrain" in method_schedule(m).training_stages]
    if not requested:
        return [m for m in resolve_methods(config, available) if m in pretrained]
    unknown = [m for m in requested if m not in available]
    if unknown:
        raise ConfigError(
            f"--methods names unknown method(s) {', '.join(map(repr, unknown))}; "
            f"methods with a pretraining stage: {', '.join(pretrained)}"
        )
    untrained = [m for m in requested if m not in pretrained]
    if untrained:
        raise ConfigError(
            f"--methods names method(s) without a pretraining stage {', '.join(map(repr, untrained))} "
            f"(zero-shot or fine-tuned from their own weights); choose from: {', '.join(pretrained)}"
        )
    return list(requested)


def perf_dataset(config: dict[str, Any], requested: str | None) -> str:
    """The dataset pretraining runs on: ``requested``, else the first run dataset's pretraining dataset."""
    if requested is None:
        return pretrain_dataset(config, run_datasets(config)[0])
    if requested not in config["datasets"]:
        raise ConfigError(f"--dataset {requested!r} is not configured; configured: {', '.join(config['datasets'])}")
    return requested


def measured_config(config: dict[str, Any], options: PerfOptions) -> dict[str, Any]:
    """``config`` with the device and pretraining batch size ``options`` override."""
    config = copy.deepcopy(config)
    if options.device:
        config["device"] = options.device
    if options.batch_size:
        config["pretrain"]["batch_size"] = options.batch_size
    return config


def prepare_data(config: dict[str, Any], dataset: str, workdir: Path) -> Path:
    """Build (or check) ``dataset`` with the data stage, its train split cut to two pretraining batches;
    returns the folder the stages read it from."""

    spec = stage_spec(config, "data", dataset=dataset)
    if "splits" in spec:  # a generated dataset: only as many scenes as the timed steps draw from
        train = min(spec["splits"]["train"], 2 * config["pretrain"]["batch_size"])
        spec["splits"] = {"train": train, "val": min(spec["splits"]["val"], 8), "test": min(spec["splits"]["test"], 8)}
    build_dir = workdir / dataset / "data"
    run_data(spec, build_dir)
    settings = {k: v for k, v in spec.items() if k not in ("stage", "dataset")}
    return Path(get_adapter(spec["kind"]).data_dir(settings, build_dir))


def prepare_tokenizer(config: dict[str, Any], dataset: str, method: str, data_dir: Path, workdir: Path) -> Path:
    """The tokenizer file ``method``'s pretraining reads (trained on the captions, or its text tower's own),
    written by the tokenizer stage once per distinct tokenizer spec."""

    spec = stage_spec(config, "tokenizer", dataset=dataset, method=method)
    path = workdir / "tokenizers" / f"{config_hash(spec)}.json"
    if not path.is_file():
        run_tokenizer(spec, data_dir, path)
    return path


def build_method(config: dict[str, Any], dataset: str, method: str, data_dir: Path, tokenizer: Path) -> MethodRun:
    """``method`` built for its pretraining job (seed :data:`PERF_SEED`) by ``run_pretrain``'s own setup
    (:func:`benchmark.stages.prepare_pretraining`)."""

    spec = stage_spec(config, "pretrain", dataset=dataset, method=method, seed=PERF_SEED)
    job = prepare_pretraining(spec, data_dir, tokenizer)
    if job.reason:
        raise ConfigError(f"{method} cannot be pretrained on {dataset!r}: {job.reason}")
    model = job.model
    if not model.objective_weights:
        raise ConfigError(f"{method} declares no pretraining objective; there is no pretraining step to time")
    return MethodRun(
        method=method,
        spec=spec,
        model=model,
        losses=job.losses,
        weights=model.objective_weights,
        run_seed=job.run_seed,
        device=job.session.device,
        initial_state={k: v.detach().clone() for k, v in model.state_dict().items()},
    )


def _clock(device: torch.device) -> float:
    """Wall time once the device has finished the work queued so far."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def step_flops(run: MethodRun, step: int = 0) -> float:
    """FLOPs of training step ``step``, forward and backward, on the batch and masks the loop draws, counted
    as the pretraining budget counts them (:func:`benchmark.train.efficiency.training_step_flops`)."""

    run.reset()
    torch.manual_seed(derive_seed(run.run_seed, "step", step))
    return training_step_flops(run.model, lambda _: run.losses(step), run.weights)


def optimized_seconds(run: MethodRun, steps: int, warmup: int, workdir: Path) -> tuple[float, dict[str, Any]]:
    """Seconds of ``steps`` steps of :func:`benchmark.train.loop.train` after ``warmup`` steps in the same
    call, and its report. No checkpoint is written during the run."""

    total = warmup + steps
    settings = OptimSettings(**run.spec["optim"])
    settings = dataclasses.replace(
        settings, steps=total, checkpoint_every=total, warmup_steps=min(settings.warmup_steps, total)
    )
    began: list[float] = []

    def losses(step: int) -> dict[str, torch.Tensor]:
        if step == warmup:  # the timed steps start here: everything queued by the warm-up has run
            began.append(_clock(run.device))
        return run.losses(step)

    run.reset()
    report = train(
        model=run.model,
        loss_fn=losses,
        weights=run.weights,
        settings=settings,
        device=run.device,
        run_seed=run.run_seed,
        state_path=workdir / f"{run.method}.training_state.partial.safetensors",
        spec_hash=config_hash(run.spec),
        description=f"perf {run.method} (optimized)",
    )
    return _clock(run.device) - began[0], dataclasses.asdict(report)


@contextmanager
def strict_fp32() -> Iterator[None]:
    """fp32 matmuls and convolutions without TF32, put back as they were afterwards."""
    precision, cudnn_tf32 = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(precision)
        torch.backends.cudnn.allow_tf32 = cudnn_tf32


def naive_seconds(run: MethodRun, steps: int, warmup: int) -> float:
    """Seconds of ``steps`` naive steps after ``warmup``: fp32, eager, plain AdamW, a host sync every step."""
    optim = run.spec["optim"]
    run.reset()
    model = run.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=optim["lr"], weight_decay=optim["weight_decay"])
    began = 0.0
    with strict_fp32():
        for step in range(warmup + steps):
            if step == warmup:
                began = _clock(run.device)
            torch.manual_seed(derive_seed(run.run_seed, "step", step))  # the same masks as the loop draws
            losses = run.losses(step)
            loss = weighted_total(losses, run.weights)
            optimizer.zero_grad()
            loss.backward()
            if optim["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), optim["grad_clip"])
            optimizer.step()
            loss.item()
    return _clock(run.device) - began


def matmul_peak(device: torch.device) -> dict[str, Any]:
    """Measured matmul throughput: bf16 8192³ on CUDA (the peak a step is set against), fp32 1024³ on CPU
    (for information: CPU runs report no fraction of peak)."""
    cuda = device.type == "cuda"
    size, repeats, dtype = (8192, 50, torch.bfloat16) if cuda else (1024, 10, torch.float32)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    out = torch.empty_like(a)
    for _ in range(5):  # warm-up: clocks up, kernels chosen
        torch.mm(a, b, out=out)
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        for _ in range(repeats):
            torch.mm(a, b, out=out)
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1000
    else:
        began = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b, out=out)
        seconds = time.perf_counter() - began
    tflops = 2 * size**3 * repeats / seconds / 1e12
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "size": size,
        "repeats": repeats,
        "tflops": tflops,
        "used": cuda,
    }


def measure_method(run: MethodRun, options: PerfOptions, peak: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """One row of the results: both loops' throughput, FLOPs, TFLOP/s and the fraction of the peak."""
    log.info(
        "perf %s on %s, batch %d: %d warm-up + %d timed steps, naive loop then the training loop",
        run.method,
        run.device,
        run.batch_size,
        options.warmup,
        options.steps,
    )
    flops = step_flops(run) / run.batch_size
    # naive first: the training loop may compile the model in place, and the naive loop must run it eagerly
    naive = naive_seconds(run, options.steps, options.warmup)
    optimized, report = optimized_seconds(run, options.steps, options.warmup, workdir)
    samples = options.steps * run.batch_size
    row: dict[str, Any] = {
        "method": run.method,
        "batch_size": run.batch_size,
        "run_seed": run.run_seed,
        "flops_per_sample": flops,
        "optimized_samples_per_s": samples / optimized,
        "naive_samples_per_s": samples / naive,
        "optimized_step_ms": 1000 * optimized / options.steps,
        "naive_step_ms": 1000 * naive / options.steps,
        "peak_memory_mb": report["peak_memory_mb"],
    }
    row["speedup"] = row["optimized_samples_per_s"] / row["naive_samples_per_s"]
    for loop in ("optimized", "naive"):
        row[f"{loop}_tflops"] = flops * row[f"{loop}_samples_per_s"] / 1e12
        row[f"{loop}_peak_fraction"] = row[f"{loop}_tflops"] / peak["tflops"] if peak["used"] else None
    log.info(
        "perf %s: %.1f samples/s optimized, %.1f naive (×%.2f); %.3g GFLOP/sample",
        run.method,
        row["optimized_samples_per_s"],
        row["naive_samples_per_s"],
        row["speedup"],
        flops / 1e9,
    )
    return row


def run_perf(config: dict[str, Any], options: PerfOptions, out_dir: Path) -> Path:
    """Measure every method of ``options``; write the JSON, a Markdown table and the plot; return the JSON."""

    if options.steps < 1 or options.warmup < 0:
        raise ConfigError(f"--steps must be ≥ 1 and --warmup ≥ 0 (got {options.steps} and {options.warmup})")
    config = measured_config(config, options)
    methods = perf_methods(config, options.methods)
    dataset = perf_dataset(config, options.dataset)
    device = resolve_device(config["device"])
    log.info("perf: methods %s on %s, dataset %r; results → %s", methods, device, dataset, out_dir)
    seed_everything(PERF_SEED)  # before any CUDA work, as in a job: cuBLAS reads its workspace setting once
    peak = matmul_peak(device)
    log.info("perf: %s matmul %d³: %.2f TFLOP/s measured", peak["dtype"], peak["size"], peak["tflops"])
    with tempfile.TemporaryDirectory(prefix="fusebench-perf-") as tmp:
        workdir = Path(tmp)
        data_dir = prepare_data(config, dataset, workdir)
        rows = []
        for method in methods:
            tokenizer = prepare_tokenizer(config, dataset, method, data_dir, workdir)
            run = build_method(config, dataset, method, data_dir, tokenizer)
            rows.append(measure_method(run, options, peak, workdir))
            del run
    record = {
        "provenance": _provenance(config, device),
        "settings": {
            "dataset": dataset,
            "device": str(device),
            "steps": options.steps,
            "warmup": options.warmup,
            "methods": methods,
            "naive_loop": "fp32 (no TF32), eager, torch.optim.AdamW(model.parameters()), constant lr, loss.item() "
            "every step; same batches, masks, objectives and gradient clipping",
            "flops": "torch.utils.flop_counter over one training step (forward + backward), multiply-add = 2",
        },
        "peak": peak,
        "methods": rows,
    }
    return write_results(record, out_dir)


def _provenance(config: dict[str, Any], device: torch.device) -> dict[str, Any]:

    return provenance(config_hash(config), {"device": describe(device), "seed": PERF_SEED})


def results_table(record: dict[str, Any]) -> str:
    """The rows as a Markdown table: both loops side by side, the ratio, FLOPs and the peak fraction."""

    peak = record["peak"]
    frame = pd.DataFrame(
        {
            "method": row["method"],
            "batch": row["batch_size"],
            "samples/s optimized": round(row["optimized_samples_per_s"], 1),
            "samples/s naive": round(row["naive_samples_per_s"], 1),
            "optimized/naive": f"×{row['speedup']:.2f}",
            "GFLOP/sample": round(row["flops_per_sample"] / 1e9, 4),
            "TFLOP/s optimized": f"{row['optimized_tflops']:.3g}",
            "TFLOP/s naive": f"{row['naive_tflops']:.3g}",
            f"% of {peak['dtype']} peak": (
                f"{100 * row['optimized_peak_fraction']:.1f}" if row["optimized_peak_fraction"] is not None else "n/a"
            ),
        }
        for row in record["methods"]
    )
    note = f"{peak['dtype']} matmul {peak['size']}³ measured: {peak['tflops']:.3g} TFLOP/s" + (
        "" if peak["used"] else " (for information; on CPU only the ratio to the naive loop is reported)"
    )
    return frame.to_markdown(index=False) + "\n\n" + note + "\n"


def plot_results(record: dict[str, Any], stem: Path) -> list[Path]:
    """samples/s of both loops per method (left) and their achieved TFLOP/s (right), PNG and PDF."""

    rows, peak = record["methods"], record["peak"]
    x = np.arange(len(rows))
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(1, 2, figsize=(max(7.0, 1.1 * len(rows) + 3), 3.4), layout="constrained")
        for ax, (key, label) in zip(axes, (("samples_per_s", "samples/s"), ("tflops", "achieved TFLOP/s"))):
            for offset, loop, color in ((-0.2, "optimized", "#0072B2"), (0.2, "naive", "#999999")):
                ax.bar(x + offset, [r[f"{loop}_{key}"] for r in rows], width=0.4, label=loop, color=color)
            ax.set_xticks(x, [r["method"] for r in rows], rotation=30, ha="right")
            ax.set_ylabel(label)
            ax.margins(y=0.15)  # room for the labels above the bars
        for i, row in enumerate(rows):
            axes[0].annotate(
                f"×{row['speedup']:.2f}", (i - 0.2, row["optimized_samples_per_s"]), ha="center", va="bottom"
            )
            if row["optimized_peak_fraction"] is not None:
                fraction = f"{100 * row['optimized_peak_fraction']:.1f}%"
                axes[1].annotate(fraction, (i - 0.2, row["optimized_tflops"]), ha="center", va="bottom")
        axes[0].legend(loc="upper right")
        where = record["settings"]["device"]
        peak_note = (
            f"% of the {peak['dtype']} matmul peak, {peak['tflops']:.3g} TFLOP/s" if peak["used"] else "no peak on CPU"
        )
        axes[1].set_title(f"{where}; {peak_note}", fontsize=8)
        return save(figure, stem)


def write_results(record: dict[str, Any], out_dir: Path) -> Path:
    """``perf-<device>-<UTC time>.json`` with its ``.md`` table and ``.png``/``.pdf`` plot, written atomically."""

    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = Path(out_dir) / f"perf-{record['settings']['device'].replace(':', '')}-{stamp}"
    table = results_table(record)
    plots = plot_results(record, stem)
    record["files"] = {"table": stem.with_suffix(".md").name, "plots": [p.name for p in plots]}
    write_text(stem.with_suffix(".md"), table)
    write_json(stem.with_suffix(".json"), record)
    print(table)
    log.info(
        "perf results → %s (table %s, plots %s)",
        stem.with_suffix(".json"),
        stem.with_suffix(".md").name,
        ", ".join(p.name for p in plots),
    )
    return stem.with_suffix(".json")
