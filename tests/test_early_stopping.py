"""Training to convergence with the step cap as a safety net (issue 23, item 1).

A job stops once its watched val metric has not improved by ``min_delta`` for ``patience`` validation
points; a job that reaches its cap while its curve still rises is flagged, and the tables mark its row; a
job killed and resumed stops at the same step, with the same weights, as one that never stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmark.config import stage_spec
from benchmark.report.aggregate.convergence import CAPPED_MARK, capped_rows
from benchmark.report.aggregate.efficiency import compute_table, efficiency_frame, efficiency_tables
from benchmark.stages import run_pretrain
from benchmark.stages.training import compute_used
from benchmark.train.checkpoint import read_metadata
from benchmark.train.loop import TrainReport, Validation, train
from benchmark.train.stopping import EarlyStopping, StoppingRule, still_improving, trend_rise
from tests.helpers import (
    CPU,
    clip_model_and_data,
    optim_settings,
    pretrain_loss_fn,
    scripted_validation,
    validated_clip_run,
)

FLAT = [0.1, 0.5, 0.6, 0.603, 0.601, 0.6, 0.58, 0.9, 0.95]
"""A val curve that flattens after step 20 (the later rise must never be reached with patience 3)."""
RISING = [0.1, 0.2, 0.3, 0.4, 0.5]


def _run(
    setup: tuple[Path, Path, dict],
    state: Path,
    values: list[float],
    steps: int,
    patience: int | None,
    min_delta: float = 0.01,
) -> tuple[TrainReport, torch.nn.Module]:
    """A fresh model trained with a scripted val curve under ``patience``; its report and the model."""
    rule = StoppingRule((("val_score", True),), patience, min_delta)
    validation = Validation(10, scripted_validation(values, []), "val_score", stopping=rule)
    return validated_clip_run(setup, state, validation, steps)


def test_the_rule_counts_points_without_a_gain_of_min_delta_in_either_direction() -> None:
    rising = EarlyStopping(StoppingRule((("m", True),), patience=2, min_delta=0.01))
    for value in (0.1, 0.5, 0.505, 0.509):  # +0.005 and +0.009 are within min_delta of the best (0.5)
        rising.update({"m": value})
    assert rising.converged and rising.state() == {"best": {"m": 0.5}, "since": 2, "started": True}
    falling = EarlyStopping(StoppingRule((("loss", False),), patience=2, min_delta=0.01))
    for value in (2.0, 1.5, 1.45, float("nan")):  # a loss: lower is better; NaN is no improvement
        falling.update({"loss": value})
    assert falling.state() == {"best": {"loss": 1.45}, "since": 1, "started": True} and not falling.converged
    off = EarlyStopping(StoppingRule((("m", True),), patience=None))
    for value in (0.5, 0.4, 0.3, 0.2):
        off.update({"m": value})
    assert not off.converged  # patience None: only the cap stops a job
    resumed = EarlyStopping(rising.rule, json.loads(json.dumps(rising.state())))
    assert resumed.state() == rising.state() and resumed.converged
    with pytest.raises(KeyError, match="'m'"):
        rising.update({"other": 1.0})


def test_pretraining_converges_only_when_no_watched_metric_improves() -> None:
    """Retrieval on a plateau at chance while the objective still falls (early concat's first ~400 steps)."""
    both = EarlyStopping(StoppingRule((("loss", False), ("mean_R", True)), patience=2, min_delta=0.01))
    for loss, recall in ((3.0, 0.10), (2.5, 0.10), (2.2, 0.101), (2.0, 0.099), (1.995, 0.3), (1.992, 0.305)):
        both.update({"loss": loss, "mean_R": recall})
        assert not both.converged
    both.update({"loss": 1.992, "mean_R": 0.302})
    assert both.converged and both.state() == {"best": {"loss": 2.0, "mean_R": 0.3}, "since": 2, "started": True}


def test_a_curve_that_never_left_its_first_point_has_not_converged() -> None:
    """At chance from the start (late fusion's fine-tuning before it takes off): no stop until it improves."""
    flat = EarlyStopping(StoppingRule((("m", True),), patience=2, min_delta=0.01))
    for value in (0.1, 0.1, 0.104, 0.098, 0.1, 0.1):
        flat.update({"m": value})
    assert flat.since == 5 and not flat.converged
    flat.update({"m": 0.3})  # takes off
    flat.update({"m": 0.305})
    assert not flat.converged
    flat.update({"m": 0.3})
    assert flat.converged


def test_the_trend_is_the_least_squares_rise_over_the_last_points() -> None:
    rule = StoppingRule((("m", True),), patience=3, min_delta=0.05)  # the last 4 points
    curve = [{"step": s, "m": v} for s, v in [(0, 9.0), (10, 0.1), (20, 0.2), (30, 0.3), (40, 0.4)]]
    assert trend_rise(curve, rule)["m"] == pytest.approx(0.3)  # slope 0.01 per step over 30 steps; step 0 left out
    assert still_improving(curve, rule)
    assert not still_improving(curve, StoppingRule((("m", True),), patience=3, min_delta=0.3))  # not *more*
    noisy_flat = [{"step": s, "m": v} for s, v in [(10, 0.5), (20, 0.52), (30, 0.49), (40, 0.51)]]
    assert not still_improving(noisy_flat, rule)
    loss = [{"step": s, "loss": v, "m": 0.5} for s, v in [(0, 3.0), (10, 2.0), (20, 1.0)]]
    two = StoppingRule((("loss", False), ("m", True)), patience=3)
    assert trend_rise(loss, two) == pytest.approx({"loss": 2.0, "m": 0.0})  # a falling loss improves
    assert still_improving(loss, two)  # one watched curve improving is enough
    assert still_improving(loss[:2], two) is None  # the untrained model and the last step: no trend (smoke runs)


def test_a_flattening_curve_stops_within_patience_points_and_a_rising_one_runs_to_the_cap(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path
) -> None:
    setup = (tiny_dataset, tiny_tokenizer_file, smoke_config)
    uncapped = _run(setup, tmp_path / "a", FLAT, 80, None)[0]
    stopped = _run(setup, tmp_path / "b", FLAT, 80, 3)[0]
    # best at step 20 (0.6); 30, 40 and 50 gain less than min_delta over it: 3 points, stop at 50
    assert (stopped.steps, stopped.steps_used, stopped.stop_reason) == (80, 50, "converged")
    assert stopped.still_improving is False
    assert [p["step"] for p in stopped.validation["curve"]] == [0, 10, 20, 30, 40, 50]
    assert stopped.validation["selected_step"] == 30  # selection keeps the highest point, min_delta or not
    assert stopped.validation["stopping"]["since"] == 3 and stopped.validation["stopping"]["best"] == {"val_score": 0.6}
    # the schedule spans the cap: stopping early changes no step before it
    assert stopped.history == uncapped.history[:5] and stopped.history[-1]["step"] == 50
    assert (uncapped.steps_used, uncapped.stop_reason) == (80, "cap")

    rising = _run(setup, tmp_path / "c", RISING, 40, 3)[0]
    assert (rising.steps_used, rising.stop_reason, rising.still_improving) == (40, "cap", True)
    assert rising.validation["stopping"]["trend_rise"] == pytest.approx({"val_score": 0.3})


def test_a_resumed_job_stops_at_the_same_step_with_the_same_weights(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path
) -> None:
    setup = (tiny_dataset, tiny_tokenizer_file, smoke_config)
    straight, straight_model = _run(setup, tmp_path / "a", FLAT, 80, 3)

    state = tmp_path / "b" / "training_state.partial.safetensors"
    state.parent.mkdir()
    model, data = clip_model_and_data(*setup)
    losses = pretrain_loss_fn(model, data)

    def crash_at_45(step: int) -> dict[str, torch.Tensor]:
        if step == 45:  # after the points at 30 and 40, which did not improve on step 20
            raise KeyboardInterrupt("killed")
        return losses(step)

    rule = StoppingRule((("val_score", True),), 3, 0.01)
    with pytest.raises(KeyboardInterrupt):
        train(
            model,
            crash_at_45,
            model.objective_weights,
            optim_settings(80),
            CPU,
            0,
            state,
            "s",
            "t",
            Validation(10, scripted_validation(FLAT, []), "val_score", stopping=rule),
        )
    saved = read_metadata(state)
    assert saved["step"] == 40 and saved["progress"]["stopping"] == {
        "best": {"val_score": 0.6},
        "since": 2,
        "started": True,
    }

    model, data = clip_model_and_data(*setup)
    seen = Validation(
        10, scripted_validation(FLAT[5:], []), "val_score", stopping=rule
    )  # points from step 50 on remain
    resumed = train(
        model, pretrain_loss_fn(model, data), model.objective_weights, optim_settings(80), CPU, 0, state, "s", "t", seen
    )
    assert resumed.resumed_from == 40
    assert (resumed.steps_used, resumed.stop_reason) == (straight.steps_used, straight.stop_reason) == (50, "converged")
    assert resumed.validation == straight.validation and resumed.history == straight.history
    assert all(torch.equal(model.state_dict()[k], v) for k, v in straight_model.state_dict().items())


def test_the_stage_records_steps_used_and_why_it_stopped_and_the_tables_mark_a_capped_row(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path
) -> None:
    config = {
        **smoke_config,
        "pretrain": {**smoke_config["pretrain"], "steps": 20, "batch_size": 16, "warmup_steps": 2},
        # min_delta 10: no gain on val mean_R (a fraction) or val_loss counts: the curve never starts, the cap stops it
        "validation": {**smoke_config["validation"], "every": 5, "max_images": 12, "patience": 1, "min_delta": 10.0},
    }
    spec = stage_spec(config, "pretrain", dataset="scenes", method="contrastive_clip", seed=0)
    assert (spec["validation"]["patience"], spec["validation"]["min_delta"]) == (1, 10.0)
    off = stage_spec({**config, "validation": {**config["validation"], "patience": None}}, "pretrain", **_job())
    assert "patience" not in off["validation"] and "min_delta" not in off["validation"]  # off: specs as before
    run_pretrain(spec, tiny_dataset, tiny_tokenizer_file, tmp_path / "pre")
    record = json.loads((tmp_path / "pre" / "result.json").read_text())
    train_record = record["train"]
    assert (train_record["steps"], train_record["steps_used"], train_record["stop_reason"]) == (20, 20, "cap")
    assert train_record["still_improving"] is False  # no fitted rise exceeds min_delta
    stopping = train_record["validation"]["stopping"]
    assert stopping["metrics"] == {"val_loss": "lower", "val_mean_R": "higher"}  # the objective and val retrieval
    assert (stopping["since"], stopping["started"]) == (4, False)
    per_step = record["efficiency"]["flops_train_per_step"]
    assert record["budget"]["steps"] == record["compute_used"]["steps"] == 20
    assert record["compute_used"]["flops"] == pytest.approx(20 * per_step)

    converged = {**record, "compute_used": compute_used(5, 16, per_step)}  # as a job stopped at step 5 records it
    frame = efficiency_frame([converged], [])
    assert frame.loc[0, "steps_used_pretrain"] == 5
    assert frame.loc[0, "flops_used_pretrain"] == pytest.approx(5 * per_step)
    assert list(compute_table(frame).columns) == ["method", "pretrain\nsteps", "pretrain\nTFLOPs"]
    assert not any("used" in c or "steps" in c for c in efficiency_tables(frame)[0].columns)  # cost keeps its width

    capped = {**record, "train": {**train_record, "stop_reason": "cap", "still_improving": True}}
    finetuned = {
        "spec": {"stage": "finetune", "task": "retrieval", **_job()},
        "train": {"stop_reason": "converged", "still_improving": False},
    }
    rows = capped_rows([capped, finetuned])
    assert rows.methods("scenes", "retrieval") == {"contrastive_clip"}
    assert "contrastive_clip seed 0 pretraining" in rows.note("scenes", "retrieval")
    assert "3 points (min_delta 10)" in rows.note("scenes", "retrieval")
    assert not capped_rows([record, finetuned]).methods("scenes", "retrieval")  # converged: no mark


def _job() -> dict[str, Any]:
    return {"dataset": "scenes", "method": "contrastive_clip", "seed": 0}


def test_main_tables_mark_the_capped_row_with_a_footnote() -> None:
    import pandas as pd

    from benchmark.report.aggregate.convergence import Capped
    from benchmark.report.aggregate.main_tables import main_latex, main_markdown

    stats = pd.DataFrame(
        [
            {
                "dataset": "scenes",
                "task": "retrieval",
                "method": method,
                "metric": "mean_R",
                "mean": value,
                "std": 0.01,
                "n": 1,
                "status": "ok",
                "reference": False,
                "best": method == "a",
                "not_worse_than_best": method == "a",
                "ci_low": value - 0.1,
                "ci_high": value + 0.1,
            }
            for method, value in (("a", 0.5), ("b", 0.4))
        ]
    )
    capped = Capped({("scenes", "retrieval"): {"b"}}, {("scenes", "retrieval"): ["b seed 0 fine-tuning"]})
    capped.rules[("scenes", "retrieval")] = {(6, 0.005)}
    markdown = main_markdown(stats, {"config hash": "x"}, capped=capped)
    assert f"| b {CAPPED_MARK}" in markdown and f"| a {CAPPED_MARK}" not in markdown
    assert "‡ stopped at its step cap while still improving on val (b seed 0 fine-tuning)" in markdown
    assert "last 6 points (min_delta 0.005)" in markdown
    latex = main_latex(stats, {"config hash": "x"}, capped=capped)
    assert r"b \textsuperscript{\ddag}" in latex and "still improving" in latex
    assert CAPPED_MARK not in main_markdown(stats, {"config hash": "x"})


def test_captions_and_selection_say_where_each_job_stopped() -> None:
    from benchmark.report.curves import budget_text, selection_markdown

    def job(stage: str, reason: str, used: int, improving: bool | None, **spec: Any) -> dict[str, Any]:
        validation = {"curve": [], "selected_step": used, "metric": "val_mean_R", "selected_value": 0.5}
        return {
            "spec": {"stage": stage, "dataset": "scenes", "method": "m", "seed": 0, **spec},
            "budget": {"unit": "flops", "amount": 1e12, "steps": 900, "samples": 900},
            "train": {"steps": 900, "steps_used": used, "stop_reason": reason, "still_improving": improving}
            | {"validation": validation},
        }

    converged = job("pretrain", "converged", 400, False)
    assert budget_text([converged]).endswith(
        "These are caps: early stopping ended jobs sooner (compute used: efficiency.md)."
    )
    assert "caps" not in budget_text([job("pretrain", "cap", 900, True)])
    markdown = selection_markdown([converged, job("finetune", "cap", 900, True, task="retrieval")], "footer")
    assert "| scenes    | m        | converged at 400     |" in markdown and "cap at 900 ↑" in markdown
