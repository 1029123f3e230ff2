"""The smoke workflow end to end through Snakemake, in a temporary working directory."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from benchmark.registry import method_names, method_schedule
from tests.helpers import REPO, SMOKE, SNAKEMAKE, TASKS, planned_jobs, run, snakemake

RUN_METHODS = [m for m in method_names() if not method_schedule(m).published]
"""The methods of 'methods: all' in the smoke run: published models run only once given weights."""
ONE_METHOD_JOBS = {
    "pretrain": 1,
    "finetune": len(TASKS),
    "evaluate": len(TASKS),
    "robustness": len(TASKS),
    "aggregate": 1,
    "plots": 1,
    "all": 1,
}
"""What one method's file adds to a finished smoke run: its grid cells and the tables."""


def test_smoke_workflow_writes_tables(smoke_run: Path) -> None:
    tables = smoke_run / "results" / "smoke" / "tables"
    frame = pd.read_csv(tables / "main.csv")
    assert list(frame.columns) == [
        "dataset",
        "method",
        "seed",
        "task",
        "metric",
        "corruption",
        "severity",
        "value",
        "status",
    ]
    assert set(frame["method"]) >= {"contrastive_clip", "chance"}
    clip = frame[(frame["method"] == "contrastive_clip") & (frame["metric"] == "mean_R")]
    assert len(clip) == 1 and 0.0 <= clip["value"].iloc[0] <= 1.0
    whole_image = frame[(frame["method"] == "ref_whole_image") & (frame["metric"].isin(["AP", "AP50", "Acc@0.5"]))]
    assert len(whole_image) == 3 and (whole_image["value"] == 0.0).all()  # one image-sized box never fits an object
    markdown = (tables / "main.md").read_text()
    assert "| contrastive_clip |" in markdown and "| chance" in markdown and "| ref_all_objects" in markdown
    assert "over 1 seed(s)" in markdown and "config hash:" in markdown
    robustness = pd.read_csv(tables / "robustness.csv")
    assert {"gaussian_noise", "keyboard", "missing_text", "none"} <= set(robustness["corruption"])
    assert "## scenes — grounding (AP)" in (tables / "robustness.md").read_text()
    plots = smoke_run / "results" / "smoke" / "plots"
    for task in ("retrieval", "grounding"):
        assert (plots / f"robustness_{task}.pdf").stat().st_size > 0 and (
            plots / f"robustness_drop_{task}.png"
        ).exists()


def test_table_cells_are_the_values_of_the_per_seed_result_files(smoke_run: Path) -> None:
    """main.md shows, per method and metric, the mean of the per-seed evaluation files (one seed here)."""
    out = smoke_run / "results" / "smoke"
    markdown = (out / "tables" / "main.md").read_text()
    checked = 0
    for task, metric in (("retrieval", "mean_R"), ("retrieval", "t2i_R@1"), ("grounding", "AP"), ("grounding", "mIoU")):
        section = markdown.split(f"## scenes — {task}", 1)[1].split("## ", 1)[0]
        header = next(line for line in section.splitlines() if line.startswith("| method"))
        column = [c.strip() for c in header.strip("|").split("|")].index(metric)
        for method in ("contrastive_clip", "cross_attention"):
            files = sorted((out / "scenes" / "eval" / task / method).glob("seed*.json"))
            values = [
                next(r["value"] for r in json.loads(f.read_text())["rows"] if r["metric"] == metric) for f in files
            ]
            row = next(line for line in section.splitlines() if line.startswith(f"| {method} "))
            cell = [c.strip().strip("*_") for c in row.strip("|").split("|")][column]
            assert len(values) == 1 and cell == f"{100 * sum(values) / len(values):.1f}", (task, metric, method, cell)
            checked += 1
    assert checked == 8


def test_paper_macros_are_defined_by_the_run(smoke_run: Path) -> None:
    """Every \\fb macro paper/main.tex cites exists in the run's macros.tex (checked without pdflatex)."""
    from benchmark.report.paper import undefined_macros

    macros = (smoke_run / "results" / "smoke" / "tables" / "macros.tex").read_text()
    assert undefined_macros((REPO / "paper" / "main.tex").read_text(), macros) == []


def test_editing_a_method_file_reruns_only_its_jobs(smoke_run: Path) -> None:
    """README: editing baselines/<method>.py re-runs that method's jobs (its file is an input)."""
    path = smoke_run / "baselines" / "contrastive_clip.py"
    original, stat = path.read_bytes(), path.stat()
    try:
        path.write_bytes(original + b"\n# edited by a test\n")
        jobs = planned_jobs(snakemake(smoke_run, "--dry-run"))
    finally:  # put back content and time stamp, so other tests still see a finished run
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert jobs == ONE_METHOD_JOBS, jobs


