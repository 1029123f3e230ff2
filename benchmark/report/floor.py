"""``fusebench floor``: the compute floor of a finished run, and where its wall time went beyond it.

The floor is the time the run's counted FLOPs need at the machine's own fp32 matmul throughput on all
its cores: ``floor = FLOPs / (throughput per core × cores)``. The throughput is measured here, by
timing ``torch.matmul`` on the run's own matmul shapes (each tower's attention projections and MLP at
each training batch size) with the job's thread count, per second of CPU time (other processes on a
shared machine lower the wall-clock figure, not this one), so the floor is what this machine's cores
could do on this model, not a datasheet number.

FLOPs are the ones the run counted (``torch.utils.flop_counter``, a multiply-add = 2 FLOPs):
training, each training job's ``budget.flops`` (steps × FLOPs of one forward+backward step). The
evaluation records count no FLOPs today, so the evaluation part of the floor is reported as not
recorded and the floor is a lower bound.

The wall time is broken down in core-seconds divided by the cores (so the parts add up to the wall):
each job occupies its threads for its start-up (``timing.startup_s``: process start to the stage),
data loading and set-up (``setup_s``; data and tokenizer jobs entirely), training, validation,
evaluation, and writing its outputs (the rest of its ``wall_time_s``); the cores no job occupied are
scheduling. A record written before these timing fields existed counts as "not split".

A folder of tables only (``results/reference``) has no job records: its per-stage wall times
(``efficiency.csv``, means over seeds) times the seeds give the job time, the last point of each
learning curve (``learning_curves.csv``) its training FLOPs, and the rest is reported as not recorded.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from benchmark.errors import DataFileError

SKIPPED_FOLDERS = {"data", "tables", "plots", "logs", "perf", "partial"}
"""Folders of a run that hold no job records (datasets, tables, logs)."""

CATEGORIES = ("startup", "data", "training", "validation", "evaluation", "writing", "not split", "scheduling")
LABELS = {
    "startup": "start-up (process start → stage)",
    "data": "data loading and set-up",
    "training": "training steps",
    "validation": "validation",
    "evaluation": "evaluation",
    "writing": "writing outputs",
    "not split": "not split (records without timing)",
    "scheduling": "scheduling (cores no job held)",
}


@dataclass
class Job:
    """What the floor needs of one job: its stage, threads, wall time, where it went and its FLOPs."""

    stage: str
    name: str
    threads: int
    wall_s: float  # the stage's own wall_time_s (after start-up)
    count: int = 1  # jobs this row stands for (a tables-only folder: one row per method and stage, × seeds)
    startup_s: float | None = None
    phases: dict[str, float] = field(default_factory=dict)  # setup_s, training_s, validation_s, evaluation_s
    end: _dt.datetime | None = None
    flops_training: float | None = None
    flops_evaluation: float | None = None

    def core_seconds(self) -> dict[str, float]:
        """Category → core-seconds of this job (threads × seconds × count)."""
        scale = self.threads * self.count
        parts: dict[str, float] = {}
        if self.startup_s is not None:
            parts["startup"] = self.startup_s
        if self.stage in ("data", "tokenizer"):
            parts["data"] = self.wall_s
        elif self.stage == "reference":
            parts["evaluation"] = self.wall_s
        elif self.phases:
            parts["data"] = self.phases.get("setup_s", 0.0)
            for key in ("training", "validation", "evaluation"):
                parts[key] = self.phases.get(f"{key}_s", 0.0)
            parts["writing"] = max(0.0, self.wall_s - sum(self.phases.values()))
        else:
            parts["not split"] = self.wall_s
        return {k: v * scale for k, v in parts.items()}

    def start(self) -> _dt.datetime | None:
        if self.end is None:
            return None
        return self.end - _dt.timedelta(seconds=self.wall_s + (self.startup_s or 0.0))


# -- reading a run ---------------------------------------------------------------------------------


def _threads(record: dict[str, Any]) -> int:
    provenance = record.get("provenance", {})
    threads = provenance.get("numerics", {}).get("threads") or provenance.get("device", {}).get("torch_threads")
    return int(threads) if threads else 1


def _training_flops(record: dict[str, Any]) -> float | None:
    """Training FLOPs of a training record: its budget's, else FLOPs per step × steps."""
    if record.get("status") == "not applicable" or "train" not in record:
        return None
    if (flops := record.get("budget", {}).get("flops")) is not None:
        return float(flops)
    per_step = record.get("efficiency", {}).get("flops_train_per_step")
    return float(per_step) * record["train"]["steps"] if per_step else None


