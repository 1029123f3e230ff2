"""One training loop for every stage and method: AdamW, warm-up + cosine, AMP, resume, validation.

Everything random in a step is a function of (run seed, step): the batch is drawn by a
stateless sampler and the global torch RNG is re-seeded at every step. A job that crashed and
resumed from its last checkpoint therefore produces the same weights, to the bit, as one that
never stopped.

The step loop never waits for the device: losses stay on it and are read (and checked for
finiteness) every :data:`HISTORY_EVERY` steps, at a checkpoint and at a validation point. A
:class:`Validation` measures the model on the validation split every ``every`` steps (and before
the first step), which gives the learning curve; with ``select`` the weights of the best point are
kept and restored at the end, so a number is never chosen on test. With a :class:`StoppingRule` of
some ``patience`` the loop stops once the watched val metric has stopped improving
(:mod:`benchmark.train.stopping`); ``steps`` is then a cap. The warm-up + cosine schedule always spans
the cap, so a job that stops early stops at a learning rate above zero, and stopping early changes no
step before it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from benchmark.device import autocast
from benchmark.seeding import derive_seed
from benchmark.train import distributed
from benchmark.train.checkpoint import (
    load_training_state,
    load_weights,
    read_metadata,
    save_checkpoint,
    save_training_state,
)
from benchmark.train.stopping import CAP, CONVERGED, EarlyStopping, StoppingRule, still_improving, trend_rise

LossFn = Callable[[int], dict[str, torch.Tensor]]
HISTORY_EVERY = 10  # steps averaged into one loss-history point (and how often the loop reads losses)


@dataclass(frozen=True)
class Validation:
    """Validation during training: a learning curve, and optionally the checkpoint chosen on it.

    ``measure(model)`` returns validation metrics of the model as it is (the loop switches it to
    eval mode and back); it must not draw from the global RNG without seeding it, so that the
    training trajectory is the same with and without validation. ``select`` names the metric to
    maximise (ties: the earliest point); None keeps the last step's weights. ``flops_per_step``
    (training FLOPs of one optimiser step) adds a FLOPs axis to the curve. ``stopping`` names the metrics
    watched for early stopping and for the still-improving flag (:mod:`benchmark.train.stopping`); None
    watches ``select`` (higher is better) without stopping early.
    """

    every: int
    measure: Callable[[nn.Module], dict[str, float]]
    select: str | None = None
    flops_per_step: float | None = None
    stopping: StoppingRule | None = None

    @property
    def rule(self) -> StoppingRule | None:
        """The stopping rule in force: ``stopping``, else ``select`` watched without stopping early."""
        return self.stopping or (StoppingRule(((self.select, True),)) if self.select else None)


@dataclass(frozen=True)
class OptimSettings:
    """The ``pretrain`` / ``finetune.<task>`` config block."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    grad_clip: float
    checkpoint_every: int


@dataclass
class TrainReport:
    """What a training run measured; goes into the result file.

    ``steps`` is the cap, ``steps_used`` the steps run; ``stop_reason`` is ``converged`` (early stopping),
    ``cap`` or ``no objectives``; ``still_improving`` says whether a job stopped by its cap was still
    improving on val (:func:`benchmark.train.stopping.still_improving`; None without a watched val curve).
    """

    steps: int
    resumed_from: int
    wall_time_s: float
    samples_per_s: float
    peak_memory_mb: float
    final_losses: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    validation: dict[str, Any] | None = None
    steps_used: int = 0
    stop_reason: str = CAP
    still_improving: bool | None = None
    validation_s: float = 0.0  # seconds this process spent on validation points, the one before step 1 included


