"""Variants (issue 23, item 2): a named row = base method + overrides, scheduled, cached and labelled like a
method; control pairs and their table; matched capacity of the default and paper profiles' fusion rows (item 3)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from benchmark.config import base_method, load_config, method_training, resolve_methods, stage_spec, validate_config
from benchmark.config.merge import deep_merge
from benchmark.errors import ConfigError
from benchmark.registry import method_names
from benchmark.workflow.expected import expected_results
from benchmark.workflow.grid import run_grid
from benchmark.workflow.paths import RunLayout
from tests.helpers import SMOKE, build_small_scenes

PAPER = SMOKE.parent / "paper.yaml"


def _with(config: dict[str, Any], **blocks: Any) -> dict[str, Any]:
    """``config`` with top-level blocks replaced (variants, control pairs), validated."""
    changed = {**copy.deepcopy(config), **blocks}
    validate_config(changed)
    return changed


@pytest.fixture(scope="module")
def default() -> dict[str, Any]:
    return load_config()


# -- discovery, specs, grid --


def test_the_default_profile_s_variants_are_rows_of_the_run_with_their_own_specs(default: dict) -> None:
    rows = resolve_methods(default, method_names())
    variants = sorted(default["variants"])
    assert variants and set(variants) <= set(rows)
    for name in variants:
        base = default["variants"][name]["base"]
        assert base_method(default, name) == base
        spec = stage_spec(default, "pretrain", dataset="scenes", method=name, seed=0)
        assert spec["method"] == name and spec["base_method"] == base
        assert spec["overrides"]["objectives"] == default["variants"][name]["overrides"]["objectives"]
        assert spec["model"] == stage_spec(default, "pretrain", dataset="scenes", method=base, seed=0)["model"]
        for stage in ("finetune", "evaluate", "robustness"):
            assert (
                stage_spec(default, stage, dataset="scenes", method=name, seed=0, task="retrieval")["base_method"]
                == base
            )
    grid = run_grid(default)
    assert set(variants) <= set(grid.methods) and set(variants) <= set(grid.trained_methods("pretrain"))
    expected = expected_results(default, RunLayout("results"), grid)
    cells = {(c["method"], c["task"]) for c in expected["cells"]}
    assert {(v, "retrieval") for v in variants} <= cells
    assert any("/pretrain/cross_attention_itc/" in path for path in expected["training"])


def test_a_method_s_spec_has_no_variant_key_and_the_smoke_profile_has_no_variant(default: dict) -> None:
    assert "base_method" not in stage_spec(default, "pretrain", dataset="scenes", method="early_concat", seed=0)
    smoke = load_config([SMOKE])
    assert resolve_methods(smoke, method_names()) == [
        m for m in resolve_methods(smoke, method_names()) if m in method_names()
    ]
    assert "control_pairs" not in stage_spec(smoke, "report")
    assert stage_spec(default, "report")["control_pairs"] == default["control_pairs"]


def test_an_override_changes_only_that_variant_s_specs(default: dict) -> None:
    def specs(config: dict) -> dict[str, Any]:
        return {
            (m, stage): stage_spec(config, stage, dataset="scenes", method=m, seed=0, task="retrieval")
            for m in resolve_methods(config, method_names())
            for stage in ("pretrain", "finetune", "evaluate")
        }

    changed = _with(default, variants=deep_merge(default["variants"], {"cross_attention_itc": {"lr_factor": 0.5}}))
    before, after = specs(default), specs(changed)
    moved = sorted(key for key in before if before[key] != after[key])
    assert moved == [("cross_attention_itc", "finetune"), ("cross_attention_itc", "pretrain")]
    key = ("cross_attention_itc", "pretrain")
    assert after[key]["optim"]["lr"] == before[key]["optim"]["lr"] * 0.5
    widened = _with(
        default, variants=deep_merge(default["variants"], {"late_fusion_mlm": {"model": {"text": {"depth": 3}}}})
    )
    assert (
        stage_spec(widened, "pretrain", dataset="scenes", method="late_fusion_mlm", seed=0)["model"]["text"]["depth"]
        == 3
    )
    assert stage_spec(widened, "pretrain", dataset="scenes", method="late_fusion", seed=0) == stage_spec(
        default, "pretrain", dataset="scenes", method="late_fusion", seed=0
    )


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ({"base": "no_such_method"}, "'variants.bad.base' = 'no_such_method' is not a method in baselines/"),
        ({"base": "early_concat", "overrides": {"widht": 3}}, "'variants.bad.overrides.widht' is not a hyperparameter"),
        (
            {"base": "early_concat", "overrides": {"objectives": {"itc": 1.0}}},
            "'variants.bad.overrides.objectives' has",
        ),
        ({"base": "early_concat", "overrides": {"objectives": {"itm": 0, "mlm": 0}}}, "sets every objective"),
        ({"base": "early_concat", "model": {"text": {"width": "wide"}}}, "'variants.bad.model.text.width'"),
        ({"base": "early_concat", "lr_factor": 0}, "'variants.bad.lr_factor'"),
        ({"base": "early_concat", "overides": {}}, "unknown key 'variants.bad.overides'"),
    ],
)
def test_a_bad_variant_is_named_with_its_key(default: dict, variant: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        _with(default, variants={"bad": variant})
    assert message in str(error.value)


def test_a_variant_named_like_a_method_and_a_bad_control_pair_are_refused(default: dict) -> None:
    with pytest.raises(ConfigError, match=r"'variants.early_concat' is the name of a method file"):
        _with(default, variants={"early_concat": {"base": "cross_attention"}})
    with pytest.raises(ConfigError, match=r"'control_pairs\[0\].b' = 'nothing' is neither a method nor a variant"):
        _with(default, control_pairs=[{"a": "early_concat", "b": "nothing", "differ": "fusion"}])
    with pytest.raises(ConfigError, match=r"variants.<name>.overrides"):
        resolve_methods({**default, "method_overrides": {"cross_attention_itc": {"fusion_depth": 2}}}, method_names())


# -- training: an empty variant is its base, bit for bit; an override trains differently --


def test_a_variant_without_overrides_trains_bit_for_bit_as_its_base(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path
) -> None:
    import json

    import torch
    from safetensors.torch import load_file

    from benchmark.stages import run_evaluate, run_finetune, run_pretrain
    from benchmark.train.checkpoint import load_trained

    config = _with(
        {
            **smoke_config,
            "pretrain": {**smoke_config["pretrain"], "steps": 6, "batch_size": 16},
            "finetune": {
                **smoke_config["finetune"],
                "retrieval": {**smoke_config["finetune"]["retrieval"], "steps": 4, "batch_size": 16},
            },
            "validation": {**smoke_config["validation"], "every": None},
        },
        variants={
            "same": {"base": "cross_attention"},
            "no_itm": {"base": "cross_attention", "overrides": {"objectives": {"itm": 0.0}}},
        },
    )
    weights, curves = {}, {}
    for name in ("cross_attention", "same", "no_itm"):
        spec = stage_spec(config, "pretrain", dataset="scenes", method=name, seed=0)
        run_pretrain(spec, tiny_dataset, tiny_tokenizer_file, tmp_path / name)
        weights[name] = load_file(tmp_path / name / "model.safetensors")  # the file's header names the row
        curves[name] = json.loads((tmp_path / name / "result.json").read_text())["train"]["history"]

    def same(a: str, b: str) -> bool:
        return weights[a].keys() == weights[b].keys() and all(
            torch.equal(weights[a][k], weights[b][k]) for k in weights[a]
        )

    assert same("same", "cross_attention") and curves["same"] == curves["cross_attention"]
    assert not same("no_itm", "cross_attention")
    metrics = {}
    for name in ("cross_attention", "same"):  # fine-tuning and evaluation draw the base's streams too
        job = {"dataset": "scenes", "method": name, "seed": 0, "task": "retrieval"}
        run_finetune(
            stage_spec(config, "finetune", **job),
            tiny_dataset,
            tiny_tokenizer_file,
            tmp_path / name / "model.safetensors",
            tmp_path / name / "retrieval",
        )
        weights[f"{name}/retrieval"] = load_file(tmp_path / name / "retrieval" / "model.safetensors")
        evaluated = tmp_path / name / "retrieval.json"
        run_evaluate(
            stage_spec(config, "evaluate", **job),
            tiny_dataset,
            tiny_tokenizer_file,
            tmp_path / name / "retrieval" / "model.safetensors",
            evaluated,
        )
        metrics[name] = {r["metric"]: r["value"] for r in json.loads(evaluated.read_text())["rows"]}
    assert same("same/retrieval", "cross_attention/retrieval")
    assert metrics["same"] == metrics["cross_attention"] and metrics["same"]["mean_R"] is not None
    model, meta = load_trained(tmp_path / "no_itm" / "model.safetensors", "cpu")
    assert meta["method"] == "no_itm" and meta["base_method"] == "cross_attention"
    assert model.objective_weights == {"itc": 1.0, "mlm": 1.0}


# -- matched capacity --


def _trainable_parameters(config: dict[str, Any], folder: Path) -> dict[str, tuple[int, str]]:
    """Per pretrained row of ``config``: trainable parameters and family, built on a small copy of its scenes."""
    from benchmark.data.concepts import concept_vocabulary
    from benchmark.data.dataset import load_split
    from benchmark.data.grounding import attribute_vocabulary
    from benchmark.data.standard_form import read_captions
    from benchmark.data.tokenizer import special_token_ids, train_tokenizer
    from benchmark.models.method import BuildContext
    from benchmark.registry import load_method

    block = config["datasets"]["scenes"]
    build_small_scenes(folder, {"train": 48, "val": 4, "test": 4}, block["image_size"])
    captions = [c for caps in read_captions(folder, "train").values() for c in caps]
    length = config["tokenizer"]["max_length"]
    tokenizer = train_tokenizer(captions, vocab_size=config["tokenizer"]["vocab_size"], max_length=length)
    split = load_split(folder, "train")
    counts = {}
    for row in resolve_methods(config, method_names()):
        if "pretrain" not in method_training(row, config):
            continue
        spec = stage_spec(config, "pretrain", dataset="scenes", method=row, seed=0)
        cls = load_method(base_method(config, row))
        ctx = BuildContext(
            spec["model"],
            split.image_size,
            tokenizer.get_vocab_size(),
            length,
            special_token_ids(tokenizer),
            concept_vocabulary(split),
            attribute_vocabulary(split),
        )
        model = cls(ctx, **spec["overrides"])
        counts[row] = (sum(p.numel() for p in model.parameters() if p.requires_grad), cls.family)
    return counts


@pytest.mark.parametrize("profile", [None, PAPER], ids=["default", "paper"])
def test_the_profile_s_fusion_rows_are_within_ten_percent_of_each_other(profile: Path | None, tmp_path: Path) -> None:
    from benchmark.report.aggregate.capacity import UNMATCHED_FAMILIES, capacity_note, within_band

    config = load_config([profile] if profile else [])
    counts = _trainable_parameters(config, tmp_path / "scenes")
    fusion = {row: n for row, (n, family) in counts.items() if family not in UNMATCHED_FAMILIES}
    assert {"contrastive_clip", "cross_attention", "early_concat", "late_fusion"} <= set(fusion)
    assert within_band(fusion), fusion
    assert capacity_note(counts).startswith("Trainable parameters of the fusion rows within ±10 %")
    unmatched = {**counts, "cross_attention": (int(1.2 * counts["early_concat"][0]), "two stream")}
    assert capacity_note(unmatched).startswith("Capacity not matched")


# -- the controls table --


def _records() -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    """Two rows over two seeds: results, their comparison (as comparisons.csv), their pretraining records."""
    frame = pd.DataFrame(
        [
            {
                "dataset": "scenes",
                "task": "retrieval",
                "metric": "mean_R",
                "corruption": "none",
                "method": m,
                "seed": s,
                "value": v,
            }
            for m, values in {"early_concat": (0.30, 0.40), "cross_attention_itm_mlm": (0.35, 0.38)}.items()
            for s, v in enumerate(values)
        ]
    )
    comparisons = pd.DataFrame(
        [
            {
                "dataset": "scenes",
                "task": "retrieval",
                "metric": "mean_R",
                "a": "early_concat",
                "b": "cross_attention_itm_mlm",
                "delta": -0.015,
                "low": -0.05,
                "high": 0.03,
                "boot_prob_two_sided": 0.4,
            }
        ]
    )

    def record(method: str, family: str, parameters: int, lr: float) -> dict[str, Any]:
        return {
            "spec": {"stage": "pretrain", "method": method, "seed": 0, "optim": {"lr": lr}},
            "method": {"family": family},
            "objectives": {"itm": 1.0, "mlm": 1.0},
            "efficiency": {"parameters": parameters + 5, "trainable_parameters": parameters},
            "train": {"steps": 1200},
        }

    training = [
        record("early_concat", "single stream", 268_749, 2e-3),
        record("cross_attention_itm_mlm", "two stream (co-attention)", 286_542, 1e-3),
    ]
    return frame, comparisons, training


def test_the_controls_table_names_what_differs_and_gives_the_paired_difference(tmp_path: Path) -> None:
    from benchmark.report.aggregate.controls import control_rows, controls_latex, controls_markdown

    frame, comparisons, training = _records()
    pair = {"a": "early_concat", "b": "cross_attention_itm_mlm", "differ": "fusion"}
    (control,) = control_rows([pair], frame, comparisons, training)
    assert control["differs"] == ["fusion", "learning rate"]  # 268,749 vs 286,542: within ±10 %
    (difference,) = control["differences"]
    assert difference["Δ = a − b"] == "-1.5" and difference["95 % interval"] == "[-5.0, 3.0]"
    assert difference["per seed"] == "-5.0, +2.0"
    text = controls_markdown([control], {"config hash": "x"})
    assert "but also differ in: learning rate" in text and "0.269 M" in text
    assert "tab:control-0-delta" in controls_latex([control], {"config hash": "x"})
    assert "No control pairs are configured." in controls_markdown([], {"config hash": "x"})
