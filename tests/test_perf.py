"""``fusebench perf`` on the smoke profile, CPU-sized: two methods, a few steps, in this process.

In this process (not a subprocess) so that the FLOP count checked here runs with the same counter
formulas as the command's own; the numbers themselves are machine-dependent and not checked, only
what the JSON says about them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmark.cli import main
from benchmark.config import load_config
from benchmark.perf import build_method, prepare_data, prepare_tokenizer
from benchmark.seeding import derive_seed
from benchmark.train.efficiency import forward_flops
from tests.helpers import SMOKE

METHODS = ("contrastive_clip", "cross_attention")
"""A dual encoder and a co-attention method: fast, and between them every kind of attention the methods use."""


def perf(out: Path, *args: str) -> int:
    return main(
        ["perf", "--config", str(SMOKE), "--device", "cpu", "--steps", "3", "--warmup", "1", "--out", str(out), *args]
    )


@pytest.fixture(scope="module")
def perf_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("perf")
    assert perf(out, "--methods", *METHODS) == 0
    [path] = out.glob("perf-cpu-*.json")
    return path, json.loads(path.read_text())


def test_the_json_has_provenance_settings_peak_and_one_row_per_method(perf_run: tuple[Path, dict[str, Any]]) -> None:
    _, record = perf_run
    assert {"config_hash", "git", "packages", "host", "device", "created_utc"} <= set(record["provenance"])
    assert record["provenance"]["device"]["type"] == "cpu"
    assert record["settings"]["steps"] == 3 and record["settings"]["warmup"] == 1
    assert record["peak"]["tflops"] > 0 and record["peak"]["used"] is False  # CPU: for information only
    assert [row["method"] for row in record["methods"]] == list(METHODS)
    for row in record["methods"]:
        assert row["batch_size"] == load_config([SMOKE])["pretrain"]["batch_size"]
        assert row["flops_per_sample"] > 0
        assert row["optimized_samples_per_s"] > 0 and row["naive_samples_per_s"] > 0
        assert row["optimized_peak_fraction"] is None and row["naive_peak_fraction"] is None  # n/a on CPU


def test_the_ratio_and_tflops_are_those_of_the_measured_throughputs(perf_run: tuple[Path, dict[str, Any]]) -> None:
    for row in perf_run[1]["methods"]:
        assert row["speedup"] == pytest.approx(row["optimized_samples_per_s"] / row["naive_samples_per_s"])
        for loop in ("optimized", "naive"):
            assert row[f"{loop}_tflops"] == pytest.approx(row["flops_per_sample"] * row[f"{loop}_samples_per_s"] / 1e12)


def test_flops_per_sample_equal_an_independent_count_of_one_training_step(
    perf_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    row = perf_run[1]["methods"][0]
    config = load_config([SMOKE])
    data_dir = prepare_data(config, "scenes", tmp_path)
    run = build_method(
        config,
        "scenes",
        row["method"],
        data_dir,
        prepare_tokenizer(config, "scenes", row["method"], data_dir, tmp_path),
    )
    assert run.run_seed == row["run_seed"]
    run.model.train()
    torch.manual_seed(derive_seed(run.run_seed, "step", 0))  # step 0's masks, as the loop draws them
    forward = forward_flops(lambda: run.losses(0)) / row["batch_size"]  # registers the CPU attention's formulas
    torch.manual_seed(derive_seed(run.run_seed, "step", 0))
    with FlopCounterMode(display=False) as counter:
        losses = run.losses(0)
        sum(run.weights[name] * loss for name, loss in losses.items()).backward()
    assert row["flops_per_sample"] == counter.get_total_flops() / row["batch_size"]
    assert row["flops_per_sample"] > 2.5 * forward  # the backward pass is counted (about twice the forward)


def test_the_table_and_the_plot_are_written_beside_the_json(perf_run: tuple[Path, dict[str, Any]]) -> None:
    path, record = perf_run
    for name in (record["files"]["table"], *record["files"]["plots"]):
        assert (path.parent / name).stat().st_size > 0
    assert {Path(name).suffix for name in record["files"]["plots"]} == {".png", ".pdf"}
    table = (path.parent / record["files"]["table"]).read_text()
    assert all(method in table for method in METHODS) and "n/a" in table


def test_an_unknown_method_is_named_and_nothing_is_measured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert perf(tmp_path / "out", "--methods", "contrastive_clip,no_such_method") == 2
    error = capsys.readouterr().err
    assert "'no_such_method'" in error and "contrastive_clip" in error  # what exists is listed
    assert not (tmp_path / "out").exists()
