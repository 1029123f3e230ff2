"""Failures are rows, not gaps: after failed jobs the tables still come, each missing result marked.

A unit test builds the files a failed run leaves (result files, logs, the expected-results file)
by hand; a workflow test runs the smoke profile with a method whose pretraining raises, under
``--keep-going``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from benchmark.report.aggregate import PARTIAL_NOTE, error_line, read_expected, run_aggregate
from tests.helpers import (
    AGGREGATE_VALUES,
    REPO,
    TASKS,
    markdown_rows,
    planned_jobs,
    retrieval_items_hitting,
    snakemake,
    write_evaluation,
)

DIVERGED = "training diverged: non-finite loss (nan) at step 3 of m1 seed 2 (objective itc)"
LOGS = {
    "diverged": (
        "12:00:00 fusebench INFO pretraining m1 seed 2\n"
        "Traceback (most recent call last):\n"
        '  File "benchmark/train/loop.py", line 1, in train\n'
        "FloatingPointError: non-finite loss\n"
        f"fusebench: {DIVERGED}\n"
    ),
    "killed": "12:00:00 fusebench INFO pretraining\n12:00:01 fusebench INFO step 10 loss 2.3\n",
    "empty": "",
}


def test_error_line_is_the_last_fusebench_line_else_the_end_of_the_log(tmp_path: Path) -> None:
    paths = {name: tmp_path / f"{name}.log" for name in LOGS}
    for name, text in LOGS.items():
        paths[name].write_text(text)
    assert error_line(paths["diverged"]) == DIVERGED
    assert (
        error_line(paths["killed"]) == "no error line (killed?); the log ends: 12:00:01 fusebench INFO step 10 loss 2.3"
    )
    assert error_line(paths["empty"]).startswith("empty log")
    paths["long"] = tmp_path / "long.log"
    paths["long"].write_text("fusebench: input error: " + "x" * 1000 + "\n")
    assert len(error_line(paths["long"])) == 300 and error_line(paths["long"]).endswith("…")


def hand_made_run(root: Path) -> Path:
    """What a failed run leaves, for methods m1 and m2 (seeds 0–2) and m3 (seed 0): m1's pretraining of
    seed 2 diverged, m3's never started; every other job finished. Returns the expected-results file."""
    from benchmark.io import write_json
    from benchmark.results import row

    items = retrieval_items_hitting(12, 2, [])
    robustness_settings = {"image": ["gaussian_noise"], "text": [], "missing": [], "severities": [1]}
    cells = []
    for method, seeds in (("m1", range(3)), ("m2", range(3)), ("m3", range(1))):
        for seed in seeds:
            failed, never = (method, seed) == ("m1", 2), method == "m3"
            wildcards = {"dataset": "d", "task": "retrieval", "method": method, "seed": seed}

            def job(rule: str, log: str | None = None, **keys: Any) -> dict[str, Any]:
                name = "_".join(str(v) for v in keys.values())
                if log is not None:
                    (root / "logs" / rule).mkdir(parents=True, exist_ok=True)
                    (root / "logs" / rule / f"{name}.log").write_text(log)
                return {
                    "rule": rule,
                    "wildcards": keys,
                    "output": str(root / rule / f"{name}.json"),
                    "log": str(root / "logs" / rule / f"{name}.log"),
                }

            pretrain = job("pretrain", LOGS["diverged"] if failed else None, dataset="d", method=method, seed=seed)
            finetune = job("finetune", **wildcards)
            evaluate = job("evaluate", **wildcards)
            robustness = job("robustness", **wildcards)
            evaluate["spec"] = {"stage": "evaluate", **wildcards, "ks": [1]}
            robustness["spec"] = {
                "stage": "robustness",
                **wildcards,
                "task_settings": {"ks": [1]},
                "robustness": robustness_settings,
            }
            if not (failed or never):
                for finished in (pretrain, finetune):
                    Path(finished["output"]).parent.mkdir(parents=True, exist_ok=True)
                    Path(finished["output"]).write_text("{}")
                values = {metric: v[seed] for metric, v in AGGREGATE_VALUES[method].items()}
                write_evaluation(Path(evaluate["output"]), method, seed, values, items)
                spec = robustness["spec"]
                rows = [row(spec, method, m, v, corruption="none") for m, v in values.items()]
                rows += [row(spec, method, m, v / 2, "ok", "gaussian_noise", 1) for m, v in values.items()]
                write_json(Path(robustness["output"]), {"spec": spec, "rows": rows})
            cells.append(
                {**wildcards, "upstream": [pretrain, finetune], "evaluate": evaluate, "robustness": robustness}
            )
    expected = root / "expected.json"
    expected.write_text(json.dumps({"cells": cells, "references": [], "training": []}))
    return expected


