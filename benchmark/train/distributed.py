"""Training on several devices: ``torchrun`` + DistributedDataParallel, one process per device.

One process (no ``torchrun``, ``WORLD_SIZE`` unset or 1) needs no process group, and every
function here then gives back its argument untouched, so a single-process run is the run it
always was, to the bit. Under ``torchrun --nproc_per_node N`` each of the N processes:

* joins the process group torchrun describes in its environment (``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``): NCCL on CUDA, each rank on GPU
  ``LOCAL_RANK``; gloo on the CPU (:func:`setup`);
* seeds exactly as one process would (the run seed depends on the spec only) and draws the
  same *global* batch of ``batch_size`` items for a step — the sampler is a pure function of
  (run seed, step) — then keeps its contiguous slice of it (:func:`shard`). The batch that
  is optimised is therefore the global one, the batch one process would see;
* runs the step through DDP, which averages gradients over the ranks (:func:`wrap_for_ddp`).
  For losses that are means over the batch's items, the average of the ranks' means over
  equal slices is the mean over the global batch; a contrastive loss, whose negatives are
  the other items of the batch, gathers the embeddings of every rank with their gradients
  (:mod:`benchmark.objectives.contrastive`) so that it too equals one process's loss;
* logs the ranks' mean losses, which are the global batch's (:func:`mean_over_ranks`), counts a
  step's FLOPs as the sum of the ranks' (:func:`sum_over_ranks`), and leaves every file —
  training states, best validation weights, checkpoint, result — to rank 0 (:func:`is_main`).
  Validation runs whole on every rank (the weights are the same on all of them).

Why a module around the step rather than around the model: DDP hooks into
``module.forward`` (that is where it prepares the gradient all-reduce and, with
``find_unused_parameters``, finds the parameters a step leaves unused), but methods do not
train through ``forward``: the loop calls ``loss_fn(step)``, which calls
``model.pretrain_losses(batch)`` or ``model.task_losses(task, batch)``. Wrapping the model
itself would leave DDP's forward uncalled and its gradients never averaged. :class:`_Step`
turns the step into the forward DDP needs — ``forward(step) = loss_fn(step)`` — with the
model as its only submodule, so DDP sees exactly the model's parameters and the loop, the
optimizer and the checkpoints keep using the bare model. ``find_unused_parameters`` is on
because a method's heads for other stages (e.g. grounding heads during pretraining) take no
part in a step; DDP leaves their gradients unset, as one process does.

Departures from one process, by design (each would need its own collective): losses that draw
from the global RNG inside a step (ITM's negatives, MLM/MIM masks) draw the same numbers on every
rank but over the rank's slice — equally distributed, not the same draws; ITM draws its negatives
from the rank's slice; means over a count that varies by slice (masked tokens in MLM/MIM,
positive patches in the grounding box losses) become the ranks' mean of means, not the global
mean. Contrastive-only methods (``contrastive_clip``: pretraining and retrieval fine-tuning)
train as one process does, to float rounding (``tests/test_distributed.py``).
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

LossFn = Callable[[int], dict[str, torch.Tensor]]
Batch = TypeVar("Batch")
log = logging.getLogger("fusebench")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes, as torchrun describes it."""

    rank: int = 0  # global rank: which slice of the global batch is this process's
    size: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine: which GPU is this process's


def world() -> World:
    """This process's :class:`World`, read from torchrun's environment (one process without it)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if size < 1 or not 0 <= rank < size:
        raise RuntimeError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={size}")
    return World(rank, size, local_rank)


def is_main() -> bool:
    """Whether this process writes the run's files (rank 0; always, in one process)."""
    return world().rank == 0


def setup(device: torch.device) -> torch.device:
    """Join torchrun's process group (once) and return this rank's device.

    ``device`` is the device the spec asks for (:func:`benchmark.device.resolve_device`). On CUDA
    each rank takes GPU ``LOCAL_RANK`` and the group uses NCCL; anywhere else the group uses
    gloo on the CPU. In one process nothing happens and ``device`` comes back as it was.
    """
    here = world()
    if here.size == 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", here.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if dist.is_initialized():
        if dist.get_backend() != backend:
            raise RuntimeError(f"a {dist.get_backend()} process group exists, but {device} needs {backend}")
        return device
    dist.init_process_group(
        backend, rank=here.rank, world_size=here.size, device_id=device if device.type == "cuda" else None
    )
    atexit.register(_teardown)
    log.info("rank %d of %d: joined the %s process group on %s", here.rank, here.size, backend, device)
    return device


