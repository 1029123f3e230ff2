"""Equal tuning budget: the same learning-rate trials for every pretrained method, the factors chosen on val,
the pretraining factor and each task's fine-tuning factor separately.

The choice rule is checked on hand-made trial results; the workflow's schedule by a dry run (every
pretrained method gets one pretraining trial per factor, each fine-tuned on every task, then one
fine-tuning trial per factor and task from the chosen pretraining, and its jobs train with the choices);
and one method end to end on the smoke profile, from trials to the evaluated checkpoint.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmark.config import load_config, stage_spec, trial_spec, validate_config
from benchmark.errors import ConfigError, DataFileError
from benchmark.registry import method_names, method_schedule
from benchmark.stages.tuning import run_tune_select
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


def test_a_trial_scales_only_its_stages_learning_rate_and_the_choices_are_applied_and_recorded(
    tmp_path: Path,
) -> None:
    config = load_config()  # tuning is on in the default profile
    assert config["tuning"]["lr_factors"] == FACTORS
    pre = trial_spec(config, "pretrain", 2.0, dataset="scenes", method="early_concat")
    assert pre["optim"]["lr"] == 2 * config["pretrain"]["lr"]
    assert pre["tuning_trial"] == {"stage": "pretrain", "lr_factor": 2.0}
    assert pre["seed"] == config["tuning"]["seed"] and "tuning" not in pre
    # a pretraining trial is measured by fine-tuning at the configured rate
    probe = trial_spec(config, "finetune", 2.0, dataset="scenes", method="early_concat", task="grounding")
    assert probe["optim"]["lr"] == config["finetune"]["grounding"]["lr"]
    assert probe["tuning_trial"] == {"stage": "pretrain", "lr_factor": 2.0}
    fine = trial_spec(
        config, "finetune", 0.5, dataset="scenes", method="early_concat", task="grounding", tuned="finetune"
    )
    assert fine["optim"]["lr"] == 0.5 * config["finetune"]["grounding"]["lr"]
    assert fine["tuning_trial"] == {"stage": "finetune", "lr_factor": 0.5}
    with pytest.raises(ValueError, match="pretraining job"):
        trial_spec(config, "pretrain", 0.5, dataset="scenes", method="early_concat", tuned="finetune")

    spec = stage_spec(config, "pretrain", dataset="scenes", method="early_concat", seed=0)
    assert spec["tuning"] == {"lr_factors": FACTORS, "seed": config["tuning"]["seed"]}
    choice = tmp_path / "choice.json"
    choice.write_text(json.dumps({"method": "early_concat", "stage": "pretrain", "lr_factor": 0.5}))
    tuned = apply_choice(spec, choice)
    assert tuned["optim"]["lr"] == 0.5 * spec["optim"]["lr"] and tuned["tuned"]["lr_factor"] == 0.5
    finetune = stage_spec(config, "finetune", dataset="scenes", method="early_concat", seed=0, task="grounding")
    with pytest.raises(DataFileError, match="chooses the 'pretrain' learning rate, not 'finetune'"):
        apply_choice(finetune, choice)
    choice.write_text(json.dumps({"method": "early_concat", "stage": "finetune", "task": "retrieval", "lr_factor": 2}))
    with pytest.raises(DataFileError, match="is for task 'retrieval', not 'grounding'"):
        apply_choice(finetune, choice)
    choice.write_text(json.dumps({"method": "early_concat", "stage": "finetune", "task": "grounding", "lr_factor": 2}))
    assert apply_choice(finetune, choice)["optim"]["lr"] == 2 * finetune["optim"]["lr"]
    with pytest.raises(DataFileError, match="is for 'late_fusion', not 'early_concat'"):
        choice.write_text(json.dumps({"method": "late_fusion", "stage": "pretrain", "lr_factor": 0.5}))
        apply_choice(spec, choice)
    untuned = load_config([Path("workflows/config/smoke.yaml")])
    assert "tuning" not in stage_spec(untuned, "pretrain", dataset="scenes", method="early_concat", seed=0)


def test_the_pretraining_choice_keeps_its_trials_checkpoint_and_a_fine_tuning_choice_is_per_task(
    tmp_path: Path,
) -> None:
    def write(folder: Path, spec: dict[str, Any], value: float | None = None, model: bytes | None = None) -> Path:
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps({"spec": spec, **_trial(value)}))
        if model is not None:
            (folder / "model.safetensors").write_bytes(model)
        return folder

    base = {"method": "early_concat", "dataset": "scenes"}
    pretrained, probes = [], []
    for factor, values in ((0.5, (0.2, 0.3)), (2.0, (0.4, 0.2))):  # means 0.25 and 0.30
        trial = {**base, "tuning_trial": {"stage": "pretrain", "lr_factor": factor}}
        pretrained.append(write(tmp_path / f"lr{factor}" / "pretrain", trial, model=f"weights {factor}".encode()))
        for task, value in zip(("retrieval", "grounding"), values):
            probes.append(write(tmp_path / f"lr{factor}" / task, {**trial, "task": task}, value) / "result.json")
    chosen = tmp_path / "chosen" / "model.safetensors"
    run_tune_select(probes, tmp_path / "pretrain_choice.json", [p / "model.safetensors" for p in pretrained], chosen)
    choice = json.loads((tmp_path / "pretrain_choice.json").read_text())
    assert (choice["stage"], choice["lr_factor"]) == ("pretrain", 2.0)
    assert chosen.read_bytes() == b"weights 2.0"

    trials = [
        write(
            tmp_path / "finetune" / f"lr{factor}",
            {**base, "task": "grounding", "tuning_trial": {"stage": "finetune", "lr_factor": factor}},
            value,
        )
        / "result.json"
        for factor, value in ((0.5, 0.1), (1.0, 0.5), (2.0, 0.3))
    ]
    run_tune_select(trials, tmp_path / "finetune_choice.json")
    choice = json.loads((tmp_path / "finetune_choice.json").read_text())
    assert (choice["stage"], choice["task"], choice["lr_factor"]) == ("finetune", "grounding", 1.0)
    with pytest.raises(DataFileError, match="several stages"):
        run_tune_select([*trials, probes[0]], tmp_path / "mixed.json")


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
    assert jobs["tune_pretrain_finetune"] == len(pretrained) * len(FACTORS) * len(TASKS)
    assert jobs["tune_select_pretrain"] == len(pretrained)
    assert jobs["tune_finetune"] == len(pretrained) * len(TASKS) * len(FACTORS)
    assert jobs["tune_select_finetune"] == len(pretrained) * len(TASKS)
    tuned = jobs["pretrain"] + jobs["finetune"]
    assert result.stdout.count("--tuned results/smoke/scenes/tuning/") == tuned
    assert result.stdout.count("/pretrain_choice.json --out") == jobs["pretrain"]  # pretraining: its own choice
    assert result.stdout.count("/choice.json --out") == jobs["finetune"]  # fine-tuning: its task's
    # fine-tuning trials start from the chosen pretraining trial
    assert (
        result.stdout.count("--init results/smoke/scenes/tuning/")
        == jobs["tune_pretrain_finetune"] + jobs["tune_finetune"]
    )
    assert len(re.findall(r"--init \S+/pretrain_chosen/model.safetensors", result.stdout)) == jobs["tune_finetune"]


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
    tuning = out / "tuning" / "contrastive_clip"
    choice = json.loads((tuning / "pretrain_choice.json").read_text())
    means = {row["lr_factor"]: row["mean"] for row in choice["trials"]}
    assert choice["lr_factor"] == max(means, key=lambda f: means[f])
    smoke = load_config([Path("workflows/config/smoke.yaml")])
    for factor in (0.5, 2.0):
        trial = json.loads((tuning / f"lr{factor:g}" / "finetune/retrieval/result.json").read_text())
        assert trial["spec"]["seed"] == 7 and trial["spec"]["tuning_trial"] == {
            "stage": "pretrain",
            "lr_factor": factor,
        }
        assert trial["spec"]["optim"]["lr"] == smoke["finetune"]["retrieval"]["lr"]
    chosen = tuning / f"lr{choice['lr_factor']:g}" / "pretrain" / "model.safetensors"
    assert (tuning / "pretrain_chosen" / "model.safetensors").read_bytes() == chosen.read_bytes()
    fine_choice = json.loads((tuning / "finetune" / "retrieval" / "choice.json").read_text())
    values = {row["lr_factor"]: row["mean"] for row in fine_choice["trials"]}
    assert fine_choice["lr_factor"] == max(values, key=lambda f: values[f])
    for factor in (0.5, 2.0):
        trial = json.loads((tuning / "finetune/retrieval" / f"lr{factor:g}" / "result.json").read_text())
        assert trial["spec"]["optim"]["lr"] == pytest.approx(smoke["finetune"]["retrieval"]["lr"] * factor)
    trained = json.loads((out / "pretrain/contrastive_clip/seed0/result.json").read_text())
    assert trained["spec"]["tuned"]["lr_factor"] == choice["lr_factor"]
    assert trained["spec"]["optim"]["lr"] == pytest.approx(smoke["pretrain"]["lr"] * choice["lr_factor"])
    finetuned = json.loads((out / "finetune/retrieval/contrastive_clip/seed0/result.json").read_text())
    assert finetuned["spec"]["tuned"]["lr_factor"] == fine_choice["lr_factor"]
    assert finetuned["spec"]["optim"]["lr"] == pytest.approx(
        smoke["finetune"]["retrieval"]["lr"] * fine_choice["lr_factor"]
    )
    tables = tmp_path / "results" / "smoke" / "tables"
    assert "contrastive_clip" in (tables / "selection.md").read_text()