def test_partial_aggregation_marks_missing_results_and_counts_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hand-made result files and logs → main.csv rows 'failed: <error> (log: …)', seeds '2/3', a marked mean."""

    expected = hand_made_run(tmp_path)
    results, robustness, training, missing = read_expected(expected)
    assert len(results) == len(robustness) == 5 and training == []
    log = tmp_path / "logs" / "pretrain" / "d_m1_2.log"
    failed = f"failed: {DIVERGED} (log: {log})"
    assert missing.failed == {"pretrain d m1 seed 2": failed}
    assert missing.not_run == ["pretrain d m3 seed 0"]
    summary = missing.summary(tmp_path / "tables")
    assert f"1 job failed:\n  pretrain d m1 seed 2: {DIVERGED} (log: {log})" in summary
    assert "1 job did not run" in summary and str(tmp_path / "tables" / "main.md") in summary

    monkeypatch.setattr("benchmark.report.aggregate.run.git_state", lambda: {"commit": "0" * 40, "dirty": False})
    report = {"reference_method": "m2", "summary_metric": {"retrieval": "mean_R"}, "max_images": 12}
    run_aggregate(results, tmp_path / "tables", "hash", robustness, report, training, missing)

    csv = pd.read_csv(tmp_path / "tables" / "main.csv", comment="#")
    m1 = csv[(csv["method"] == "m1") & (csv["seed"] == 2)]
    assert set(m1["metric"]) == set(AGGREGATE_VALUES["m1"]) and m1["value"].isna().all()
    assert (m1["status"] == failed).all()
    m3 = csv[csv["method"] == "m3"]
    assert len(m3) == 3 and m3["status"].str.startswith("not run: pretrain d m3 seed 0").all()
    assert (csv[csv["method"] == "m2"]["status"] == "ok").all() and len(csv) == 2 * 3 * 3 + 3

    stats = pd.read_csv(tmp_path / "tables" / "main_stats.csv", comment="#").set_index(["method", "metric"])
    assert stats.loc[("m1", "mean_R"), ["n", "n_configured"]].tolist() == [2, 3]
    assert stats.loc[("m2", "mean_R"), ["n", "n_configured"]].tolist() == [3, 3]
    assert stats.loc[("m1", "mean_R"), "mean"] == pytest.approx((0.47 + 0.60) / 2)  # the seeds that succeeded

    markdown = (tmp_path / "tables" / "main.md").read_text()
    table = markdown_rows(markdown, "## d — retrieval")
    row = dict(zip(table["header"], table["m1"]))
    assert row["seeds"] == "2/3" and row["mean_R"].strip("*_") == "53.5 ± 9.2†"
    assert dict(zip(table["header"], table["m2"]))["seeds"] == "3"
    assert table["m3"][1:] == ["0/1", "not run", "not run", "not run", "—"]  # —: no trainable-parameter count
    assert PARTIAL_NOTE in markdown and markdown.startswith("# FuseBench results\n\n**Partial results")
    assert f"- m1, seed 2: {failed}" in markdown
    assert "- m3, seed 0: not run: pretrain d m3 seed 0 did not start" in markdown
    assert "partial: 1 job(s) failed, 1 did not run" in markdown
    assert "\\textsuperscript{\\dag}" in (tmp_path / "tables" / "main.tex").read_text()

    robust = pd.read_csv(tmp_path / "tables" / "robustness.csv", comment="#")
    assert (robust[(robust["method"] == "m1") & (robust["seed"] == 2)]["status"] == failed).all()
    assert f"- d — retrieval: m1, seed 2: {failed}" in (tmp_path / "tables" / "robustness.md").read_text()


BROKEN = "broken_clip"
BROKEN_ERROR = "deliberately broken by tests/test_failed_jobs.py"
BREAK = f'''

def _broken_pretrain_losses(self, batch):
    raise RuntimeError("{BROKEN_ERROR}")


ContrastiveCLIP.pretrain_losses = _broken_pretrain_losses
'''


def test_a_failing_method_leaves_tables_plots_and_a_summary(tmp_path: Path) -> None:
    """late_fusion (the robustness reference) and a copy of contrastive_clip whose pretraining raises, under
    --keep-going: Snakemake fails, and yet main.csv holds late_fusion's numbers and the broken method's rows
    'failed: <error> (log: <path>)'; the failed job is listed at the end; the next run retries it and
    rebuilds the tables."""
    baselines = tmp_path / "baselines"  # the run's method folder (tests.helpers.snakemake): adds the broken method
    baselines.mkdir()
    (baselines / f"{BROKEN}.py").write_text((REPO / "baselines" / "contrastive_clip.py").read_text() + BREAK)
    both, working_only = tmp_path / "both.yaml", tmp_path / "working.yaml"
    both.write_text(f"methods: [late_fusion, {BROKEN}]\n")
    working_only.write_text("methods: [late_fusion]\n")

    result = snakemake(tmp_path, "--keep-going", overlays=(both,))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    log = f"results/smoke/logs/scenes/pretrain/{BROKEN}/seed0.log"
    error = f"pretrain failed: RuntimeError: {BROKEN_ERROR}"
    assert f"1 job failed:\n  pretrain scenes {BROKEN} seed 0: {error} (log: {log})" in output, output[-3000:]
    assert "results/smoke/tables/main.md" in output and "Plots: results/smoke/plots" in output

    tables = tmp_path / "results" / "smoke" / "tables"
    frame = pd.read_csv(tables / "main.csv", comment="#")
    committed = pd.read_csv(REPO / "tests" / "fixtures" / "smoke_main.csv", comment="#")  # a run without failures
    working, before = (
        table[table["method"] == "late_fusion"].sort_values(["task", "metric"]).reset_index(drop=True)
        for table in (frame, committed)
    )
    pd.testing.assert_frame_equal(working, before)  # the broken method changes nobody else's numbers
    broken = frame[frame["method"] == BROKEN]
    assert set(broken["task"]) == set(TASKS) and broken["value"].isna().all()
    assert (broken["status"] == f"failed: {error} (log: {log})").all()
    assert {"chance", "ref_whole_image"} <= set(frame["method"])  # the reference rows still come
    markdown = (tables / "main.md").read_text()
    assert markdown_rows(markdown, "## scenes — retrieval")[BROKEN][1:3] == ["0/1", "failed"]
    assert f"- {BROKEN}, seed 0: failed: {error} (log: {log})" in markdown
    robustness = pd.read_csv(tables / "robustness.csv", comment="#")
    assert robustness[robustness["method"] == BROKEN]["status"].str.startswith("failed: ").all()
    assert (tmp_path / "results" / "smoke" / "plots" / "main_metrics.png").stat().st_size > 0
    report = tmp_path / "report.html"
    # the HTML report of the partial tables
    assert snakemake(tmp_path, "--report", str(report), overlays=(both,)).returncode == 0
    assert "main_metrics.png" in report.read_text(errors="replace")

    # The failure stays a failure: the broken method's jobs run again, and so do the tables.
    retry = {"pretrain": 1, "finetune": len(TASKS), "evaluate": len(TASKS), "robustness": len(TASKS)}
    dry_run = planned_jobs(snakemake(tmp_path, "--dry-run", overlays=(both,)))
    assert dry_run == {**retry, "aggregate": 1, "plots": 1, "all": 1}
    # Without the broken method every other result is there, and the partial tables are still rebuilt.
    dry_run = planned_jobs(snakemake(tmp_path, "--dry-run", overlays=(working_only,)))
    assert dry_run == {"aggregate": 1, "plots": 1, "all": 1}
