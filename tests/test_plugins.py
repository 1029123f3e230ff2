"""Tasks and dataset adapters plug in as one file each, and a broken one is refused before any job."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmark.config import load_config, stage_spec
from benchmark.datasets import dataset_kinds
from benchmark.errors import ConfigError
from tests.helpers import REPO, SMOKE, TOY_ADAPTER, TOY_TASK, fusebench_process, write_plugins


@pytest.fixture()
def plugin_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    tasks, datasets = write_plugins(tmp_path / "plugins")
    monkeypatch.setenv("FUSEBENCH_TASKS", str(tasks))
    monkeypatch.setenv("FUSEBENCH_DATASETS", str(datasets))
    yield tasks, datasets
    for name in list(sys.modules):  # the plug-ins were imported from a temporary folder
        if name.startswith(("fusebench_fusebench_tasks.", "fusebench_fusebench_datasets.")):
            del sys.modules[name]


BUILT_IN_KINDS = ["synthetic", "coco_captions", "karpathy", "hf_retrieval", "webdataset", "refer", "grefcoco"]
"""The built-in dataset adapters, in their table's order."""


def test_builtin_tasks_and_dataset_kinds() -> None:
    from benchmark.datasets import dataset_kinds, dataset_tasks
    from benchmark.tasks import task_names

    assert task_names() == ["retrieval", "grounding", "matching"]
    assert dataset_kinds() == BUILT_IN_KINDS
    assert dataset_tasks("synthetic") == dataset_tasks("coco_captions") == ["retrieval", "grounding", "matching"]
    assert dataset_tasks("karpathy") == dataset_tasks("hf_retrieval") == ["retrieval"]  # they declare their tasks
    assert dataset_tasks("refer") == dataset_tasks("grefcoco") == ["grounding"]
    assert dataset_tasks("webdataset") == []


def test_a_task_and_a_dataset_adapter_are_one_file_each(plugin_env: tuple[Path, Path]) -> None:
    from benchmark.datasets import dataset_tasks
    from benchmark.tasks import get_task, task_names

    assert task_names() == ["retrieval", "grounding", "matching", "caption_match"]
    assert get_task("caption_match").source.endswith("caption_match.py")
    assert dataset_tasks("toy_scenes") == ["retrieval", "grounding", "matching", "caption_match"]
    # the task's own defaults complete the configuration, and its stage specs are cut like any other's
    config = load_config([SMOKE])
    assert config["finetune"]["caption_match"]["steps"] == 2
    assert config["robustness"]["summary_metric"]["caption_match"] == "match_AUROC"
    assert (
        stage_spec(config, "finetune", dataset="scenes", method="x", seed=0, task="caption_match")["optim"]["steps"]
        == 2
    )


def fusebench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return fusebench_process(*args, env={**os.environ, **(env or {})})


def test_list_datasets_and_tasks_show_the_plugins(tmp_path: Path) -> None:
    tasks, datasets = write_plugins(tmp_path)
    result = fusebench("list-datasets", env={"FUSEBENCH_TASKS": str(tasks), "FUSEBENCH_DATASETS": str(datasets)})
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert set(lines) == {*BUILT_IN_KINDS, "toy_scenes"}
    assert "reads in place" in lines["coco_captions"] and "caption_match" in lines["toy_scenes"]
    assert "converts" in lines["refer"] and "(pretraining)" in lines["webdataset"]
    result = fusebench("list-tasks", env={"FUSEBENCH_TASKS": str(tasks)})
    assert result.returncode == 0 and "caption_match" in result.stdout


