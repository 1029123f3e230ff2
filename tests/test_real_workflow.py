"""The real-data profiles (coco, flickr30k, refcoco) end to end through Snakemake, on official-format fixtures.

The smoke scenes are written in every official layout under one data root
(:func:`tests.fixtures.official_formats.write_all`), and each profile runs as a user with the
real files would run it (``--configfile workflows/config/<name>.yaml --config data_root=...``),
shrunk by ``tests/fixtures/real_profiles.yaml`` (smoke-sized model, every split an explicit
subset). Checked: the tables have a row per dataset and method, the data footer names the
official files with their sha256 and the subset, a method that cannot apply says why, the
refcoco profile pretrains once on COCO with its leakage guard recorded, and a missing root is
one message before any job.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import REPO, SNAKEMAKE, run

OVERLAY = REPO / "tests" / "fixtures" / "real_profiles.yaml"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from benchmark.config import load_config
    from benchmark.data.synthetic import build_synthetic_dataset
    from benchmark.paths import PROFILES_DIR
    from tests.fixtures.official_formats import write_all

    tmp = tmp_path_factory.mktemp("real")
    build_synthetic_dataset(load_config([PROFILES_DIR / "smoke.yaml"])["datasets"]["scenes"], tmp / "native")
    write_all(tmp / "native", tmp / "root")
    return tmp / "root"


def profile_run(workdir: Path, profile: str, data_root: Path, *config: str) -> Path:
    """Run ``profile`` on the fixtures; return its output folder."""
    out = workdir / "out"
    command = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(REPO / "workflows" / "config" / profile)]
    command += [str(OVERLAY), "--config", f"data_root={data_root}", f"output_dir={out}", *config]
    result = run(command, cwd=REPO)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def main_table(out: Path) -> tuple[pd.DataFrame, str]:
    text = (out / "tables" / "main.csv").read_text()
    return pd.read_csv(out / "tables" / "main.csv", comment="#"), text.splitlines()[-1]


def test_coco_profile(data_root: Path, tmp_path: Path) -> None:
    out = profile_run(tmp_path, "coco.yaml", data_root, "methods=[contrastive_clip,late_fusion,image_only]")
    frame, footer = main_table(out)
    clean = frame[frame.corruption == "none"]
    assert set(clean.dataset) == {"coco"} and set(clean.task) == {"retrieval"}
    ok = clean[clean.status == "ok"]
    assert set(ok.method) == {"contrastive_clip", "late_fusion", "chance"}  # late fusion learns COCO categories
    assert "dataset_coco.json sha256" in footer and "subset test 48 of 48 images" in footer
    record = json.loads((out / "coco" / "data.result.json").read_text())
    assert record["subset"]["test"] == {"images": 48, "of_images": 48, "texts": 144, "official_images": 5000}


def test_flickr30k_profile_says_why_late_fusion_cannot_apply(data_root: Path, tmp_path: Path) -> None:
    out = profile_run(tmp_path, "flickr30k.yaml", data_root, "methods=[contrastive_clip,late_fusion]")
    frame, footer = main_table(out)
    late = frame[(frame.method == "late_fusion") & (frame.corruption == "none")]
    assert len(late) and late.status.str.contains("no instance annotations").all()
    assert frame[(frame.method == "contrastive_clip") & (frame.status == "ok")].shape[0] > 0
    assert "dataset_flickr30k.json sha256" in footer


def test_refcoco_profile_pretrains_once_on_coco_and_records_the_guard(data_root: Path, tmp_path: Path) -> None:
    out = profile_run(tmp_path, "refcoco.yaml", data_root, "methods=[contrastive_clip,late_fusion]")
    frame, footer = main_table(out)
    clean = frame[(frame.corruption == "none") & (frame.status == "ok")]
    datasets = {"refcoco_testa", "refcoco_testb", "refcocoplus_testa", "refcocoplus_testb", "refcocog_test"}
    assert set(clean.dataset) == datasets and set(clean.task) == {"grounding"}
    assert {"Acc@0.5", "T-acc", "AP"} <= set(clean.metric)
    no_target = frame[
        (frame.metric == "N-acc") & (frame.corruption == "none") & frame.method.isin(["contrastive_clip"])
    ]
    assert len(no_target) == len(datasets) and no_target.value.isna().all()  # RefCOCO has no no-target expression
    assert sorted(p.name for p in out.glob("*/pretrain")) == ["pretrain"]  # one pretraining: coco's
    assert (out / "coco" / "pretrain" / "contrastive_clip" / "seed0" / "model.safetensors").is_file()
    guard = json.loads((out / "coco" / "data.result.json").read_text())["leakage_guard"]
    assert sorted(guard["excluded_evaluation_images_of"]) == sorted(datasets)
    assert "pretrained on coco" in footer and "train images removed" in footer
    evaluation = json.loads(
        next((out / "refcoco_testa" / "eval" / "grounding").glob("contrastive_clip/seed0.json")).read_text()
    )
    assert evaluation["protocol"]["acc_iou"] == "iou"
    assert evaluation["protocol"]["pretraining_data"]["dataset"] == "coco"


def test_missing_data_root_is_one_message_before_any_job(tmp_path: Path) -> None:
    command = [
        *SNAKEMAKE,
        "--directory",
        str(tmp_path),
        "--configfile",
        str(REPO / "workflows" / "config" / "coco.yaml"),
    ]
    result = run([*command, "--config", f"data_root={tmp_path / 'nowhere'}", "--dry-run"], cwd=REPO)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "dataset_coco.json" in output and "Expected layout" in output
    assert "Job stats" not in output
