"""``fusebench floor``: the floor arithmetic, the wall-time breakdown and reading a run (records or tables only)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from benchmark.paths import REPO_ROOT
from benchmark.report.floor import (
    CATEGORIES,
    compute_floor,
    matmul_shapes,
    read_records,
    run_floor,
)
from benchmark.stages.records import job_timing

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
THROUGHPUT = {"threads": 1, "flops_per_s": 1e9, "flops_per_core_s": 1e9, "shapes": []}  # fixed for the arithmetic


def _record(stage: str, ended: float, wall: float, timing: dict | None, **fields) -> dict:
    created = (T0 + dt.timedelta(seconds=ended)).isoformat()
    record = {
        "spec": {"stage": stage, "method": "m", "seed": 0, **fields.pop("spec", {})},
        "provenance": {
            "wall_time_s": wall,
            "created_utc": created,
            "numerics": {"threads": 1},
            "host": {"cpu_count": 2},
        },
        **fields,
    }
    if timing is not None:
        record["timing"] = timing
    return record


def write_run(root: Path) -> Path:
    """A finished run of three jobs on 2 cores, 1 thread each: data (0–3 s), pretraining (3–15 s) beside an
    evaluation (5–11 s), and an older evaluation record without timing fields (11–13 s)."""
    run = root / "results"
    files = {
        "scenes/data.result.json": _record("data", 3, 2.0, {"startup_s": 1.0}),
        "scenes/pretrain/m/seed0/result.json": _record(
            "pretrain",
            15,
            10.0,
            {"startup_s": 2.0, "setup_s": 1.0, "training_s": 6.0, "validation_s": 2.0},
            budget={"flops": 4e9, "steps": 10},
            train={"steps": 10},
            spec={
                "model": {"vision": {"width": 8, "patch_size": 4, "mlp_ratio": 2.0}, "text": {"width": 8}},
                "optim": {"batch_size": 2},
                "max_length": 7,
            },
        ),
        "scenes/eval/retrieval/m/seed0.json": _record(
            "evaluate", 11, 4.0, {"startup_s": 2.0, "setup_s": 1.0, "evaluation_s": 2.5}, spec={"task": "retrieval"}
        ),
        "scenes/robustness/retrieval/m/seed0.json": _record("robustness", 13, 2.0, None, spec={"task": "retrieval"}),
        "scenes/data/manifest.json": {"splits": {}},  # a dataset's file, not a record
        "tables/provenance.json": {"config hash": "x"},
    }
    for name, record in files.items():
        path = run / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    return run


def test_breakdown_sums_to_the_wall_and_the_floor_is_flops_over_throughput_times_cores(tmp_path: Path) -> None:
    jobs, _specs = read_records(write_run(tmp_path))
    assert sorted(j.stage for j in jobs) == ["data", "evaluate", "pretrain", "robustness"]
    floor = compute_floor(jobs, THROUGHPUT, cores=2)
    assert floor.wall_s == pytest.approx(15.0)  # first process start (data: 3 − 2 − 1 = 0) to the last record
    assert floor.flops_training == 4e9
    assert floor.flops_evaluation is None
    assert floor.floor_s == pytest.approx(4e9 / (1e9 * 2))
    parts = floor.breakdown
    assert sum(v for v in parts.values() if v is not None) == pytest.approx(floor.wall_s)
    # core-seconds ÷ 2 cores
    assert parts["startup"] == pytest.approx((1 + 2 + 2) / 2)
    assert parts["data"] == pytest.approx((2 + 1 + 1) / 2)
    assert parts["training"] == pytest.approx(6 / 2)
    assert parts["validation"] == pytest.approx(2 / 2)
    assert parts["evaluation"] == pytest.approx(2.5 / 2)
    assert parts["writing"] == pytest.approx((1 + 0.5) / 2)
    assert parts["not split"] == pytest.approx(2 / 2)
    assert parts["scheduling"] == pytest.approx(15 - (5 + 4 + 6 + 2 + 2.5 + 1.5 + 2) / 2)
    assert set(parts) == set(CATEGORIES)


def test_a_given_wall_time_and_the_cores_scale_the_floor(tmp_path: Path) -> None:
    jobs, _ = read_records(write_run(tmp_path))
    floor = compute_floor(jobs, {**THROUGHPUT, "threads": 2, "flops_per_core_s": 1.5e9}, cores=4, wall_s=100.0)
    assert floor.floor_s == pytest.approx(4e9 / (1.5e9 * 4))  # per core-second of CPU, × 4 cores
    assert floor.wall_s == 100.0
    assert sum(v for v in floor.breakdown.values() if v is not None) == pytest.approx(100.0)


def test_matmul_shapes_are_each_towers_projections_and_mlp_at_the_batch_size(tmp_path: Path) -> None:
    _, specs = read_records(write_run(tmp_path))
    specs.append({"image_size": 8})
    rows_image, rows_text = 2 * ((8 // 4) ** 2 + 1), 2 * 7
    assert matmul_shapes(specs) == sorted(
        {
            (rows_image, 8, 24),
            (rows_image, 8, 8),
            (rows_image, 8, 16),
            (rows_image, 16, 8),
            (rows_text, 8, 24),
            (rows_text, 8, 8),
            (rows_text, 8, 32),
            (rows_text, 32, 8),
        }
    )


def test_the_command_prints_the_report_of_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.cli import main

    run = write_run(tmp_path)
    (run / "scenes/data.result.json").write_text(
        json.dumps(_record("data", 3, 2.0, {"startup_s": 1.0}, spec={"image_size": 8}))
    )
    out = tmp_path / "floor.json"
    assert main(["floor", str(run), "--seconds", "0.001", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "training FLOPs      4e+09" in text and "wall                15.0 s" in text
    record = json.loads(out.read_text())
    assert record["cores"] == 2 and record["wall_s"] == 15.0 and len(record["throughput"]["shapes"]) == 8


def test_the_committed_reference_run_reports_what_it_does_not_record() -> None:
    from benchmark.config import load_config

    text, record = run_floor(REPO_ROOT / "results" / "reference", load_config(), seconds=0.001)
    assert "wall                not recorded" in text
    assert "start-up (process start → stage)           not recorded" in text
    assert record["flops_training"] > 0 and record["floor_s"] > 0
    assert record["breakdown_s"]["not split"] > 0


def test_a_job_records_its_start_up_and_phases() -> None:
    timing = job_timing(time.perf_counter(), {"setup_s": 1.23456})
    assert timing["setup_s"] == 1.235
    assert timing["startup_s"] is None or timing["startup_s"] >= 0
