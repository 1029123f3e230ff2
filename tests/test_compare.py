"""``fusebench compare RUN REFERENCE``: verdicts per value and seed-mean, the per-method summary, the exit code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.report.compare import compare_frames, compare_runs, read_main
from tests.helpers import REPO

SMOKE_MAIN = REPO / "tests" / "fixtures" / "smoke_main.csv"
COLUMNS = ["dataset", "method", "seed", "task", "metric", "corruption", "severity", "value", "status"]


def tables(folder: Path, rows: list[tuple], stats: list[dict] | None = None) -> Path:
    """A tables folder with main.csv (rows: method, seed, metric, value[, status]) and optionally main_stats.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        [
            ("scenes", method, seed, "retrieval", metric, "none", 0, value, rest[0] if rest else "ok")
            for method, seed, metric, value, *rest in rows
        ],
        columns=COLUMNS,
    )
    (folder / "main.csv").write_text(frame.to_csv(index=False, float_format="%.6f") + "# hardware: cpu: test\n")
    if stats is not None:
        (folder / "main_stats.csv").write_text(pd.DataFrame(stats).to_csv(index=False, float_format="%.6f"))
    return folder


REFERENCE = [
    ("clip", 0, "mean_R", 0.40),
    ("clip", 1, "mean_R", 0.50),
    ("clip", 2, "mean_R", 0.60),
    ("clip", 0, "i2t_R@5", 0.70),
    ("clip", 1, "i2t_R@5", 0.80),
    ("clip", 2, "i2t_R@5", 0.90),
]


def verdicts(table: pd.DataFrame) -> dict[tuple[str, object], str]:
    return {(r.metric, r.seed): r.verdict for r in table.itertuples()}


def test_values_are_identical_inside_or_outside_the_seed_inclusive_interval(tmp_path: Path) -> None:
    reference = tables(tmp_path / "reference", REFERENCE)
    run = tables(
        tmp_path / "run",
        [
            ("clip", 0, "mean_R", 0.40),  # identical
            ("clip", 1, "mean_R", 0.59),  # inside 0.40 … 0.60
            ("clip", 2, "mean_R", 0.65),  # outside; the mean 0.546667 is inside
            ("clip", 0, "i2t_R@5", 0.95),  # i2t_R@5 is no headline metric: its mean outside fails nothing
            ("clip", 1, "i2t_R@5", 0.95),
            ("clip", 2, "i2t_R@5", 0.95),
        ],
    )
    table, text = compare_runs(run, reference, tmp_path / "comparison.csv")
    assert verdicts(table) == {
        ("mean_R", 0): "identical",
        ("mean_R", 1): "inside",
        ("mean_R", 2): "outside",
        ("mean_R", "mean"): "inside",
        ("i2t_R@5", 0): "outside",
        ("i2t_R@5", 1): "outside",
        ("i2t_R@5", 2): "outside",
        ("i2t_R@5", "mean"): "outside",
    }
    assert "every headline seed-mean is identical" in text and "| clip " in text
    assert len(pd.read_csv(tmp_path / "comparison.csv")) == len(table)
    assert main(["compare", str(run), str(reference)]) == 0


def test_a_headline_mean_outside_the_interval_exits_1_and_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stats = [
        {
            "dataset": "scenes",
            "task": "retrieval",
            "method": "clip",
            "metric": "mean_R",
            "ci_low": 0.35,
            "ci_high": 0.62,
        }
    ]
    reference = tables(tmp_path / "reference", REFERENCE, stats)
    inside = tables(tmp_path / "inside", [("clip", s, "mean_R", v) for s, v in enumerate((0.36, 0.36, 0.36))])
    assert main(["compare", str(inside), str(reference)]) == 0  # below every seed, inside the bootstrap interval
    outside = tables(tmp_path / "outside", [("clip", s, "mean_R", v) for s, v in enumerate((0.30, 0.31, 0.32))])
    capsys.readouterr()
    assert main(["compare", str(outside), str(reference)]) == 1
    printed = capsys.readouterr().out
    assert "1 headline seed-mean(s) outside" in printed
    assert "scenes retrieval clip mean_R: 0.310000, reference 0.500000 [0.350000, 0.620000]" in printed


def test_a_missing_value_or_a_changed_status_fails_a_headline(tmp_path: Path) -> None:
    reference = tables(tmp_path / "reference", [*REFERENCE[:3], ("text", 0, "mean_R", None, "not applicable: x")])
    run = tables(tmp_path / "run", [("clip", 0, "mean_R", 0.5), ("text", 0, "mean_R", 0.2)])
    table = compare_frames(read_main(run), read_main(reference))
    found = {(r.method, r.seed): r.verdict for r in table.itertuples()}
    assert found[("clip", 1)] == "missing" and found[("text", 0)] == "status differs"
    assert found[("clip", "mean")] == "identical"  # the mean of the seeds it has: 0.5 against 0.5
    assert found[("text", "mean")] == "status differs"
    assert main(["compare", str(run), str(reference)]) == 1


def test_the_smoke_run_against_itself_and_against_a_perturbed_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The committed smoke main.csv (what `make run PROFILE=smoke` writes) is identical to itself; moving one
    headline value (grounding AP of cross_attention) by a point fails, moving a non-headline one does not."""
    run, reference = tmp_path / "run", tmp_path / "reference"
    for folder in (run, reference):
        folder.mkdir()
        shutil.copy(SMOKE_MAIN, folder / "main.csv")
    assert main(["compare", str(run), str(reference)]) == 0
    assert "identical" in capsys.readouterr().out
    frame = pd.read_csv(run / "main.csv", comment="#")
    moved = (frame["method"] == "cross_attention") & (frame["task"] == "grounding") & (frame["metric"] == "AR@1")
    frame.loc[moved, "value"] += 0.01
    frame.to_csv(run / "main.csv", index=False, float_format="%.6f")
    assert main(["compare", str(run), str(reference)]) == 0  # AR@1 is no headline metric
    frame.loc[(frame["method"] == "cross_attention") & (frame["metric"] == "AP"), "value"] += 0.01
    frame.to_csv(run / "main.csv", index=False, float_format="%.6f")
    capsys.readouterr()
    assert main(["compare", str(run), str(reference)]) == 1
    printed = capsys.readouterr().out
    assert "scenes grounding cross_attention AP: 0.010857, reference 0.000857" in printed
    table, _ = compare_runs(run, reference)
    assert set(table.loc[table["verdict"] == "outside", "metric"]) == {"AP", "AR@1"}


def test_a_folder_without_main_csv_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reference = tables(tmp_path / "reference", REFERENCE)
    assert main(["compare", str(tmp_path / "nowhere"), str(reference)]) == 3
    assert "no main.csv in" in capsys.readouterr().err
