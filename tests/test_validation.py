"""Validation during training: learning curves, the checkpoint chosen on val, and the pretraining budget.

The loop measures the model on val before the first step and every ``every`` steps; with ``select`` it
restores the best point's weights (never a test number). Validation must not change the training
trajectory, a resumed job must continue the same curve and select the same weights, and a budget in
samples or FLOPs must turn into the steps it says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmark.config import load_config, stage_spec, validate_config
from benchmark.errors import ConfigError
from benchmark.stages import budgeted_settings, run_finetune, run_pretrain
from benchmark.train.checkpoint import read_metadata
from benchmark.train.loop import Validation, train
from tests.helpers import (
    CPU,
    clip_model_and_data,
    optim_settings,
    pretrain_loss_fn,
    scripted_validation,
    validated_clip_run,
)


def test_selection_restores_the_best_validation_point_and_leaves_training_unchanged(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path
) -> None:
    settings = optim_settings(30)
    model, data = clip_model_and_data(tiny_dataset, tiny_tokenizer_file, smoke_config)
    plain = train(
        model, pretrain_loss_fn(model, data), model.objective_weights, settings, CPU, 0, tmp_path / "a", "s", "plain"
    )
    plain_weights = {k: v.clone() for k, v in model.state_dict().items()}

    model, data = clip_model_and_data(tiny_dataset, tiny_tokenizer_file, smoke_config)
    snapshots: list[dict[str, torch.Tensor]] = []
    validation = Validation(
        10, scripted_validation([0.1, 0.5, 0.9, 0.3], snapshots), "val_score", flops_per_step=1000.0
    )
    report = train(
        model,
        pretrain_loss_fn(model, data),
        model.objective_weights,
        settings,
        CPU,
        0,
        tmp_path / "b",
        "s",
        "val",
        validation,
    )
    assert report.history == plain.history  # measuring on val changed no training step
    assert all(torch.equal(snapshots[-1][k], v) for k, v in plain_weights.items())  # last point = plain run's end
    record = report.validation
    assert [p["step"] for p in record["curve"]] == [0, 10, 20, 30]
    assert [p["samples"] for p in record["curve"]] == [0, 160, 320, 480]
    assert [p["flops"] for p in record["curve"]] == [0.0, 10_000.0, 20_000.0, 30_000.0]
    assert record["selected_step"] == 20 and record["selected_value"] == 0.9 and record["metric"] == "val_score"
    assert all(torch.equal(model.state_dict()[k], v) for k, v in snapshots[2].items())  # step 20's weights
    assert not all(torch.equal(model.state_dict()[k], v) for k, v in plain_weights.items())


def _validated_run(setup: tuple[Path, Path, dict], state: Path, validation: Validation, steps: int = 20) -> Any:
    """A fresh model trained ``steps`` steps with ``validation``; its report."""
    return validated_clip_run(setup, state, validation, steps)[0]


def test_ties_keep_the_earliest_point_and_no_metric_keeps_the_last_step(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path
) -> None:
    setup = (tiny_dataset, tiny_tokenizer_file, smoke_config)
    report = _validated_run(
        setup, tmp_path / "a", Validation(10, scripted_validation([0.2, 0.7, 0.7], []), "val_score")
    )
    assert report.validation["selected_step"] == 10
    report = _validated_run(setup, tmp_path / "b", Validation(10, scripted_validation([0.9, 0.1, 0.2], []), None))
    assert report.validation["selected_step"] == 20 and report.validation["rule"] == "last step (no selection)"


def test_a_resumed_job_continues_the_curve_and_selects_the_same_weights(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path
) -> None:
    values = [0.1, 0.8, 0.4, 0.6, 0.2]
    settings = optim_settings(40)
    model, data = clip_model_and_data(tiny_dataset, tiny_tokenizer_file, smoke_config)
    straight = train(
        model,
        pretrain_loss_fn(model, data),
        model.objective_weights,
        settings,
        CPU,
        0,
        tmp_path / "a",
        "s",
        "t",
        Validation(10, scripted_validation(values, []), "val_score"),
    )
    straight_weights = {k: v.clone() for k, v in model.state_dict().items()}

    state = tmp_path / "b" / "training_state.partial.safetensors"
    state.parent.mkdir()
    model, data = clip_model_and_data(tiny_dataset, tiny_tokenizer_file, smoke_config)
    losses = pretrain_loss_fn(model, data)

    def crash_at_25(step: int) -> dict[str, torch.Tensor]:
        if step == 25:
            raise KeyboardInterrupt("killed")
        return losses(step)

    with pytest.raises(KeyboardInterrupt):
        train(
            model,
            crash_at_25,
            model.objective_weights,
            settings,
            CPU,
            0,
            state,
            "s",
            "t",
            Validation(10, scripted_validation(values, []), "val_score"),
        )
    assert state.is_file()
    model, data = clip_model_and_data(tiny_dataset, tiny_tokenizer_file, smoke_config)
    resumed_values: list[dict[str, torch.Tensor]] = []
    seen = Validation(10, scripted_validation(values[3:], resumed_values), "val_score")  # points at 30 and 40 remain
    resumed = train(
        model, pretrain_loss_fn(model, data), model.objective_weights, settings, CPU, 0, state, "s", "t", seen
    )
    assert resumed.resumed_from == 20
    assert resumed.validation["curve"] == straight.validation["curve"]
    assert resumed.validation["selected_step"] == straight.validation["selected_step"] == 10
    assert all(torch.equal(model.state_dict()[k], v) for k, v in straight_weights.items())


def test_budget_in_samples_or_flops_sets_the_steps_and_keeps_the_warmup_fraction() -> None:
    spec = {
        "method": "m",
        "optim": dict(
            steps=400, batch_size=64, lr=1e-3, weight_decay=0.0, warmup_steps=40, grad_clip=1.0, checkpoint_every=100
        ),
    }
    settings, record = budgeted_settings(spec, 2.0e9)
    assert (settings.steps, settings.warmup_steps) == (400, 40) and record == {
        "unit": "steps",
        "steps": 400,
        "samples": 25_600,
        "flops": 8.0e11,
    }
    settings, record = budgeted_settings({**spec, "budget": {"unit": "samples", "amount": 12_800}}, None)
    assert (settings.steps, settings.warmup_steps, record["samples"]) == (200, 20, 12_800)
    settings, record = budgeted_settings({**spec, "budget": {"unit": "flops", "amount": 1.6e12}}, 2.0e9)
    assert (settings.steps, settings.warmup_steps, record["flops"], record["amount"]) == (800, 80, 1.6e12, 1.6e12)


def test_budget_amount_must_match_its_unit() -> None:
    with pytest.raises(ConfigError, match="budget.amount"):
        validate_config(load_config(overrides=["budget.unit=flops"]))
    with pytest.raises(ConfigError, match="budget.amount"):
        validate_config(load_config(overrides=["budget.amount=1000"]))
    validate_config(load_config(overrides=["budget.unit=samples", "budget.amount=1000"]))


def test_stages_record_curves_and_the_selected_fine_tuning_step(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path
) -> None:
    config = {
        **smoke_config,
        "pretrain": {**smoke_config["pretrain"], "steps": 10, "batch_size": 16, "warmup_steps": 2},
        "validation": {"every": 5, "max_images": 12, "batches": 2, "select": True},
    }
    config["finetune"] = {
        **config["finetune"],
        "retrieval": {**config["finetune"]["retrieval"], "steps": 10, "batch_size": 16},
    }
    spec = stage_spec(config, "pretrain", dataset="scenes", method="contrastive_clip", seed=0)
    run_pretrain(spec, tiny_dataset, tiny_tokenizer_file, tmp_path / "pre")
    pretrained = json.loads((tmp_path / "pre" / "result.json").read_text())
    curve = pretrained["train"]["validation"]["curve"]
    assert [p["step"] for p in curve] == [0, 5, 10]
    assert {"val_loss", "val_itc", "val_mean_R", "flops"} <= set(curve[0])
    assert curve[-1]["val_loss"] < curve[0]["val_loss"]  # the pretraining objective falls on val too
    assert pretrained["budget"]["unit"] == "steps" and pretrained["efficiency"]["flops_train_per_step"] > 0

    spec = stage_spec(config, "finetune", dataset="scenes", method="contrastive_clip", seed=0, task="retrieval")
    run_finetune(spec, tiny_dataset, tiny_tokenizer_file, tmp_path / "pre" / "model.safetensors", tmp_path / "ft")
    record = json.loads((tmp_path / "ft" / "result.json").read_text())["train"]["validation"]
    best = max(record["curve"], key=lambda p: (p["val_mean_R"], -p["step"]))
    assert record["metric"] == "val_mean_R" and record["selected_step"] == best["step"]
    assert read_metadata(tmp_path / "ft" / "model.safetensors")["selected_step"] == best["step"]
    assert not list((tmp_path / "ft").glob("*.partial.safetensors"))
