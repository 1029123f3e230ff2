"""Configuration: profiles validate; bad keys, types and values fail with a precise message."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmark.config import deep_merge, load_config, resolve_methods, stage_spec
from benchmark.errors import ConfigError
from benchmark.hashing import config_hash
from tests.helpers import REPO

PROFILES = {
    # profile: the values that define it (README: seeds per profile, the paper profile on a GPU)
    "smoke": {"seeds": [0], "device": "auto", "output_dir": "results/smoke", "image_size": 32},
    "default": {"seeds": [0, 1, 2, 3, 4], "device": "auto", "output_dir": "results", "image_size": 48},
    "paper": {"seeds": list(range(10)), "device": "cuda", "output_dir": "results/paper", "image_size": 128},
}


@pytest.mark.parametrize("profile", list(PROFILES))
def test_profiles_are_valid_and_keep_their_defining_values(profile: str) -> None:
    files = [] if profile == "default" else [REPO / "workflows" / "config" / f"{profile}.yaml"]
    config = load_config(files)
    expected = PROFILES[profile]
    assert config["datasets"]["scenes"]["kind"] == "synthetic"
    assert config["seeds"] == expected["seeds"]
    assert config["device"] == expected["device"]
    assert config["output_dir"] == expected["output_dir"]
    assert config["datasets"]["scenes"]["image_size"] == expected["image_size"]


def test_profile_overrides_only_its_keys() -> None:
    default = load_config()
    smoke = load_config([REPO / "workflows" / "config" / "smoke.yaml"])
    assert smoke["seeds"] == [0]
    assert smoke["datasets"]["scenes"]["image_size"] == 32
    # keys the profile does not mention keep their defaults
    assert smoke["datasets"]["scenes"]["shapes"] == default["datasets"]["scenes"]["shapes"]
    assert smoke["pretrain"]["lr"] == default["pretrain"]["lr"]


def test_deep_merge_merges_dicts_and_replaces_lists() -> None:
    merged = deep_merge({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "e": 2})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}


def test_unknown_key_names_key_and_allowed_keys() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["pretrain.stepz=3"])
    message = str(info.value)
    assert "unknown key 'pretrain.stepz'" in message
    assert "did you mean 'steps'" in message
    assert "allowed keys in 'pretrain': batch_size, checkpoint_every, grad_clip, lr, steps" in message


def test_unknown_top_level_key() -> None:
    with pytest.raises(ConfigError, match="unknown key 'sedes'.*did you mean 'seeds'"):
        load_config(overrides=["sedes=[1]"])


def test_wrong_type_names_key_and_expected_type() -> None:
    with pytest.raises(ConfigError, match=r"'pretrain.steps' must be of type integer, got str 'many'"):
        load_config(overrides=["pretrain.steps=many"])


def test_bad_enum_lists_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"'device' = 'gpu' is not allowed; allowed values: 'auto', 'cpu', 'cuda'"):
        load_config(overrides=["device=gpu"])


def test_bad_list_item_names_index() -> None:
    with pytest.raises(
        ConfigError, match=r"'datasets.scenes.shapes.1' = 'hexagon' is not allowed; allowed values: 'circle'"
    ):
        load_config(overrides=["datasets.scenes.shapes=[circle, hexagon]"])


def test_cross_key_constraints() -> None:
    with pytest.raises(ConfigError, match="objects_per_scene': min \\(5\\) exceeds max \\(4\\)"):
        load_config(overrides=["datasets.scenes.objects_per_scene.min=5"])
    with pytest.raises(ConfigError, match="must be a multiple of 'model.vision.patch_size'"):
        load_config(overrides=["datasets.scenes.image_size=60"])
    with pytest.raises(ConfigError, match="warmup_steps' \\(5000\\) exceeds 'pretrain.steps'"):
        load_config(overrides=["pretrain.warmup_steps=5000"])


def test_missing_or_broken_config_file_is_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config([tmp_path / "nope.yaml"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("seeds: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        load_config([broken])


def test_unknown_method_is_named_with_available_ones() -> None:
    bare = {"method_overrides": {}, "variants": None}  # the default's name cross_attention, absent from this list
    config = {**load_config(overrides=["methods=[contrastive_clip, magic_fusion]"]), **bare}
    with pytest.raises(
        ConfigError,
        match="unknown method\\(s\\) \\['magic_fusion'\\]; available in baselines/: contrastive_clip, late_fusion",
    ):
        resolve_methods(config, ["contrastive_clip", "late_fusion"])
    with pytest.raises(ConfigError, match="'robustness.reference_method' = 'late_fusion' is not a method"):
        resolve_methods({**load_config(), **bare}, ["contrastive_clip"])


def test_stage_spec_is_minimal_and_stable() -> None:
    config = load_config()
    spec = stage_spec(config, "pretrain", dataset="scenes", method="contrastive_clip", seed=0)
    changed = load_config(overrides=["evaluate.batch_size=7"])
    # an evaluation setting must not invalidate pretraining
    assert config_hash(spec) == config_hash(
        stage_spec(changed, "pretrain", dataset="scenes", method="contrastive_clip", seed=0)
    )
    assert config_hash(
        stage_spec(config, "evaluate", dataset="scenes", method="contrastive_clip", seed=0, task="retrieval")
    ) != config_hash(
        stage_spec(changed, "evaluate", dataset="scenes", method="contrastive_clip", seed=0, task="retrieval")
    )


def test_cli_reports_config_error_with_exit_code_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmark", "validate-config", "--set", "pretrain.lr=fast"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "'pretrain.lr' must be of type number, got str 'fast'" in result.stderr
