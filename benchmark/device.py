"""Device selection and mixed precision: one code path for CPU and CUDA.

On CUDA we train and evaluate under bf16 autocast (no loss scaling needed); on CPU we stay in
fp32, because CPU autocast is slower for these small models and changes the numbers.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch


def resolve_device(requested: str) -> torch.device:
    """``auto`` → CUDA if available else CPU; ``cuda`` without a GPU is an error."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config asks for device 'cuda' but torch sees no CUDA device; use device: auto or cpu")
    device = torch.device(requested)
    if device.type == "cuda":  # fp32 matmuls outside bf16 autocast on tensor cores (TF32), as timm/open_clip train
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def autocast(device: torch.device) -> Any:
    """bf16 autocast on CUDA, a no-op elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def describe(device: torch.device) -> dict[str, Any]:
    """What ran the job, for provenance."""
    info: dict[str, Any] = {"type": device.type, "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["precision"] = "bf16-autocast"
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
        info["bf16_reduced_precision_reduction"] = torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
    else:
        info["precision"] = "fp32"
    return info