def lr_factor(step: int, settings: OptimSettings) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at ``settings.steps``."""
    if settings.warmup_steps and step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    span = max(1, settings.steps - settings.warmup_steps)
    progress = min(1.0, (step - settings.warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_scales(model: nn.Module) -> dict[str, float]:
    """Parameter name → learning-rate multiplier, from submodules that declare ``lr_scales``.

    A module (e.g. a tower with ``lr_multiplier``, :func:`benchmark.models.pretrained.apply_training_options`)
    sets ``lr_scales = {child name: multiplier}``; every parameter under that child gets the multiplier.
    """
    scales: dict[str, float] = {}
    for prefix, module in model.named_modules():
        for child, scale in (getattr(module, "lr_scales", None) or {}).items():
            base = ".".join(part for part in (prefix, child) if part)
            for name, _ in module.get_submodule(child).named_parameters():
                scales[f"{base}.{name}"] = float(scale)
    return scales


def build_optimizer(model: nn.Module, settings: OptimSettings) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms, embeddings' scalars and temperatures (ndim < 2).

    Parameters with a learning-rate multiplier (:func:`lr_scales`) get their own decay / no-decay
    groups after the two shared ones, marked ``lr_scale`` (kept in the training state, so a resumed
    run scales them too). Without multipliers there are exactly the two shared groups.
    """
    scales = lr_scales(model)
    decay, no_decay = [], []
    scaled: dict[float, tuple[list[nn.Parameter], list[nn.Parameter]]] = {}
    for name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        if param.requires_grad:
            scale = scales.get(name, 1.0)
            pair = (decay, no_decay) if scale == 1.0 else scaled.setdefault(scale, ([], []))
            (pair[0] if param.ndim >= 2 else pair[1]).append(param)
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    for scale, (scaled_decay, scaled_no_decay) in sorted(scaled.items()):
        for params, weight_decay in ((scaled_decay, settings.weight_decay), (scaled_no_decay, 0.0)):
            if params:
                groups.append(
                    {"params": params, "weight_decay": weight_decay, "lr": settings.lr * scale, "lr_scale": scale}
                )
    on_gpu = all(p.is_cuda for group in groups for p in group["params"])
    # fused (one kernel for every parameter) on CUDA; the CPU keeps the reference implementation
    return torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, 0.98), eps=1e-6, fused=True if on_gpu else None)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The scheduled learning rate on every group, times the group's ``lr_scale`` where it has one."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"] if "lr_scale" in group else lr


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource  # local: Unix-only (absent on Windows); the except below reports no peak

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    except (ImportError, OSError):
        return float("nan")


def weighted_total(losses: dict[str, torch.Tensor], weights: dict[str, float] | None) -> torch.Tensor:
    """``Σ weights[k] · losses[k]`` in fp32 — the quantity a step minimises; ``weights=None`` weighs each loss 1."""
    return sum((weights or {}).get(name, 1.0) * value.float() for name, value in losses.items())


def _read_window(window: dict[str, list[Any]], first_step: int, description: str) -> dict[str, list[float]]:
    """The window's losses as floats (one device sync); a non-finite total names its first step."""
    values = {
        name: torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in vs]).tolist() for name, vs in window.items()
    }
    for offset, total in enumerate(values.get("loss", [])):
        if not math.isfinite(total):
            raise FloatingPointError(
                f"{description}: non-finite loss at step {first_step + offset}: "
                + ", ".join(f"{k}={v[offset]:.4g}" for k, v in values.items())
            )
    return values


