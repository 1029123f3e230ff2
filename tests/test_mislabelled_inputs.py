"""Inputs cannot be mislabelled: a stage given another job's checkpoint, tokenizer or data build refuses it.

A checkpoint records its job (stage, method, seed, task, dataset, and the sha256 of the tokenizer
file and of the data build's manifest); fine-tuning, evaluation and robustness compare it with the
job they were asked to run and exit 4 (``benchmark.errors.EXIT_CODES``) naming both values,
before writing anything. Stages run through ``benchmark.cli.main`` in this process, as
``fusebench`` does, on the session's tiny dataset with two-step training.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmark.cli import main
from benchmark.config import load_config, stage_spec
from tests.helpers import SMOKE, tiny_data_spec

EXIT_MISMATCH = 4
METHOD = "contrastive_clip"
TINY = [
    "pretrain.steps=2",
    "pretrain.batch_size=8",
    "pretrain.warmup_steps=0",
    *(f"finetune.{task}.{key}" for task in ("retrieval", "grounding") for key in ("steps=2", "batch_size=8")),
    *(f"finetune.{task}.warmup_steps=0" for task in ("retrieval", "grounding")),
]
CONFIG = ["--config", str(SMOKE), *(f"--set={s}" for s in TINY)]


@dataclass
class Run:
    """One job's files: the data build, tokenizer, pretrained and retrieval fine-tuned checkpoints."""

    root: Path
    data: Path
    tokenizer: Path
    pretrained: Path
    finetuned: Path
    other_data: Path  # another data build (another generator seed)
    other_tokenizer: Path  # another tokenizer (half the captions, a smaller vocabulary)


def fusebench(*args: str, spec: dict[str, Any] | None = None, **job: Any) -> int:
    """``fusebench STAGE`` with the tiny config (or ``--spec``) and the job's wildcards, in this process."""
    stage, *rest = args
    wildcards = [f"--{k}={v}" for k, v in job.items()]
    chosen = ["--spec", json.dumps(spec)] if spec is not None else [*CONFIG, *wildcards]
    return main([stage, *chosen, *rest])


