"""Efficiency facts recorded with every trained method: parameters and forward FLOPs.

FLOPs are counted with ``torch.utils.flop_counter`` (one multiply-add = 2 FLOPs). torch has no
formula for the fused CPU attention kernel, so we register the standard scaled-dot-product
count for it; CPU and GPU runs then report the same number for the same model.
Throughput (samples/s) and peak memory come from the training loop (``TrainReport``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import flop_counter

from benchmark.tasks import get_task, task_names
from benchmark.train.loop import weighted_total

_REGISTERED = False


def _register_cpu_attention() -> None:
    """FLOP formulas for the fused CPU attention kernel, forward and backward, which torch's counter lacks:
    torch's own scaled-dot-product counts, as for the GPU kernels. Without the backward one every CPU
    attention layer's backward would count 0 FLOPs, and a CPU training step less than the same step on a GPU."""
    global _REGISTERED
    if _REGISTERED:
        return
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None and op not in flop_counter.flop_registry:

        @flop_counter.register_flop_formula(op)
        def _cpu_sdpa(query_shape, key_shape, value_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
            return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

    backward = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if backward is not None and backward not in flop_counter.flop_registry:

        @flop_counter.register_flop_formula(backward)
        def _cpu_sdpa_backward(grad_out_shape, query_shape, key_shape, value_shape, *args: Any, **kwargs: Any) -> int:
            return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)

    _REGISTERED = True


def forward_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the forward computation in ``fn`` (run under no_grad)."""
    _register_cpu_attention()
    with torch.no_grad(), flop_counter.FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def training_step_flops(
    model: torch.nn.Module, loss_fn: Callable[[int], dict[str, torch.Tensor]], weights: dict[str, float] | None
) -> float:
    """FLOPs of one optimiser step's forward and backward (step 0's batch), counted, not estimated as 3× forward.

    The x-axis of the learning curves and the unit of the ``flops`` pretraining budget. Gradients are cleared
    afterwards; the training loop re-seeds the RNG at every step, so counting changes no trained weight.
    """
    _register_cpu_attention()
    with flop_counter.FlopCounterMode(display=False) as counter:
        total = weighted_total(loss_fn(0), weights)
        if total.requires_grad:
            total.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def trainable_parameter_count(model: torch.nn.Module) -> int:
    """Parameters the optimiser updates (a frozen pretrained tower's are left out): what matched capacity compares."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameter_profile(model: torch.nn.Module) -> dict[str, int]:
    """``parameters`` and ``trainable_parameters`` of ``model``, as the training result records them."""
    return {"parameters": parameter_count(model), "trainable_parameters": trainable_parameter_count(model)}


def efficiency_profile(model: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """Parameters, FLOPs per pretraining sample, and per task the FLOPs of one example (``Task.efficiency``)."""
    size = batch["image"].shape[0]
    was_training = model.training
    model.eval()
    profile: dict[str, Any] = dict(parameter_profile(model))
    if model.objective_weights:
        profile["flops_pretrain_forward_per_sample"] = forward_flops(lambda: model.pretrain_losses(batch)) / size
    one = {"image": batch["image"][:1], "text": {k: v[:1] for k, v in batch["text"].items()}}
    for name in task_names():  # in task order, so the efficiency table's columns keep their order
        task = get_task(name)
        if name in model.tasks and task.efficiency:
            profile[task.efficiency[0]] = forward_flops(lambda task=task: task.forward_example(model, one))
    model.train(was_training)
    return profile