def job_from_record(record: dict[str, Any], path: Path) -> Job:
    """A :class:`Job` from one result record (``path`` only names it in errors)."""
    spec, provenance = record["spec"], record["provenance"]
    timing = record.get("timing") or {}
    name = "/".join(str(spec[k]) for k in ("stage", "task", "method", "seed") if spec.get(k) is not None)
    created = provenance.get("created_utc")
    try:
        end = _dt.datetime.fromisoformat(created) if created else None
    except ValueError as exc:
        raise ValueError(f"{path}: provenance.created_utc {created!r} is not an ISO time") from exc
    return Job(
        stage=str(spec.get("stage")),
        name=name,
        threads=_threads(record),
        wall_s=float(provenance["wall_time_s"]),
        startup_s=timing.get("startup_s"),
        phases={k: float(v) for k, v in timing.items() if k != "startup_s" and v is not None},
        end=end,
        flops_training=_training_flops(record),
        flops_evaluation=record.get("flops_evaluation"),
    )


def record_paths(run_dir: Path) -> list[Path]:
    """Every JSON under ``run_dir`` outside the folders that hold no job records."""
    return sorted(
        p for p in run_dir.rglob("*.json") if not SKIPPED_FOLDERS.intersection(p.relative_to(run_dir).parts[:-1])
    )


def read_records(run_dir: Path) -> tuple[list[Job], list[dict[str, Any]]]:
    """The run's jobs, and the specs of its training jobs (their model shapes feed the microbenchmark)."""
    jobs, training_specs = [], []
    for path in record_paths(run_dir):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(record, dict) or "spec" not in record or "wall_time_s" not in record.get("provenance", {}):
            continue
        jobs.append(job_from_record(record, path))
        spec = record["spec"]
        if spec.get("stage") in ("pretrain", "finetune") and "model" in spec and "optim" in spec:
            training_specs.append(spec)
        if spec.get("stage") == "data" and spec.get("image_size"):
            training_specs.append({"image_size": spec["image_size"]})
    return jobs, training_specs


def read_tables(tables: Path) -> list[Job]:
    """Jobs of a tables-only folder: one row per method and stage (mean wall × seeds), training FLOPs from the
    learning curves' last points."""
    frame = pd.read_csv(tables / "efficiency.csv", comment="#")
    seeds: dict[str, int] = {}
    if (tables / "main.csv").is_file():
        main = pd.read_csv(tables / "main.csv", comment="#")
        seeds = main.dropna(subset=["seed"]).groupby("method")["seed"].nunique().to_dict()
    flops: dict[tuple[str, str, str], float] = {}  # (method, stage, task) → sum over seeds
    if (tables / "learning_curves.csv").is_file():
        curves = pd.read_csv(tables / "learning_curves.csv", comment="#").fillna({"task": ""})
        last = curves.groupby(["dataset", "stage", "task", "method", "seed"])["flops"].max().reset_index()
        flops = {key: float(v) for key, v in last.groupby(["method", "stage", "task"])["flops"].sum().items()}
    jobs = []
    for row in frame.to_dict("records"):
        method, count = row["method"], int(seeds.get(row["method"], 1))
        for key, value in row.items():
            if not str(key).startswith("wall_s_") or pd.isna(value):
                continue
            stage, _, task = str(key).removeprefix("wall_s_").partition("_")
            name = "/".join(p for p in (stage, task, method) if p)
            jobs.append(Job(stage, name, 1, float(value), count, flops_training=flops.get((method, stage, task))))
    return jobs


# -- the microbenchmark ----------------------------------------------------------------------------


