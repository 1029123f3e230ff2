"""Training: the loss falls, a crashed run resumes to identical weights, same seed → same bytes."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
import torch

from benchmark.config import stage_spec
from benchmark.data.dataset import load_split
from benchmark.data.sampling import batch_indices
from benchmark.errors import MethodError
from benchmark.hashing import config_hash
from benchmark.stages import run_pretrain
from benchmark.train.checkpoint import load_trained
from benchmark.train.loop import lr_factor, train
from tests.helpers import CPU, REPO, clip_model_and_data, optim_settings


def pinned_version(package: str) -> str:
    """The exact version pyproject.toml pins (the environment the provenance must describe)."""
    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(p.split("==")[1] for p in pins if p.split("==")[0] == package)


def test_batches_never_repeat_an_image_and_are_stateless() -> None:
    for step in range(12):
        index = batch_indices(50, 16, step, seed=3)
        assert len(set(index.tolist())) == 16
    assert torch.equal(batch_indices(50, 16, 7, seed=3), batch_indices(50, 16, 7, seed=3))
    with pytest.raises(ValueError, match="exceeds the 10 training images"):
        batch_indices(10, 16, 0, seed=0)


def test_lr_schedule_warms_up_then_decays_to_zero() -> None:
    s = optim_settings(100, warmup_steps=10)
    assert lr_factor(0, s) == pytest.approx(0.1)
    assert lr_factor(9, s) == pytest.approx(1.0)
    assert lr_factor(10, s) == pytest.approx(1.0)
    assert lr_factor(100, s) == pytest.approx(0.0)
    assert lr_factor(40, s) > lr_factor(70, s)


def test_itc_loss_falls(tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path) -> None:
    model, data = clip_model_and_data(tiny_dataset, tiny_tokenizer_file, smoke_config)
    # ITC leaves chance after ~40 steps on the tiny set: 60 steps were too few once the compositional
    # split kept red triangles and small blue objects out of its training scenes
    report = train(
        model,
        lambda step: model.pretrain_losses(data.batch(step, 16, 1)),
        model.objective_weights,
        optim_settings(100),
        CPU,
        1,
        tmp_path / "state.safetensors",
        "h",
        "test",
    )
    first, last = report.history[0]["itc"], report.history[-1]["itc"]
    assert first == pytest.approx(2.77, abs=0.15)  # ≈ ln(16): chance for a batch of 16
    assert last < first - 0.3


def test_resume_after_crash_gives_identical_weights(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path
) -> None:
    settings = optim_settings(25, checkpoint_every=10)

    def run(state: Path, crash_at: int | None):
        model, data = clip_model_and_data(tiny_dataset, tiny_tokenizer_file, smoke_config)

        def losses(step: int):
            if step == crash_at:
                raise RuntimeError("simulated crash")
            return model.pretrain_losses(data.batch(step, 16, 5))

        return model, train(model, losses, model.objective_weights, settings, CPU, 5, state, "spec", "test")

    straight, straight_report = run(tmp_path / "a.safetensors", None)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "b.safetensors", crash_at=17)
    assert (tmp_path / "b.safetensors").exists()  # the crash at step 17 leaves the step-10 state
    resumed, resumed_report = run(tmp_path / "b.safetensors", None)
    assert resumed_report.resumed_from == 10
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert straight_report.history == resumed_report.history


def test_stale_training_state_is_not_resumed(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path
) -> None:
    """A state file written under another spec is ignored; under the same spec it is resumed (the control)."""
    model, data = clip_model_and_data(tiny_dataset, tiny_tokenizer_file, smoke_config)
    state = tmp_path / "s.safetensors"
    with pytest.raises(RuntimeError):
        train(
            model,
            lambda s: (
                (_ for _ in ()).throw(RuntimeError("x")) if s == 12 else model.pretrain_losses(data.batch(s, 16, 0))
            ),
            model.objective_weights,
            optim_settings(20),
            CPU,
            0,
            state,
            "old-spec",
            "test",
        )
    assert state.is_file(), "the crash at step 12 must leave the step-10 state behind"
    control = tmp_path / "control.safetensors"
    shutil.copyfile(state, control)

    def finish(path: Path, spec: str) -> int:
        model, data = clip_model_and_data(tiny_dataset, tiny_tokenizer_file, smoke_config)
        return train(
            model,
            lambda s: model.pretrain_losses(data.batch(s, 16, 0)),
            model.objective_weights,
            optim_settings(20),
            CPU,
            0,
            path,
            spec,
            "test",
        ).resumed_from

    assert finish(state, "new-spec") == 0
    assert finish(control, "old-spec") == 10


def test_unknown_override_names_the_allowed_hyperparameters(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict
) -> None:
    with pytest.raises(
        MethodError,
        match="method_overrides.contrastive_clip.temperature is not a hyperparameter"
        ".*allowed: max_logit_scale, objectives, temperature_init",
    ):
        clip_model_and_data(tiny_dataset, tiny_tokenizer_file, smoke_config, temperature=0.1)


def test_pretrain_stage_is_bitwise_reproducible_and_reloads(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path
) -> None:
    config = {**smoke_config, "pretrain": {**smoke_config["pretrain"], "steps": 12, "batch_size": 16}}
    spec = stage_spec(config, "pretrain", dataset="scenes", method="contrastive_clip", seed=0)
    for name in ("a", "b"):
        run_pretrain(spec, tiny_dataset, tiny_tokenizer_file, tmp_path / name)
    a, b = (tmp_path / "a" / "model.safetensors").read_bytes(), (tmp_path / "b" / "model.safetensors").read_bytes()
    assert a == b
    result = json.loads((tmp_path / "a" / "result.json").read_text())
    assert result["provenance"]["config_hash"] == config_hash(spec)
    for key in ("git", "packages", "host", "device", "seed", "wall_time_s", "created_utc"):
        assert key in result["provenance"], key
    assert result["provenance"]["packages"]["torch"].split("+")[0] == pinned_version("torch")
    assert result["train"]["steps"] == 12 and len(result["train"]["history"]) == 2
    timing = result["timing"]  # where the job's time went (fusebench floor): its phases fit in its wall time
    assert set(timing) == {"startup_s", "setup_s", "training_s", "validation_s"}
    assert timing["validation_s"] == round(result["train"]["validation_s"], 3) > 0
    assert sum(timing[k] for k in ("setup_s", "training_s", "validation_s")) <= result["provenance"]["wall_time_s"]
    assert not (tmp_path / "a" / "training_state.partial.safetensors").exists()
    model, meta = load_trained(tmp_path / "a" / "model.safetensors", CPU)
    assert meta["method"] == "contrastive_clip" and meta["spec_hash"] == config_hash(spec)
    split = load_split(tiny_dataset, "test")
    with torch.no_grad():
        emb = model.embed_image(split.images[:4])
    assert emb.shape == (4, smoke_config["model"]["embed_dim"])
    assert torch.allclose(emb.norm(dim=-1), torch.ones(4), atol=1e-5)
