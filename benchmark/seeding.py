"""Seeds: every random draw is derived from named parts, never from a global counter.

``derive_seed("pretrain", dataset, seed)`` gives the same 63-bit integer on every machine and
Python version (sha256 of the parts), so a job's stream does not depend on which other jobs ran
before it.

Common random numbers (``docs/reproducibility.md``): the parts name what a draw is *for*, and
leave the method out wherever the operation is shared, so that seed k of every method sees the
same data order, the same masks and negatives (:func:`shared_stream`) and the same initial
weights of a tower of the same architecture (:func:`module_init`). Pairing two methods by seed
then pairs their random numbers, and a paired difference measures the methods, not their draws.
A method-specific draw (its heads, its fusion layers) comes from the job's own stream, which
does include the method.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from benchmark.hashing import canonical_json


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any sequence of printable parts."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    import torch  # local: corruptions.text and the tasks import this module when a run is planned, without torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # Needed by cuBLAS for deterministic matmuls; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def torch_generator(*parts: object):
    """A CPU ``torch.Generator`` seeded from ``parts`` (see :func:`derive_seed`)."""
    import torch  # local: corruptions.text and the tasks import this module when a run is planned, without torch

    generator = torch.Generator()
    generator.manual_seed(derive_seed(*parts))
    return generator


def method_seed(run_seed: int, implementation: type) -> int:
    """The seed of a method's own draws (its heads, its fusion layers: nothing another method shares), from the
    job's shared ``run_seed`` and the method's implementation (its class): a variant of a method (the same
    class, other hyperparameters) draws the same heads as the method where their shapes agree.

    A method loaded from its file is named by the method's name (``implementation.name``, set by the registry),
    not by the module it was imported as: that module's name carries the file's path (benchmark.plugins
    ``module_name``), and a seed must not change with the folder a checkout or a copy of ``baselines/`` is in."""
    name = getattr(implementation, "name", None)
    module = f"fusebench_baselines.{name}" if name else implementation.__module__
    return derive_seed(run_seed, "method", f"{module}.{implementation.__qualname__}")


def _forked_devices() -> list[int]:
    """The CUDA device whose generator :func:`torch.random.fork_rng` saves and restores (none on CPU)."""
    import torch  # local: corruptions.text and the tasks import this module when a run is planned, without torch

    return [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []


@contextmanager
def shared_stream(name: str) -> Iterator[None]:
    """Draw from torch's global RNG as stream ``name`` of the current seed, then give the RNG back unchanged.

    The current seed is the one last given to ``torch.manual_seed`` (read back by ``torch.initial_seed()``):
    the trainer's per-step seed, which holds no method (:mod:`benchmark.train.loop`), or a validation batch's.
    An operation every method draws the same way — MLM token masks, SimMIM patch masks, ITM negatives — draws
    inside its own stream, so at a given (seed, step) it draws the same numbers for every method whatever
    the method drew before it, and the draws after it are as if it had drawn nothing. The same operation
    called twice in one step draws the same numbers twice (no method does).
    """
    import torch  # local: corruptions.text and the tasks import this module when a run is planned, without torch

    with torch.random.fork_rng(devices=_forked_devices()):
        torch.manual_seed(derive_seed(torch.initial_seed(), name))
        yield


@contextmanager
def module_init(seed: int | None, name: str, architecture: Any) -> Iterator[None]:
    """Build a shared module (an image or text tower) from a seed of its own, then give the RNG back unchanged.

    The seed is ``derive_seed(seed, name, architecture)``: with ``seed`` the job's initialisation seed, which
    holds no method (``BuildContext.init_seed``), every method built with a tower of the same architecture
    (``architecture``: the JSON-able config that decides its parameters' shapes) starts from the same weights
    of it at seed k. ``seed`` None (a model rebuilt to load a checkpoint) draws from the global RNG as is.
    """
    import torch  # local: corruptions.text and the tasks import this module when a run is planned, without torch

    if seed is None:
        yield
        return

    with torch.random.fork_rng(devices=_forked_devices()):
        torch.manual_seed(derive_seed(seed, name, canonical_json(architecture)))
        yield
