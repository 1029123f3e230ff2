"""Provenance: what made a number — config hash, code version, packages, hardware, time."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmark.numerics import numeric_path
from benchmark.paths import REPO_ROOT

TRACKED_PACKAGES = (
    "fusebench",
    "torch",
    "torchvision",
    "timm",
    "transformers",
    "tokenizers",
    "safetensors",
    "datasets",
    "pycocotools",
    "numpy",
    "pandas",
    "pillow",
    "snakemake",
)


@functools.lru_cache(maxsize=1)
def git_state(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """Commit hash and whether tracked files differ from it ('unknown' outside a checkout)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Installed versions of the packages that can change a number."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@functools.lru_cache(maxsize=1)
def host() -> dict[str, Any]:
    """CPU model and count, OS; GPU details come from :func:`benchmark.device.describe`, the CPU kernels'
    path (instruction set, BLAS, threads) from :func:`benchmark.numerics.numeric_path`."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(), "hostname": platform.node()}


def provenance(spec_hash: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The block every result file carries; ``numerics`` (the CPU kernels' path,
    :func:`benchmark.numerics.numeric_path`) when the job computed with torch."""
    record = {
        "config_hash": spec_hash,
        "git": git_state(),
        "packages": package_versions(),
        "host": host(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if "torch" in sys.modules:  # a job that never imported torch has no numbers of its
        record["numerics"] = numeric_path()
    if extra:
        record.update(extra)
    return record