def short_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path, tiny_tokenizer_file: Path) -> Run:
    from benchmark.data.standard_form import read_captions
    from benchmark.data.synthetic import build_synthetic_dataset
    from benchmark.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("mislabelled")
    job = {"dataset": "scenes", "method": METHOD, "seed": 0}
    inputs = ["--data", str(tiny_dataset), "--tokenizer", str(tiny_tokenizer_file)]
    assert fusebench("pretrain", *inputs, "--out", str(root / "pretrain"), **job) == 0
    pretrained = root / "pretrain" / "model.safetensors"
    init = ["--init", str(pretrained)]
    assert fusebench("finetune", *inputs, *init, "--out", str(root / "retrieval"), task="retrieval", **job) == 0
    build_synthetic_dataset(tiny_data_spec(seed=1), root / "other_data")
    captions = [c for caps in read_captions(tiny_dataset, "train").values() for c in caps]
    other_tokenizer = train_tokenizer(captions[: len(captions) // 2], vocab_size=100, max_length=24)
    (root / "other_tokenizer.json").write_text(other_tokenizer.to_str())
    assert (root / "other_tokenizer.json").read_bytes() != tiny_tokenizer_file.read_bytes()
    return Run(
        root,
        tiny_dataset,
        tiny_tokenizer_file,
        pretrained,
        root / "retrieval" / "model.safetensors",
        root / "other_data",
        root / "other_tokenizer.json",
    )


def refused(capsys: pytest.CaptureFixture[str], code: int, *values: str) -> str:
    """The one stderr line of a refused stage, after checking its exit code and that it names ``values``."""
    err = capsys.readouterr().err
    assert code == EXIT_MISMATCH, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("fusebench: input mismatch: checkpoint "), err
    for value in values:
        assert value in line, (value, line)
    assert "Traceback" not in err
    return line


def test_the_matching_job_is_accepted(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    inputs = ["--data", str(run.data), "--tokenizer", str(run.tokenizer), "--checkpoint", str(run.finetuned)]
    assert (
        fusebench("evaluate", *inputs, "--out", str(out), dataset="scenes", method=METHOD, seed=0, task="retrieval")
        == 0
    )
    assert json.loads(out.read_text())["rows"]


@pytest.mark.parametrize(
    "stage, changes, values",
    [
        ("evaluate", {"method": "early_concat"}, ["'contrastive_clip'", "'early_concat'"]),
        ("robustness", {"method": "early_concat"}, ["'contrastive_clip'", "'early_concat'"]),
        ("evaluate", {"seed": 1}, ["seed 0 in the checkpoint, 1 requested"]),
        ("evaluate", {"task": "grounding"}, ["task 'retrieval' in the checkpoint, 'grounding' requested"]),
        ("evaluate", {"checkpoint": "pretrained"}, ["stage 'pretrain' in the checkpoint, 'finetune' requested"]),
        ("evaluate", {"tokenizer": "other_tokenizer"}, ["tokenizer file sha256"]),
        ("evaluate", {"data": "other_data"}, ["data build (manifest.json) sha256"]),
    ],
    ids=["wrong-method", "wrong-method-robustness", "wrong-seed", "wrong-task", "not-fine-tuned", "tokenizer", "data"],
)
def test_evaluation_refuses_another_jobs_inputs(
    run: Run,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stage: str,
    changes: dict[str, Any],
    values: list[str],
) -> None:
    job = {"dataset": "scenes", "method": METHOD, "seed": 0, "task": "retrieval"}
    files = {"data": run.data, "tokenizer": run.tokenizer, "checkpoint": run.finetuned}
    for key, value in changes.items():
        if key in files:
            files[key] = getattr(run, value)
        else:
            job[key] = value
    out = tmp_path / "out" / "result.json"
    inputs = [arg for key, path in files.items() for arg in (f"--{key}", str(path))]
    capsys.readouterr()
    line = refused(capsys, fusebench(stage, *inputs, "--out", str(out), **job), str(files["checkpoint"]), *values)
    if "tokenizer" in changes:  # both hashes, and the file given
        assert short_sha(run.tokenizer) in line and short_sha(run.other_tokenizer) in line
        assert str(run.other_tokenizer) in line
    if "data" in changes:
        assert short_sha(run.data / "manifest.json") in line and short_sha(run.other_data / "manifest.json") in line
    assert not (tmp_path / "out").exists()


def test_finetune_refuses_another_methods_pretraining(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = ["--data", str(run.data), "--tokenizer", str(run.tokenizer), "--init", str(run.pretrained)]
    job = {"dataset": "scenes", "method": "early_concat", "seed": 0, "task": "retrieval"}
    capsys.readouterr()
    code = fusebench("finetune", *inputs, "--out", str(tmp_path / "out"), **job)
    refused(capsys, code, str(run.pretrained), "method 'contrastive_clip' in the checkpoint, 'early_concat' requested")
    assert not (tmp_path / "out").exists()


def test_finetune_refuses_a_fine_tuned_checkpoint_as_init(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = ["--data", str(run.data), "--tokenizer", str(run.tokenizer), "--init", str(run.finetuned)]
    job = {"dataset": "scenes", "method": METHOD, "seed": 0, "task": "grounding"}
    capsys.readouterr()
    code = fusebench("finetune", *inputs, "--out", str(tmp_path / "out"), **job)
    refused(capsys, code, "stage 'finetune' in the checkpoint, 'pretrain' requested")
    assert not (tmp_path / "out").exists()


def test_pretrain_from_accepts_exactly_the_named_datasets_pretraining(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dataset with ``pretrain_from: scenes`` fine-tunes (on its own data) from scenes' pretraining and
    tokenizer, and is evaluated; without ``pretrain_from`` the same checkpoint is another dataset's."""
    config = load_config([SMOKE], TINY)
    config["datasets"]["scenes_b"] = {**config["datasets"]["scenes"], "pretrain_from": "scenes"}
    job = {"dataset": "scenes_b", "method": METHOD, "seed": 0, "task": "retrieval"}
    spec = stage_spec(config, "finetune", **job)
    assert spec["pretrained_on"] == "scenes"
    inputs = ["--data", str(run.other_data), "--tokenizer", str(run.tokenizer)]
    out = tmp_path / "finetune"
    assert fusebench("finetune", *inputs, "--init", str(run.pretrained), "--out", str(out), spec=spec) == 0
    evaluation = stage_spec(config, "evaluate", **job)
    checkpoint = ["--checkpoint", str(out / "model.safetensors")]
    assert fusebench("evaluate", *inputs, *checkpoint, "--out", str(tmp_path / "eval.json"), spec=evaluation) == 0

    del config["datasets"]["scenes_b"]["pretrain_from"]
    spec = stage_spec(config, "finetune", **job)
    capsys.readouterr()
    code = fusebench("finetune", *inputs, "--init", str(run.pretrained), "--out", str(tmp_path / "out"), spec=spec)
    refused(capsys, code, "dataset 'scenes' in the checkpoint, 'scenes_b' requested")
    assert not (tmp_path / "out").exists()


def test_checkpoints_record_their_job(run: Run) -> None:
    from benchmark.train.checkpoint import JOB_KEYS, read_metadata

    meta = read_metadata(run.finetuned)
    assert {k: meta[k] for k in JOB_KEYS} == {
        "stage": "finetune",
        "method": METHOD,
        "seed": 0,
        "task": "retrieval",
        "dataset": "scenes",
        "tokenizer_sha256": hashlib.sha256(run.tokenizer.read_bytes()).hexdigest(),
        "data_sha256": hashlib.sha256((run.data / "manifest.json").read_bytes()).hexdigest(),
    }
    assert meta["pretrained_on"] == "scenes" and meta["pretrain_data_sha256"] == meta["data_sha256"]
    assert read_metadata(run.pretrained)["stage"] == "pretrain" and "task" not in read_metadata(run.pretrained)


def test_an_older_checkpoint_is_checked_on_what_it_records(caplog: pytest.LogCaptureFixture) -> None:
    """A checkpoint written before the job was recorded is accepted, with a warning naming what went unchecked;
    what it does record is still checked."""
    from benchmark.errors import InputMismatchError
    from benchmark.train.checkpoint import check_job

    old = {"stage": "finetune", "method": METHOD}
    with caplog.at_level("WARNING", logger="fusebench"):
        check_job("old.safetensors", old, {"stage": "finetune", "method": METHOD, "seed": 0}, {})
    assert "old.safetensors records no seed" in caplog.text
    with pytest.raises(InputMismatchError, match="method 'contrastive_clip' in the checkpoint, 'early_concat'"):
        check_job("old.safetensors", old, {"stage": "finetune", "method": "early_concat", "seed": 0}, {})