class _Selection:
    """The validation curve and the best point's weights (:func:`best_weights_path`, beside the training state).

    The curve travels in the training state, so a resumed job continues it; the best weights are
    written atomically whenever a point beats every earlier one, and carry their step, which is checked
    before they are restored.
    """

    def __init__(
        self,
        validation: Validation,
        curve: list[dict[str, float]],
        path: Path,
        batch_size: int,
        stopping: dict[str, Any] | None = None,
    ) -> None:
        self.validation = validation
        self.curve = curve
        self.path = path
        self.batch_size = batch_size
        rule = validation.rule
        self.stopping = EarlyStopping(rule, stopping) if rule is not None else None
        self.seconds = 0.0  # spent measuring points in this process (the floor report's validation time)

    def best(self) -> dict[str, float] | None:
        metric = self.validation.select
        points = [p for p in self.curve if metric is not None and math.isfinite(p.get(metric, math.nan))]
        return max(points, key=lambda p: (p[metric], -p["step"])) if points else None

    def measure(self, model: nn.Module, step: int) -> None:
        began = time.perf_counter()
        was_training = model.training
        model.eval()
        with torch.no_grad():
            metrics = self.validation.measure(model)
        model.train(was_training)
        point: dict[str, float] = {"step": step, "samples": step * self.batch_size}
        if self.validation.flops_per_step is not None:
            point["flops"] = step * self.validation.flops_per_step
        point.update({k: float(v) for k, v in metrics.items() if v is not None})
        previous = self.best()
        self.curve.append(point)
        if self.stopping is not None:
            self.stopping.update(point)
        metric = self.validation.select
        if metric is not None:
            if metric not in point:
                raise KeyError(f"validation metric {metric!r} not measured; got {sorted(metrics)}")
            improved = math.isfinite(point[metric]) and (previous is None or point[metric] > previous[metric])
            if improved and distributed.is_main():  # rank 0 alone keeps the best weights
                save_checkpoint(self.path, model, {"step": step, metric: point[metric]})
        self.seconds += time.perf_counter() - began

    @property
    def converged(self) -> bool:
        """Whether early stopping ends the job at the point just measured."""
        return self.stopping is not None and self.stopping.converged

    def still_improving(self, stop_reason: str) -> bool | None:
        """At the cap, whether the watched curve was still improving; False when converged."""
        if self.stopping is None:
            return None
        return False if stop_reason == CONVERGED else still_improving(self.curve, self.stopping.rule)

    def restore(self, model: nn.Module, last_step: int) -> dict[str, Any]:
        """Load the selected weights into ``model`` (unless they are the last step's); the selection record."""
        record: dict[str, Any] = {"every": self.validation.every, "curve": self.curve}
        if self.stopping is not None:
            rule = self.stopping.rule
            record["stopping"] = {
                **rule.describe(),
                **self.stopping.state(),
                "trend_rise": trend_rise(self.curve, rule),
            }
        best = self.best()
        if best is None:
            return {**record, "selected_step": last_step, "rule": "last step (no selection)"}
        metric = self.validation.select
        record.update({"metric": metric, "selected_step": int(best["step"]), "rule": f"highest {metric}"})
        record["selected_value"] = best[metric]
        if best["step"] != last_step:
            saved = read_metadata(self.path).get("step")
            if saved != best["step"]:
                raise RuntimeError(
                    f"{self.path} holds step {saved}, but the best validation point is step {best['step']}"
                )
            load_weights(model, self.path)
        return record