BROKEN = {
    "adapter serving a task it lacks parts for": (
        "datasets",
        "captions_only",
        TOY_ADAPTER.replace(
            "class ToyScenes(Synthetic):",
            "class ToyScenes(Synthetic):\n"
            "    provides = ('images', 'captions')\n    tasks = ('retrieval', 'grounding')",
        ),
        r"captions_only.py: declares task 'grounding' but does not provide instances, refs",
    ),
    "adapter without prepare": (
        "datasets",
        "no_prepare",
        '"""Broken."""\nfrom benchmark.datasets.base import DatasetAdapter\n\n\nclass NoPrepare(DatasetAdapter):\n'
        '    description = "x"\n    provides = ("images",)\n    config_schema = {"type": "object"}\n',
        r"no_prepare.py: NoPrepare lacks required part\(s\) prepare\(\)",
    ),
    "task without evaluate and items": (
        "tasks",
        "half_task",
        TOY_TASK.replace("    def evaluate(", "    def _evaluate(").replace("    def items(", "    def _items("),
        r"half_task.py: CaptionMatch lacks required part\(s\) evaluate\(\), items\(\)",
    ),
    "task file that fails on import": (
        "tasks",
        "broken_import",
        TOY_TASK.replace("import numpy as np\n", "import numpy as np\nimport nonexistent_module_xyz\n"),
        r"task file .*broken_import.py cannot be imported: ModuleNotFoundError",
    ),
    "task reusing a built-in reference row name": (
        "tasks",
        "second_chance",
        TOY_TASK.replace('{"chance_match": "scores', '{"chance": "scores'),
        r"second_chance.py: reference row 'chance' is also used by task 'retrieval'",
    ),
    "adapter whose schema is not a schema": (
        "datasets",
        "bad_schema",
        TOY_ADAPTER.replace('"kind": {"const": "toy_scenes"}', '"kind": {"type": "objekt"}'),
        r"bad_schema.py: 'config_schema' is not a valid JSON schema",
    ),
    "task requiring an unknown part": (
        "tasks",
        "audio_task",
        TOY_TASK.replace('requires = ("images", "captions")', 'requires = ("images", "audio")'),
        r"audio_task.py: 'requires' names unknown dataset part\(s\) \['audio'\]",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_plugin_is_refused_before_any_job_naming_file_and_part(case: str, tmp_path: Path) -> None:
    kind, name, source, message = BROKEN[case]
    folder = tmp_path / kind
    folder.mkdir()
    (folder / f"{name}.py").write_text(source)
    env = {"FUSEBENCH_TASKS" if kind == "tasks" else "FUSEBENCH_DATASETS": str(folder)}
    result = fusebench("validate-config", "--config", str(SMOKE), env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr
    snakemake = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--cores",
            "1",
            "--configfile",
            str(SMOKE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert snakemake.returncode != 0 and re.search(message, snakemake.stderr), snakemake.stderr[-2000:]
    assert not (tmp_path / "results").exists()  # no job ran


def test_dataset_blocks_are_validated_against_their_adapter() -> None:
    with pytest.raises(ConfigError, match=r"'datasets.scenes.kind' = 'parquet' is not allowed; allowed values"):
        load_config(overrides=["datasets.scenes.kind=parquet"])
    with pytest.raises(ConfigError, match=r"unknown key 'datasets.scenes.root'"):
        load_config(overrides=["datasets.scenes.root=/data"])
    with pytest.raises(ConfigError, match=r"'evaluate.retrieval.shortlist_k' must be of type integer"):
        load_config(overrides=["evaluate.retrieval.shortlist_k=many"])
    with pytest.raises(ConfigError, match=r"'robustness.summary_metric.grounding' = 'BLEU' is not a grounding metric"):
        load_config(overrides=["robustness.summary_metric.grounding=BLEU"])
    with pytest.raises(ConfigError, match=r"'tasks' names unknown task\(s\) \['vqa'\]"):
        load_config(overrides=["tasks=[retrieval, vqa]"])


def test_coco_captions_reads_a_copy_in_place_with_the_same_metrics(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict, tmp_path: Path
) -> None:
    """The standard form read in place (kind: coco_captions) gives the same rows as the generated scenes."""
    from benchmark.stages import run_data, run_evaluate, run_finetune, run_pretrain

    copy = tmp_path / "user" / "scenes"
    shutil.copytree(tiny_dataset, copy)
    spec = {"stage": "data", "dataset": "scenes", "kind": "coco_captions", "root": str(copy)}
    run_data(spec, tmp_path / "run" / "scenes" / "data")
    record = json.loads((tmp_path / "run" / "scenes" / "data.result.json").read_text())
    assert record["data_dir"] == str(copy) and record["splits"]["test"]["images"] == 24
    assert not (tmp_path / "run" / "scenes" / "data").exists()  # nothing generated or copied

    config = {**smoke_config, "pretrain": {**smoke_config["pretrain"], "steps": 4, "batch_size": 8}}
    config["finetune"] = {t: {**o, "steps": 3, "batch_size": 8} for t, o in config["finetune"].items()}
    rows = {}
    for name, data in (("generated", tiny_dataset), ("in_place", copy)):
        out = tmp_path / name
        spec = stage_spec(config, "pretrain", dataset="scenes", method="contrastive_clip", seed=0)
        run_pretrain(spec, data, tiny_tokenizer_file, out / "pretrain")
        for task in ("retrieval", "grounding"):
            spec = stage_spec(config, "finetune", dataset="scenes", method="contrastive_clip", seed=0, task=task)
            run_finetune(spec, data, tiny_tokenizer_file, out / "pretrain" / "model.safetensors", out / task)
            spec = stage_spec(config, "evaluate", dataset="scenes", method="contrastive_clip", seed=0, task=task)
            run_evaluate(spec, data, tiny_tokenizer_file, out / task / "model.safetensors", out / f"{task}.json")
            rows[name, task] = json.loads((out / f"{task}.json").read_text())["rows"]
    for task in ("retrieval", "grounding"):
        assert rows["generated", task] == rows["in_place", task]


def test_coco_captions_refuses_a_changed_file(tiny_dataset: Path, tmp_path: Path) -> None:
    from benchmark.errors import DataFileError
    from benchmark.stages import run_data

    copy = tmp_path / "scenes"
    shutil.copytree(tiny_dataset, copy)
    changed = copy / "annotations" / "captions_test.json"
    changed.write_text(changed.read_text().replace("a ", "the ", 1))
    with pytest.raises(DataFileError, match=f"file {changed} does not match its sha256"):
        run_data({"stage": "data", "dataset": "scenes", "kind": "coco_captions", "root": str(copy)}, tmp_path / "d")


def test_a_plugin_of_the_same_name_in_another_folder_is_another_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plug-ins are cached per file: switching $FUSEBENCH_TASKS never returns the previous folder's class."""
    from benchmark.tasks import get_task

    first, _ = write_plugins(tmp_path / "a")
    second, _ = write_plugins(tmp_path / "b")
    (second / "caption_match.py").write_text(TOY_TASK.replace('abbreviation = "Match"', 'abbreviation = "Other"'))
    monkeypatch.setenv("FUSEBENCH_TASKS", str(first))
    assert get_task("caption_match").abbreviation == "Match"
    monkeypatch.setenv("FUSEBENCH_TASKS", str(second))
    task = get_task("caption_match")
    assert task.abbreviation == "Other" and task.source == str(second / "caption_match.py")


def test_a_dataset_serving_none_of_the_run_tasks_is_an_error(
    plugin_env: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, datasets = plugin_env
    source = (datasets / "toy_scenes.py").read_text()
    (datasets / "toy_scenes.py").write_text(
        source.replace("class ToyScenes(Synthetic):\n", "class ToyScenes(Synthetic):\n    tasks = ('retrieval',)\n")
    )
    toy = {**load_config([SMOKE])["datasets"]["scenes"], "kind": "toy_scenes"}
    overlay = datasets.parent / "toy.yaml"
    overlay.write_text(yaml.safe_dump({"datasets": {"toy": toy}, "tasks": ["grounding"]}))
    with pytest.raises(
        ConfigError, match=r"'datasets.toy' \(toy_scenes\) serves none of the run's tasks \['grounding'\]"
    ):
        load_config([SMOKE, overlay])


@pytest.mark.parametrize("kind", dataset_kinds())
def test_every_dataset_adapter_meets_the_contract(kind: str) -> None:
    """Each adapter of the table (discovered, not listed here) loads through the contract check, its schema pins
    its own kind, and the tasks it serves are known tasks."""
    from benchmark.datasets import dataset_tasks, get_adapter
    from benchmark.tasks import task_names

    adapter = get_adapter(kind)
    assert adapter.kind == kind and adapter.description
    assert adapter.config_schema["properties"]["kind"] == {"const": kind}, adapter.config_schema
    assert set(dataset_tasks(kind)) <= set(task_names())