def _teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _group_size() -> int:
    """Ranks in the live process group; 1 where there is none (one process, or before :func:`setup`)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def shard(batch: Batch) -> Batch:
    """This rank's contiguous slice of the global batch ``batch``; ``batch`` itself in one process.

    ``batch`` is a (nested) mapping of per-item entries: tensors are cut along their first
    dimension, lists and tuples by position, and anything else (strings, numbers, 0-d tensors)
    is kept whole on every rank. Rank ``r`` of ``W`` keeps items ``[r·B/W, (r+1)·B/W)``, so the
    concatenation of the ranks' slices in rank order is the global batch — the order the
    contrastive loss's gathered embeddings are in.

    Raises:
        ValueError: the batch size does not divide by the world size, or the entries disagree
            on the batch size.
        RuntimeError: torchrun's environment names several processes but :func:`setup` has not
            joined their process group (each rank would otherwise train alone on its slice).
    """
    here = world()
    if here.size == 1:
        return batch
    if _group_size() != here.size:
        raise RuntimeError(f"{here.size} training processes but no process group of them: call setup() first")
    sizes = _item_counts(batch, "batch")
    if len(set(sizes.values())) > 1:
        raise ValueError(f"cannot shard a batch whose entries have different sizes: {sizes}")
    if not sizes:
        raise ValueError("cannot shard a batch without per-item entries (tensors, lists or tuples)")
    size = next(iter(sizes.values()))
    if size % here.size:
        raise ValueError(
            f"batch_size {size} does not divide by the {here.size} training processes; "
            f"use a batch size that is a multiple of {here.size} (the batch size is the global one)"
        )
    per_rank = size // here.size
    return _slice(batch, slice(here.rank * per_rank, (here.rank + 1) * per_rank))


def _per_item(value: Any) -> bool:
    """Whether ``value`` holds one entry per item of the batch (and is cut by :func:`shard`)."""
    return (isinstance(value, torch.Tensor) and value.ndim >= 1) or isinstance(value, list | tuple)


def _item_counts(value: Any, where: str) -> dict[str, int]:
    """The number of items of every per-item entry of ``value``, by its key path."""
    if isinstance(value, Mapping):
        return {k: n for key, item in value.items() for k, n in _item_counts(item, f"{where}.{key}").items()}
    return {where: len(value)} if _per_item(value) else {}


def _slice(value: Any, part: slice) -> Any:
    if isinstance(value, Mapping):
        return {key: _slice(item, part) for key, item in value.items()}
    return value[part] if _per_item(value) else value


class _Step(nn.Module):
    """A training step as a module: ``forward(step) = loss_fn(step)``, the model its only submodule.

    DDP needs a ``forward`` to hook; methods train through ``pretrain_losses`` / ``task_losses``
    (see the module docstring).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, step: int) -> dict[str, torch.Tensor]:
        return self.loss_fn(step)


def wrap_for_ddp(model: nn.Module, loss_fn: LossFn) -> LossFn:
    """``loss_fn`` run through DDP, so that ``backward()`` leaves gradients averaged over the ranks.

    ``loss_fn(step)`` must compute its losses with ``model`` (already on this rank's device,
    identically initialised on every rank — DDP broadcasts rank 0's weights anyway). In one
    process, ``loss_fn`` itself is returned.
    """
    if _group_size() == 1:
        return loss_fn
    device = next(model.parameters()).device
    step = DistributedDataParallel(
        _Step(model, loss_fn), device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=True
    )
    log.info("rank %d of %d: training steps run through DistributedDataParallel", dist.get_rank(), _group_size())
    return step


def _collective_device() -> torch.device:
    """Where a collective's tensors must live: this rank's GPU under NCCL, the CPU under gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def mean_over_ranks(window: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The ranks' mean of every logged loss value: the global batch's losses, to log and to check.

    ``window`` maps a loss name to the values of the steps since the last read (0-d tensors, or
    floats restored from a training state); every rank holds the same names and counts. One
    all-reduce for the whole window, so the loop's only synchronisation stays where it was; every
    rank gets the same numbers, so a non-finite loss stops every rank at the same step. In one
    process ``window`` comes back as it was.
    """
    if _group_size() == 1:
        return window
    names = sorted(window)  # the same order on every rank, whatever order the method built them in
    device = _collective_device()
    flat = torch.cat(
        [torch.stack([torch.as_tensor(v, dtype=torch.float32).detach().to(device) for v in window[n]]) for n in names]
    )
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    parts = (flat / _group_size()).split([len(window[n]) for n in names])
    mean = {name: list(part.unbind()) for name, part in zip(names, parts, strict=True)}
    return {name: mean[name] for name in window}


def sum_over_ranks(value: float | None) -> float | None:
    """``value`` summed over the ranks (e.g. one step's FLOPs: every rank computes its slice's share).

    None, or one process: ``value`` as it was.
    """
    if value is None or _group_size() == 1:
        return value
    total = torch.tensor(float(value), dtype=torch.float64, device=_collective_device())
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return float(total)


def rank_zero_says(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. early stopping's decision: every rank measures val and would
    decide alike, but a decision that differed by a rounding would leave one rank waiting in a collective
    forever; rank 0's also matches the state it alone saves). One process: ``flag`` as it was."""
    if _group_size() == 1:
        return flag
    decided = torch.tensor(int(flag), dtype=torch.int32, device=_collective_device())
    dist.broadcast(decided, src=0)
    return bool(decided)