def test_smoke_numbers_equal_the_committed_ones(smoke_run: Path) -> None:
    """main.csv equals the smoke run committed in tests/fixtures/smoke_main.csv (CPU, deterministic tokenizer,
    same seeds): a change that moves a smoke number must regenerate it and say why. Last regenerated when
    common random numbers took the method out of the run seeds and gave the towers seeds of their own
    (issue 23: every trained number moved), and the candidate-set retrieval rows (cand_*) and grounding's
    no_target_balanced_acc were added (issue 24)."""
    keys = ["dataset", "method", "seed", "task", "metric", "corruption", "severity"]

    def table(path: Path) -> pd.DataFrame:
        frame = pd.read_csv(path, comment="#")
        frame["seed"] = frame["seed"].fillna(-1).astype(int)  # reference rows have no seed (NaN ≠ NaN)
        return frame.set_index(keys).sort_index()

    before = table(REPO / "tests" / "fixtures" / "smoke_main.csv")
    now = table(smoke_run / "results" / "smoke" / "tables" / "main.csv")
    assert list(now.index) == list(before.index)
    assert (now["status"] == before["status"]).all()
    pd.testing.assert_series_equal(now["value"], before["value"], check_exact=True)


def test_a_plugin_task_and_dataset_schedule_exactly_their_jobs(smoke_run: Path, tmp_path: Path) -> None:
    """One task file and one dataset adapter file (plus a config naming the dataset) add only their jobs."""
    from tests.helpers import write_plugins

    tasks, datasets = write_plugins(tmp_path / "plugins")
    overlay = tmp_path / "toy.yaml"
    toy = {**smoke_config_block("scenes"), "kind": "toy_scenes"}
    overlay.write_text(yaml.safe_dump({"datasets": {"toy": toy}}))
    env = {"FUSEBENCH_TASKS": str(tasks), "FUSEBENCH_DATASETS": str(datasets)}
    jobs = planned_jobs(snakemake(smoke_run, "--dry-run", overlays=(overlay,), env=env))
    methods = len(RUN_METHODS)
    # the toy dataset: every task (2 built-in + the toy one); the scenes dataset: the toy task only
    pairs = len(TASKS) + 1 + 1
    assert jobs == {
        "dataset": 1,
        "tokenizer": 1,
        "pretrain": methods,
        "finetune": pairs * methods,
        "evaluate": pairs * methods,
        "robustness": pairs * methods,
        "reference": pairs,
        "aggregate": 1,
        "plots": 1,
        "all": 1,
    }, jobs
    assert planned_jobs(snakemake(smoke_run, "--dry-run")) == {}  # without them: nothing to do


def smoke_config_block(dataset: str) -> dict[str, Any]:
    """The smoke profile's resolved block for ``dataset``."""
    from benchmark.config import load_config

    return load_config([SMOKE])["datasets"][dataset]


def test_second_run_is_a_no_op(smoke_run: Path) -> None:
    assert planned_jobs(snakemake(smoke_run, "--dry-run")) == {}


def test_changing_an_evaluation_key_reruns_only_evaluation(smoke_run: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("evaluate:\n  batch_size: 64\n")
    jobs = planned_jobs(snakemake(smoke_run, "--dry-run", overlays=(overlay,)))
    # evaluation (clean and robustness grid) of every method and task, nothing upstream
    per_grid = len(RUN_METHODS) * len(TASKS)
    assert jobs == {"evaluate": per_grid, "robustness": per_grid, "aggregate": 1, "plots": 1, "all": 1}, jobs


def test_new_baseline_file_adds_only_its_jobs(smoke_run: Path) -> None:
    baselines = smoke_run / "baselines"
    shutil.copy(baselines / "contrastive_clip.py", baselines / "my_clip_variant.py")
    try:
        jobs = planned_jobs(snakemake(smoke_run, "--dry-run"))
    finally:
        (baselines / "my_clip_variant.py").unlink()
    assert jobs == ONE_METHOD_JOBS, jobs


def test_a_zero_shot_published_model_schedules_only_evaluation(smoke_run: Path, tmp_path: Path) -> None:
    """A published model given by one config line joins the run with its evaluation and robustness jobs,
    and no pretraining, fine-tuning or tokenizer job."""
    overlay = tmp_path / "published.yaml"
    overlay.write_text(yaml.safe_dump({"method_overrides": {"published_dual_encoder": {"pretrained": str(tmp_path)}}}))
    jobs = planned_jobs(snakemake(smoke_run, "--dry-run", overlays=(overlay,)))
    grid = len(TASKS)
    assert jobs == {"evaluate": grid, "robustness": grid, "aggregate": 1, "plots": 1, "all": 1}, jobs


def test_invalid_config_fails_before_any_job(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrain:\n  stepz: 3\n")
    result = run([*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(bad)], timeout=300)
    assert result.returncode != 0
    assert "unknown key 'pretrain.stepz'" in result.stderr
    assert "allowed keys in 'pretrain'" in result.stderr
    assert not (tmp_path / "results").exists()


def test_html_report_and_paper_build_on_the_smoke_run(smoke_run: Path) -> None:
    from tests.helpers import require_pdflatex

    report = smoke_run / "report.html"
    result = run(
        [*SNAKEMAKE, "--directory", str(smoke_run), "--configfile", str(SMOKE), "--report", str(report)],
        env={**os.environ, "FUSEBENCH_BASELINES": str(smoke_run / "baselines")},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text(errors="replace")
    assert "FuseBench run" in html and "main_metrics.png" in html
    require_pdflatex()
    result = run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "paper/main.pdf",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--cores",
            "2",
            "--directory",
            str(smoke_run),
            "--configfile",
            str(SMOKE),
        ],
        env={**os.environ, "FUSEBENCH_BASELINES": str(smoke_run / "baselines")},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (smoke_run / "paper" / "main.pdf").read_bytes()[:4] == b"%PDF"
