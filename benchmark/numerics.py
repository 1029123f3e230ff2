"""The numeric path of a CPU job: which kernels compute its numbers, pinned (``numerics: portable``) or not.

On CPU, torch picks its kernels per machine: ATen's vectorised kernels for the CPU's widest
instruction set (``default``, ``avx2`` or ``avx512``, chosen once at import), Intel MKL's BLAS for
the CPU's vendor and instruction set, and oneDNN (mkldnn) for convolutions and some activations.
Each choice changes the last bits of nearly every operation (measured on torch 2.14.1 in
``tests/test_numerics.py``: ``exp``, ``softmax``, ``layer_norm``, sums, AdamW's update and even
``matmul`` differ between the ``default`` and ``avx2`` capabilities), and a training run turns last
bits into different numbers. ``numerics: native`` (torch's choices) is fastest on each machine;
``numerics: portable`` pins one path that every x86-64 CPU with AVX2 runs alike:

* ``ATEN_CPU_CAPABILITY=avx2`` — ATen's AVX2 kernels, also on an AVX-512 CPU (read once, when torch
  is imported: the job starts itself again with it set, :func:`ensure_environment`);
* ``MKL_CBWR=COMPATIBLE`` — MKL's conditional-numerical-reproducibility branch that Intel documents
  as giving the same results on Intel and Intel-compatible (AMD) CPUs; the other branches
  (``AVX2``, ``AVX512``) are "available only for Intel processors" and are silently replaced by
  ``AUTO`` elsewhere;
* oneDNN off (``torch.backends.mkldnn.enabled = False``): it chooses its own kernels per CPU and
  ignores ``MKL_CBWR``; convolutions and GELU then take ATen's kernels;
* a fixed thread count (the job's ``--threads``, 1 when not given): ATen and MKL split reductions
  by thread.

What one machine can show is in ``tests/test_numerics.py`` and docs/reproducibility.md.
A CPU without AVX2 cannot run the pinned path: a portable job there stops with a configuration error.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from benchmark.errors import ConfigError

MODES = ("native", "portable")
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"}
"""What the portable mode sets before torch is imported."""
PORTABLE_CAPABILITY = "AVX2"
"""What ``torch.backends.cpu.get_cpu_capability()`` reports on the pinned path."""
STAGES = ("pretrain", "finetune", "evaluate", "robustness")
"""Stages whose numbers torch computes: their specs carry ``numerics`` (:func:`with_numerics`)."""
ENV_KEYS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS")
"""Environment variables that steer the CPU path, recorded in every result."""


def with_numerics(spec: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """``spec`` (a stage spec) with the config's ``numerics`` mode when the stage computes with torch and the
    mode is not ``native`` (so that a native run keeps the specs, and the results, it always had)."""
    mode = config.get("numerics", "native")
    if spec.get("stage") not in STAGES or mode == "native":
        return spec
    return {**spec, "numerics": mode}


def ensure_environment(mode: str, restart: bool = True) -> None:
    """Under ``portable``, start this same command again with :data:`PORTABLE_ENV` unless it is set already
    (torch reads it only when imported); under ``native``, do nothing.

    ``restart`` is False when the command runs inside another program (``benchmark.cli.main(argv)`` called
    from Python, e.g. a test): replacing that process is never right, so the job computes on the path it has,
    and its provenance says whether that path is pinned (:func:`numeric_path`)."""
    if mode not in MODES:
        raise ConfigError(f"numerics {mode!r} is not one of {', '.join(MODES)}")
    if mode != "portable" or not restart or all(os.environ.get(k) == v for k, v in PORTABLE_ENV.items()):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "benchmark", *sys.argv[1:]], {**os.environ, **PORTABLE_ENV})


def apply(mode: str, threads: int | None) -> None:
    """In the job's process: the in-process part of ``mode`` (oneDNN off and a fixed thread count under
    ``portable``), after checking that the environment took effect."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    if mode != "portable":
        return
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != PORTABLE_CAPABILITY:
        raise ConfigError(
            f"numerics: portable runs torch's AVX2 kernels, but torch runs {capability} here "
            f"(ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', 'unset')}; a CPU without AVX2?): "
            "set numerics: native"
        )
    torch.backends.mkldnn.enabled = False
    if not threads:
        torch.set_num_threads(1)


def blas() -> str:
    """torch's BLAS and its version, from ``torch.__config__.show()`` (e.g. ``MKL 2024.2``)."""
    import torch

    shown = torch.__config__.show()
    for line in shown.splitlines():
        if "Math Kernel Library Version" in line:
            return "MKL " + line.split("Version", 1)[1].split("-")[0].strip()
    for part in shown.replace(",", "\n").splitlines():
        if "BLAS_INFO=" in part:
            return part.split("=", 1)[1].strip()
    return "unknown"


def numpy_blas() -> str:
    """numpy's BLAS and its version (numpy computes the metrics)."""
    import numpy as np

    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{info.get('name', 'unknown')} {info.get('version', '')}".strip()
    except Exception:  # numpy's config layout is not a stable API, and provenance must not fail
        return "unknown"


def numeric_path(mode: str | None = None) -> dict[str, Any]:
    """What decides a CPU job's last bits: mode, ATen capability, BLAS, MKL's CNR branch, oneDNN, threads,
    and the environment variables that steer them. ``mode`` defaults to whether the pinned environment is
    in effect."""
    import torch

    if mode is None:
        pinned = all(os.environ.get(k) == v for k, v in PORTABLE_ENV.items()) and not torch.backends.mkldnn.enabled
        mode = "portable" if pinned else "native"
    return {
        "mode": mode,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": blas(),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "unset"),
        "onednn": "on" if torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled else "off",
        "threads": torch.get_num_threads(),
        "numpy_blas": numpy_blas(),
        "environment": {k: os.environ[k] for k in ENV_KEYS if k in os.environ},
    }


def summary(path: dict[str, Any]) -> str:
    """One phrase for a table footer: ``numerics portable: torch AVX2, MKL 2024.2 (CBWR COMPATIBLE),
    oneDNN off, 1 thread``."""
    threads = path.get("threads")
    return (
        f"numerics {path.get('mode', 'unknown')}: torch {path.get('cpu_capability', '?')}, "
        f"{path.get('blas', '?')} (CBWR {path.get('mkl_cbwr', '?')}), oneDNN {path.get('onednn', '?')}, "
        f"{threads} thread{'s' if threads != 1 else ''}"
    )
