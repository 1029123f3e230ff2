"""Equal tuning budget: the same learning-rate trials for every pretrained method, the factor chosen on val.

The choice rule is checked on hand-made trial results; the workflow's schedule by a dry run (every
pretrained method gets exactly one trial per factor, fine-tuned on every task, and its jobs train with
the choice); and one method end to end on the smoke profile, from trials to the evaluated checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmark.config import load_config, stage_spec, trial_spec, validate_config
from benchmark.errors import ConfigError, DataFileError
from benchmark.registry import method_names, method_schedule
from benchmark.train.tuning import apply_choice, choose
from tests.helpers import TASKS, planned_jobs, snakemake

FACTORS = [0.5, 1.0, 2.0]


def _trial(value: float | None, status: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"train": {"validation": {"selected_value": value}}}
    return {**result, "status": status} if status else result


def test_the_factor_with_the_best_mean_val_value_over_tasks_wins() -> None:
    trials = {
        0.5: {"retrieval": _trial(0.30), "grounding": _trial(0.10)},  # mean 0.20
        1.0: {"retrieval": _trial(0.20), "grounding": _trial(0.16)},  # mean 0.18
        2.0: {"retrieval": _trial(0.40), "grounding": _trial(None)},  # a task not measured: loses
    }
    choice = choose(trials)
    assert choice["lr_factor"] == 0.5
    assert [row["mean"] for row in choice["trials"]] == [pytest.approx(0.20), pytest.approx(0.18), None]


def test_ties_go_to_the_factor_nearest_one_and_tasks_the_method_cannot_do_are_left_out() -> None:
    not_applicable = _trial(None, status="not applicable")
    trials = {f: {"retrieval": not_applicable, "grounding": _trial(0.25)} for f in FACTORS}
    assert choose(trials)["lr_factor"] == 1.0
    trials = {0.5: {"grounding": _trial(0.3)}, 2.0: {"grounding": _trial(0.3)}}
    assert choose(trials)["lr_factor"] == 0.5  # |log 0.5| = |log 2|: the smaller
    with pytest.raises(ValueError, match="no tuning trial measured"):
        choose({1.0: {"grounding": _trial(None)}})


def test_a_trial_scales_the_learning_rates_and_the_choice_is_applied_and_recorded(tmp_path: Path) -> None:
    config = load_config(overrides=[f"tuning.lr_factors={FACTORS}"])
    pre = trial_spec(config, "pretrain", 2.0, dataset="scenes", method="early_concat")
    assert pre["optim"]["lr"] == 2 * config["pretrain"]["lr"] and pre["tuning_trial"] == 2.0
    assert pre["seed"] == config["tuning"]["seed"] and "tuning" not in pre
    fine = trial_spec(config, "finetune", 0.5, dataset="scenes", method="early_concat", task="grounding")
    assert fine["optim"]["lr"] == 0.5 * config["finetune"]["grounding"]["lr"]

    spec = stage_spec(config, "pretrain", dataset="scenes", method="early_concat", seed=0)
    assert spec["tuning"] == {"lr_factors": FACTORS, "seed": config["tuning"]["seed"]}
    choice = tmp_path / "choice.json"
    choice.write_text(json.dumps({"method": "early_concat", "lr_factor": 0.5}))
    tuned = apply_choice(spec, choice)
    assert tuned["optim"]["lr"] == 0.5 * spec["optim"]["lr"] and tuned["tuned"]["lr_factor"] == 0.5
    with pytest.raises(DataFileError, match="is for 'late_fusion', not 'early_concat'"):
        choice.write_text(json.dumps({"method": "late_fusion", "lr_factor": 0.5}))
        apply_choice(spec, choice)
    untuned = load_config()
    assert "tuning" not in stage_spec(untuned, "pretrain", dataset="scenes", method="early_concat", seed=0)


def test_tuning_needs_validation() -> None:
    with pytest.raises(ConfigError, match="tuning.lr_factors"):
        validate_config(load_config(overrides=[f"tuning.lr_factors={FACTORS}", "validation.every=null"]))


def test_every_pretrained_method_gets_the_same_trials_and_trains_with_its_choice(tmp_path: Path) -> None:
    overlay = tmp_path / "tuning.yaml"
    overlay.write_text(yaml.safe_dump({"tuning": {"lr_factors": FACTORS}}))
    schedules = {m: method_schedule(m) for m in method_names()}
    pretrained = [m for m, s in schedules.items() if not s.published and "pretrain" in s.training_stages]
    result = snakemake(tmp_path, "--dry-run", "--printshellcmds", overlays=(overlay,))
    jobs = planned_jobs(result)
    assert jobs["tune_pretrain"] == len(pretrained) * len(FACTORS)
    assert jobs["tune_finetune"] == len(pretrained) * len(FACTORS) * len(TASKS)
    assert jobs["tune_select"] == len(pretrained)
    assert result.stdout.count("--tuned results/smoke/scenes/tuning/") == jobs["pretrain"] + jobs["finetune"]


def test_one_method_tuned_end_to_end(tmp_path: Path) -> None:
    overlay = tmp_path / "one.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "methods": ["contrastive_clip"],
                "tasks": ["retrieval"],
                "tuning": {"lr_factors": [0.5, 2.0], "seed": 7},
                "validation": {"every": 10},
                "robustness": {"image": ["occlusion"], "text": [], "missing": [], "severities": [5]},
            }
        )
    )
    result = snakemake(tmp_path, overlays=(overlay,))
    assert result.returncode == 0, result.stderr[-4000:]
    out = tmp_path / "results" / "smoke" / "scenes"
    choice = json.loads((out / "tuning" / "contrastive_clip" / "choice.json").read_text())
    means = {row["lr_factor"]: row["mean"] for row in choice["trials"]}
    assert choice["lr_factor"] == max(means, key=lambda f: means[f])
    for factor in (0.5, 2.0):
        trial = json.loads(
            (out / "tuning/contrastive_clip" / f"lr{factor:g}" / "finetune/retrieval/result.json").read_text()
        )
        assert trial["spec"]["seed"] == 7 and trial["spec"]["tuning_trial"] == factor
    trained = json.loads((out / "pretrain/contrastive_clip/seed0/result.json").read_text())
    assert trained["spec"]["tuned"]["lr_factor"] == choice["lr_factor"]
    base = load_config([Path("workflows/config/smoke.yaml")])["pretrain"]["lr"]
    assert trained["spec"]["optim"]["lr"] == pytest.approx(base * choice["lr_factor"])
    tables = tmp_path / "results" / "smoke" / "tables"
    assert "contrastive_clip" in (tables / "selection.md").read_text()