def matmul_shapes(specs: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
    """(M, K, N) of each tower's attention projections (qkv, out) and MLP (up, down) for every training batch
    size: M = batch × tokens (image patches + 1, or the text length)."""
    image_size = next((s["image_size"] for s in specs if "image_size" in s and "model" not in s), None)
    shapes: set[tuple[int, int, int]] = set()
    for spec in specs:
        if "model" not in spec:
            continue
        batch = int(spec["optim"]["batch_size"])
        for tower in ("vision", "text"):
            settings = spec["model"].get(tower) or {}
            width = settings.get("width")
            if not width:
                continue
            if tower == "vision":
                size = settings.get("image_size", image_size)
                if not size or not settings.get("patch_size"):
                    continue
                tokens = (int(size) // int(settings["patch_size"])) ** 2 + 1
            else:
                tokens = int(spec.get("max_length") or 0)
            if not tokens:
                continue
            rows, hidden = batch * tokens, round(width * float(settings.get("mlp_ratio", 4.0)))
            shapes |= {(rows, width, 3 * width), (rows, width, width), (rows, width, hidden), (rows, hidden, width)}
    return sorted(shapes)


def matmul_throughput(shapes: list[tuple[int, int, int]], threads: int, seconds: float = 0.2) -> dict[str, Any]:
    """fp32 ``torch.matmul`` throughput over ``shapes`` with ``threads`` torch threads: each shape repeated for
    about ``seconds`` after a warm-up; total FLOPs ÷ total time, so the mix is the model's own.

    ``flops_per_core_s`` divides by the process's CPU time (all its threads), ``flops_per_s`` by the wall
    time. The floor uses the first: what a core does while it computes, which other processes sharing the
    machine do not lower (they lower the wall-clock figure, and show in the run's wall instead)."""

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    total_flops, total_wall, total_cpu, per_shape = 0.0, 0.0, 0.0, []
    try:
        generator = torch.Generator().manual_seed(0)
        for m, k, n in shapes:
            a, b = torch.randn(m, k, generator=generator), torch.randn(k, n, generator=generator)
            for _ in range(3):
                torch.matmul(a, b)
            repeats, began, cpu_began = 0, time.perf_counter(), time.process_time()
            while (elapsed := time.perf_counter() - began) < seconds or repeats < 3:
                torch.matmul(a, b)
                repeats += 1
            cpu = time.process_time() - cpu_began
            flops = 2.0 * m * k * n * repeats
            total_flops, total_wall, total_cpu = total_flops + flops, total_wall + elapsed, total_cpu + cpu
            per_shape.append(
                {"shape": [m, k, n], "gflops_per_s": flops / elapsed / 1e9, "gflops_per_core_s": flops / cpu / 1e9}
            )
    finally:
        torch.set_num_threads(previous)
    return {
        "threads": threads,
        "flops_per_s": total_flops / total_wall if total_wall else None,
        "flops_per_core_s": total_flops / total_cpu if total_cpu else None,
        "shapes": per_shape,
    }


# -- the report ------------------------------------------------------------------------------------


@dataclass
class Floor:
    """The floor report's numbers (seconds; ``None`` where the run does not record them)."""

    jobs: int
    cores: int
    threads: int
    flops_training: float
    flops_evaluation: float | None
    throughput: dict[str, Any]
    wall_s: float | None
    breakdown: dict[str, float | None]  # category → wall-equivalent seconds (core-seconds ÷ cores)

    @property
    def flops(self) -> float:
        return self.flops_training + (self.flops_evaluation or 0.0)

    @property
    def floor_s(self) -> float | None:
        per_core = self.throughput.get("flops_per_core_s")
        return self.flops / (per_core * self.cores) if per_core else None


def run_wall(jobs: list[Job]) -> float | None:
    """From the first job's process start to the last record written; None without times."""
    starts = [s for j in jobs if (s := j.start()) is not None]
    ends = [j.end for j in jobs if j.end is not None]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else None


def breakdown(jobs: list[Job], cores: int, wall_s: float | None) -> dict[str, float | None]:
    """Category → wall-equivalent seconds; scheduling is the cores' time no job held (None without a wall).
    A category no job records is None ("not recorded")."""
    sums: dict[str, float] = {}
    for job in jobs:
        for key, value in job.core_seconds().items():
            sums[key] = sums.get(key, 0.0) + value
    parts: dict[str, float | None] = {k: (sums[k] / cores if k in sums else None) for k in CATEGORIES}
    if wall_s is not None:
        busy = sum(v for k, v in parts.items() if v is not None and k != "scheduling")
        parts["scheduling"] = wall_s - busy
    return parts


def compute_floor(jobs: list[Job], throughput: dict[str, Any], cores: int, wall_s: float | None = None) -> Floor:
    """The floor of ``jobs`` at ``throughput`` on ``cores``; ``wall_s`` (else the records' span) is the wall."""
    wall = wall_s if wall_s is not None else run_wall(jobs)
    evaluation = [j.flops_evaluation for j in jobs if j.flops_evaluation is not None]
    return Floor(
        jobs=sum(j.count for j in jobs),
        cores=cores,
        threads=throughput["threads"],
        flops_training=sum(j.flops_training or 0.0 for j in jobs),
        flops_evaluation=sum(evaluation) if evaluation else None,
        throughput=throughput,
        wall_s=wall,
        breakdown=breakdown(jobs, cores, wall),
    )


def _seconds(value: float | None) -> str:
    return "not recorded" if value is None else f"{value:,.1f} s"


def floor_text(floor: Floor, source: str) -> str:
    """The report as printed."""
    tput, wall_tput = floor.throughput.get("flops_per_core_s"), floor.throughput.get("flops_per_s")
    floor_s, wall = floor.floor_s, floor.wall_s
    lines = [
        f"Compute floor of {source}: {floor.jobs} jobs, {floor.threads} thread(s) per job, {floor.cores} cores",
        f"  training FLOPs      {floor.flops_training:.4g}",
        "  evaluation FLOPs    "
        + (f"{floor.flops_evaluation:.4g}" if floor.flops_evaluation is not None else "not recorded (not counted)"),
        f"  fp32 matmul         {tput / 1e9:.2f} GFLOP/s per core-second of CPU time ({wall_tput / 1e9:.2f} per "
        f"wall second) at {floor.threads} thread(s), the run's {len(floor.throughput['shapes'])} matmul shapes"
        if tput and wall_tput
        else "  fp32 matmul         not measured (no model shapes)",
        f"  floor               {_seconds(floor_s)} = FLOPs / (throughput per core × {floor.cores} cores)",
        f"  wall                {_seconds(wall)}"
        + (f"   wall / floor = {wall / floor_s:.2f}" if wall is not None and floor_s else ""),
        "  where the wall went (core-seconds ÷ cores; × floor):",
    ]
    for key in CATEGORIES:
        value = floor.breakdown[key]
        ratio = f"  × {value / floor_s:6.2f}" if value is not None and floor_s else ""
        lines.append(f"    {LABELS[key]:38s} {_seconds(value):>16s}{ratio}")
    return "\n".join(lines) + "\n"


def floor_record(floor: Floor, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "jobs": floor.jobs,
        "cores": floor.cores,
        "threads": floor.threads,
        "flops_training": floor.flops_training,
        "flops_evaluation": floor.flops_evaluation,
        "throughput": floor.throughput,
        "floor_s": floor.floor_s,
        "wall_s": floor.wall_s,
        "breakdown_s": floor.breakdown,
    }


def config_shape_specs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Training-spec-like dicts from a config (a tables-only folder has no training specs to read shapes from)."""
    batches = {config["pretrain"]["batch_size"], *(block["batch_size"] for block in config["finetune"].values())}
    specs: list[dict[str, Any]] = [
        {"model": config["model"], "optim": {"batch_size": b}, "max_length": config["tokenizer"]["max_length"]}
        for b in sorted(batches)
    ]
    sizes = [d["image_size"] for d in config["datasets"].values() if isinstance(d, dict) and d.get("image_size")]
    return specs + ([{"image_size": sizes[0]}] if sizes else [])


def _host_cores(run_dir: Path) -> int | None:
    for path in record_paths(run_dir)[:50]:
        try:
            cores = json.loads(path.read_text()).get("provenance", {}).get("host", {}).get("cpu_count")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if cores:
            return int(cores)
    return None


def run_floor(
    run_dir: Path,
    config: dict[str, Any],
    cores: int | None = None,
    wall_s: float | None = None,
    seconds: float = 0.2,
) -> tuple[str, dict[str, Any]]:
    """The floor report of the finished run in ``run_dir`` (its output folder, or a folder of its tables such as
    ``results/reference``): the printed text and its record. ``config`` gives the matmul shapes and the job
    threads where the folder has no job records; ``cores`` defaults to the records' host, else this machine."""

    run_dir = Path(run_dir)
    jobs, specs = read_records(run_dir) if run_dir.is_dir() else ([], [])
    threads = max((j.threads for j in jobs), default=int(config.get("threads") or 1))
    if not jobs:
        tables = next((d for d in (run_dir, run_dir / "tables") if (d / "efficiency.csv").is_file()), None)
        if tables is None:
            raise DataFileError(
                f"{run_dir} holds no job records and no efficiency.csv: give a finished run's output folder "
                "(e.g. results) or its tables (e.g. results/reference)"
            )
        jobs, specs = read_tables(tables), config_shape_specs(config)
    if not any("model" in s for s in specs):
        specs = specs + config_shape_specs(config)
    cores = cores or _host_cores(run_dir) or os.cpu_count() or 1
    throughput = matmul_throughput(matmul_shapes(specs), threads, seconds)
    floor = compute_floor(jobs, throughput, cores, wall_s)
    return floor_text(floor, str(run_dir)), floor_record(floor, str(run_dir))
