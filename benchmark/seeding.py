"""Seeds: every random draw is derived from named parts, never from a global counter.

``derive_seed("pretrain", dataset, method, seed)`` gives the same 63-bit integer on every
machine and Python version (sha256 of the parts), so two jobs never share a stream by accident
and a job's stream does not depend on which other jobs ran before it.
"""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any sequence of printable parts."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    import torch

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
    import torch

    generator = torch.Generator()
    generator.manual_seed(derive_seed(*parts))
    return generator
