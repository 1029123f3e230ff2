"""The CPU numeric path (``numerics``, :mod:`benchmark.numerics`): what changes the bits, what the portable mode pins.

Every test here starts fresh processes, because torch reads ``ATEN_CPU_CAPABILITY`` once, when imported.
One machine can switch ATen's capability down (``default`` instead of ``avx2``) and oneDNN's instruction set
(``ONEDNN_MAX_CPU_ISA``), not up to AVX-512 nor to another vendor's MKL branch; those tests skip on a CPU
without AVX2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.numerics import PORTABLE_ENV, summary, with_numerics
from tests.helpers import config_args, fusebench_process, job_args

OPS = """
import hashlib, json, os, torch, torch.nn.functional as F
torch.set_num_threads(1)
if os.environ.get("NO_ONEDNN"):
    torch.backends.mkldnn.enabled = False
g = torch.Generator().manual_seed(0)
x, w = torch.randn(64, 49, 32, generator=g), torch.randn(96, 32, generator=g)
img, kernel = torch.randn(8, 3, 32, 32, generator=g), torch.randn(32, 3, 8, 8, generator=g)
ops = {
    "exp": torch.exp(x), "softmax": torch.softmax(x, -1), "layer_norm": F.layer_norm(x, (32,)),
    "sum": x.sum(-1), "matmul": x @ w.T, "gelu": F.gelu(x), "conv2d": F.conv2d(img, kernel, stride=8),
}
digest = {k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest() for k, v in ops.items()}
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), **digest}))
"""
"""Digests of a few kernels every method runs (patch embedding, attention, norms, GELU, losses' sums)."""


def kernels(**env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in (*PORTABLE_ENV, "ONEDNN_MAX_CPU_ISA")}
    result = subprocess.run(
        [sys.executable, "-c", OPS], capture_output=True, text=True, timeout=120, env={**clean, **env}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def avx2() -> dict[str, str]:
    native = kernels(ATEN_CPU_CAPABILITY="avx2")
    if native["capability"] not in ("AVX2", "AVX512"):
        pytest.skip(f"this CPU runs torch's {native['capability']} kernels, not AVX2")
    return native


def test_the_capability_changes_the_bits_of_every_kernel(avx2: dict[str, str]) -> None:
    """Why the portable mode pins the capability instead of making numbers independent of it: ATen's
    ``default`` kernels (no SIMD) and its AVX2 kernels round differently in exp, softmax, layer norm, sums and
    even matmul (measured on torch 2.14.1, AMD EPYC); no setting makes them agree."""
    default = kernels(ATEN_CPU_CAPABILITY="default")
    assert default["capability"] == "DEFAULT"
    differing = {op for op in ("exp", "softmax", "layer_norm", "sum", "matmul") if default[op] != avx2[op]}
    assert differing == {"exp", "softmax", "layer_norm", "sum", "matmul"}


def test_onednn_picks_its_kernels_per_cpu_and_the_portable_path_does_not_use_it(avx2: dict[str, str]) -> None:
    """oneDNN's GELU and convolution change with the instruction set it may use (here capped to AVX, as on an
    older CPU; an AVX-512 CPU raises it) and ignore MKL_CBWR; with oneDNN off they do not change."""
    capped = kernels(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX")
    assert capped["gelu"] != avx2["gelu"] and capped["conv2d"] != avx2["conv2d"]
    off = kernels(**PORTABLE_ENV, NO_ONEDNN="1")
    assert kernels(**PORTABLE_ENV, NO_ONEDNN="1", ONEDNN_MAX_CPU_ISA="AVX") == off


def test_mkl_cbwr_compatible_is_its_own_branch(avx2: dict[str, str]) -> None:
    """MKL_CBWR=COMPATIBLE takes effect on this CPU (matmul's bits change), so MKL runs the branch Intel documents
    as the same on Intel and compatible CPUs; elementwise kernels are ATen's and do not change."""
    compatible = kernels(ATEN_CPU_CAPABILITY="avx2", MKL_CBWR="COMPATIBLE")
    assert compatible["matmul"] != avx2["matmul"] and compatible["exp"] == avx2["exp"]


TINY = [
    "datasets.scenes.splits={train: 48, val: 8, test: 8}",
    "pretrain.steps=6",
    "pretrain.batch_size=8",
    "pretrain.warmup_steps=1",
    "pretrain.checkpoint_every=3",
]
OTHER_CPU = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX", "MKL_ENABLE_INSTRUCTIONS": "AVX"}
"""What this machine can switch to look like another CPU's path."""


def fusebench(*args: str, numerics: str, env: dict[str, str] | None = None) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in (*PORTABLE_ENV, *OTHER_CPU)}
    result = fusebench_process(*args, *config_args(*TINY, f"numerics={numerics}"), env={**clean, **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("numerics")
    data, tokenizer = root / "data", root / "tokenizer.json"
    fusebench("data", "--dataset", "scenes", "--out", str(data), numerics="native")
    fusebench("tokenizer", "--dataset", "scenes", "--data", str(data), "--out", str(tokenizer), numerics="native")
    return data, tokenizer


def pretrain(inputs: tuple[Path, Path], out: Path, numerics: str, env: dict[str, str] | None = None) -> Path:
    data, tokenizer = inputs
    fusebench("pretrain", *job_args("cross_attention", data, out, tokenizer), numerics=numerics, env=env)
    return out


def test_a_portable_job_computes_the_same_bits_whatever_the_cpu_path_it_starts_with(
    avx2: dict[str, str], inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    """Six pretraining steps of cross_attention (patch convolution, attention, GELU, AdamW): native, the model's
    bytes change with the capability; portable, the job starts itself again on the pinned path and the bytes
    are the same, and its result records that path."""
    native = pretrain(inputs, tmp_path / "native", "native")
    native_other = pretrain(inputs, tmp_path / "native_other", "native", OTHER_CPU)
    assert (native / "model.safetensors").read_bytes() != (native_other / "model.safetensors").read_bytes()
    portable = pretrain(inputs, tmp_path / "portable", "portable")
    portable_other = pretrain(inputs, tmp_path / "portable_other", "portable", OTHER_CPU)
    assert (portable / "model.safetensors").read_bytes() == (portable_other / "model.safetensors").read_bytes()
    record = json.loads((portable_other / "result.json").read_text())
    path = record["provenance"]["numerics"]
    assert record["spec"]["numerics"] == "portable"
    assert path["mode"] == "portable" and path["cpu_capability"] == "AVX2" and path["onednn"] == "off"
    assert path["mkl_cbwr"] == "COMPATIBLE" and path["threads"] == 1 and path["blas"].startswith("MKL")
    assert path["environment"]["ONEDNN_MAX_CPU_ISA"] == "AVX"  # recorded, and without effect
    native_path = json.loads((native_other / "result.json").read_text())["provenance"]["numerics"]
    assert native_path["mode"] == "native" and native_path["cpu_capability"] == "DEFAULT"
    assert "numerics" not in json.loads((native / "result.json").read_text())["spec"]


def test_only_torch_stages_carry_the_mode_and_native_keeps_the_old_specs() -> None:
    spec = {"stage": "pretrain", "dataset": "scenes"}
    assert with_numerics(spec, {"numerics": "portable"}) == {**spec, "numerics": "portable"}
    assert with_numerics(spec, {"numerics": "native"}) == spec
    assert with_numerics({"stage": "data"}, {"numerics": "portable"}) == {"stage": "data"}


def test_footer_names_the_numeric_path() -> None:
    from benchmark.report.aggregate import hardware_of

    path = {"mode": "portable", "cpu_capability": "AVX2", "blas": "MKL 2024.2", "mkl_cbwr": "COMPATIBLE"}
    path |= {"onednn": "off", "threads": 1}
    cpu = {"provenance": {"host": {"cpu": "AMD EPYC"}, "device": {"type": "cpu"}, "numerics": path}}
    assert hardware_of(cpu) == f"cpu: AMD EPYC ({summary(path)})"
    assert summary(path) == "numerics portable: torch AVX2, MKL 2024.2 (CBWR COMPATIBLE), oneDNN off, 1 thread"
    device = {"type": "cuda", "name": "NVIDIA H200", "cuda": "13.0", "cudnn": 92400, "precision": "bf16-autocast"}
    gpu = {"provenance": {"device": {**device, "tf32_matmul": True}}}
    assert hardware_of(gpu) == "cuda: NVIDIA H200 (CUDA 13.0, cuDNN 92400, bf16-autocast, TF32 on)"
    assert hardware_of({"provenance": {"host": {"cpu": "AMD EPYC"}}}) == "cpu: AMD EPYC"  # an older result