def train(
    model: nn.Module,
    loss_fn: LossFn,
    weights: dict[str, float] | None,
    settings: OptimSettings,
    device: torch.device,
    run_seed: int,
    state_path: str | Path,
    spec_hash: str,
    description: str,
    validation: Validation | None = None,
) -> TrainReport:
    """Minimise ``Σ weights[k] · loss_fn(step)[k]`` for ``settings.steps`` steps.

    ``weights=None`` weighs every returned loss 1 (task fine-tuning); otherwise a returned loss
    without a weight is an error, so a method cannot silently train on an undeclared objective.

    ``state_path`` is where resumable training states go; the caller removes it (and
    :func:`best_weights_path`) once the final checkpoint is safely written.

    Under ``torchrun`` (:mod:`benchmark.train.distributed`) ``loss_fn`` computes this rank's slice of
    the global batch: the step runs through DDP, the losses read are the ranks' means, and only rank 0
    writes files.

    With ``validation.stopping`` of some patience the loop ends at the validation point where the rule
    says converged (:mod:`benchmark.train.stopping`); ``settings.steps`` is then the cap.
    """
    state_path = Path(state_path)
    if weights is not None and not weights:  # the method declares no objective for this stage
        model.to(device).eval()
        return TrainReport(
            steps=0,
            resumed_from=0,
            wall_time_s=0.0,
            samples_per_s=float("nan"),
            peak_memory_mb=_peak_memory_mb(device),
            final_losses={},
            stop_reason="no objectives",
        )
    model.to(device).train()
    optimizer = build_optimizer(model, settings)
    start, progress_state = load_training_state(state_path, model, optimizer, spec_hash) or (0, {})
    history: list[dict[str, float]] = progress_state.get("history", [])
    window: dict[str, list[Any]] = progress_state.get("window", {})
    window_start = progress_state.get("window_start", start)
    selection = None
    if validation is not None:
        selection = _Selection(
            validation,
            progress_state.get("curve", []),
            best_weights_path(state_path),
            settings.batch_size,
            progress_state.get("stopping"),
        )
        if start == 0:
            selection.measure(model, 0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_fn = distributed.wrap_for_ddp(model, loss_fn)  # loss_fn itself in one process
    began = time.perf_counter()
    progress = tqdm(
        range(start, settings.steps),
        desc=description,
        initial=start,
        total=settings.steps,
        mininterval=5.0,
        unit="step",
        dynamic_ncols=True,
        disable=not distributed.is_main(),
    )
    read: dict[str, list[float]] = {}  # the window's losses read back from the device, once per sync
    done = start
    stop_reason = CAP
    for step in progress:
        torch.manual_seed(derive_seed(run_seed, "step", step))
        set_lr(optimizer, settings.lr * lr_factor(step, settings))
        with autocast(device):
            losses = step_fn(step)
        if weights is not None and set(losses) - set(weights):
            raise RuntimeError(
                f"{description}: loss(es) {sorted(set(losses) - set(weights))} returned "
                f"but not declared in the method's objectives {weights}"
            )
        total = weighted_total(losses, weights)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if settings.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        for name, value in {**losses, "loss": total}.items():
            window.setdefault(name, []).append(value.detach())
        done = step + 1
        history_point = done % HISTORY_EVERY == 0 or done == settings.steps
        checkpoint = done % settings.checkpoint_every == 0 and done < settings.steps
        validate = selection is not None and (done % selection.validation.every == 0 or done == settings.steps)
        if history_point or checkpoint or validate:
            read = _read_window(distributed.mean_over_ranks(window), window_start, description)  # the only sync
        if validate:
            selection.measure(model, done)
            if distributed.rank_zero_says(selection.converged) and done < settings.steps:
                stop_reason = CONVERGED
        if history_point or stop_reason == CONVERGED:
            point = {"step": done, **{k: sum(v) / len(v) for k, v in read.items()}}
            history.append(point)
            progress.set_postfix(loss=f"{point['loss']:.4f}", refresh=False)
            window, window_start, read = {}, done, {}
        if stop_reason == CONVERGED:
            break
        if checkpoint and distributed.is_main():
            progress_state = {"history": history, "window": read, "window_start": window_start}
            if selection is not None:
                progress_state["curve"] = selection.curve
                if selection.stopping is not None:
                    progress_state["stopping"] = selection.stopping.state()
            save_training_state(state_path, model, optimizer, done, spec_hash, progress_state)
    progress.close()
    elapsed = time.perf_counter() - began
    ran = done - start
    # only rank 0 keeps the best weights (and deletes them once its checkpoint is written): only it restores them
    record = selection.restore(model, done) if selection is not None and distributed.is_main() else None
    model.eval()
    return TrainReport(
        steps=settings.steps,
        resumed_from=start,
        wall_time_s=elapsed,
        samples_per_s=ran * settings.batch_size / elapsed if elapsed > 0 and ran else float("nan"),
        peak_memory_mb=_peak_memory_mb(device),
        final_losses={k: v for k, v in (history[-1] if history else {}).items() if k != "step"},
        history=history,
        validation=record,
        steps_used=done,
        stop_reason=stop_reason,
        still_improving=selection.still_improving(stop_reason) if selection is not None else None,
        validation_s=selection.seconds if selection is not None else 0.0,
    )


def best_weights_path(state_path: str | Path) -> Path:
    """Where the best validation point's weights are kept while a job runs (beside its training state)."""
    state_path = Path(state_path)
    name = state_path.name
    return state_path.with_name(
        name.replace("training_state", "best_weights") if "training_state" in name else f"best_weights.{name}"
    )
