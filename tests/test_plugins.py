"""Tasks and dataset adapters plug in as one file each, and a broken one is refused before any job."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from benchmark.config import load_config, stage_spec
from benchmark.datasets import dataset_kinds
from benchmark.errors import ConfigError
from tests.helpers import (
    OVERRIDE_MARK,
    SMOKE,
    TOY_ADAPTER,
    TOY_TASK,
    forget_plugin_modules,
    fusebench_process,
    planned_jobs,
    snakemake,
    write_plugins,
    write_user_plugins,
)


@pytest.fixture()
def plugin_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    tasks, datasets = write_plugins(tmp_path / "plugins")
    monkeypatch.setenv("FUSEBENCH_TASKS", str(tasks))
    monkeypatch.setenv("FUSEBENCH_DATASETS", str(datasets))
    yield tasks, datasets
    forget_plugin_modules(tasks.parent)  # the plug-ins were imported from a temporary folder


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


@pytest.fixture()
def user_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """$FUSEBENCH_BASELINES, $FUSEBENCH_TASKS and $FUSEBENCH_DATASETS name a user's folders (write_user_plugins)."""
    folders = write_user_plugins(tmp_path / "user")
    for variable, folder in folders.items():
        monkeypatch.setenv(variable, str(folder))
    yield folders
    forget_plugin_modules(tmp_path / "user")


def test_a_users_method_folder_adds_methods_and_overrides_a_built_in(user_plugins: dict[str, Path]) -> None:
    """The one rule, for methods: $FUSEBENCH_BASELINES adds its files to baselines/, and its late_fusion.py is
    the late_fusion that is listed, read, loaded and run; the built-in stays loadable from its folder."""
    from benchmark.config.grid import resolve_methods
    from benchmark.registry import BUILTIN_METHODS, load_method, method_names, method_path, method_schedule

    folder = user_plugins["FUSEBENCH_BASELINES"]
    built_in = [p.stem for p in sorted(BUILTIN_METHODS.glob("*.py")) if not p.stem.startswith("_")]
    assert "late_fusion" in built_in and method_names() == sorted([*built_in, "my_fusion"])
    assert method_path("late_fusion") == folder / "late_fusion.py"
    assert method_path("my_fusion") == folder / "my_fusion.py"
    assert method_path("early_concat") == BUILTIN_METHODS / "early_concat.py"
    assert load_method("late_fusion").paper.startswith(OVERRIDE_MARK)
    assert not load_method("late_fusion", BUILTIN_METHODS).paper.startswith(OVERRIDE_MARK)  # another module
    assert load_method("my_fusion").family == "unimodal reference"
    assert method_schedule("my_fusion").training_stages == ("pretrain", "finetune")
    # methods: all covers both folders, and the profile's overrides of built-in methods stay valid
    config = load_config([SMOKE])
    assert config["method_overrides"] and {"late_fusion", "my_fusion", "early_concat"} <= set(
        resolve_methods(config, method_names())
    )


def test_a_users_task_folder_adds_tasks_and_overrides_a_built_in(user_plugins: dict[str, Path]) -> None:
    """The one rule, for tasks: $FUSEBENCH_TASKS's retrieval.py replaces the built-in retrieval in its place."""
    from benchmark.tasks import TASK_TABLE, get_task, task_names

    folder = user_plugins["FUSEBENCH_TASKS"]
    assert task_names() == ["retrieval", "grounding", "matching", "caption_match"]
    task = get_task("retrieval")
    assert task.abbreviation == OVERRIDE_MARK and task.source == str(folder / "retrieval.py")
    assert TASK_TABLE.user_file("retrieval") == folder / "retrieval.py" and TASK_TABLE.user_file("grounding") is None
    assert get_task("grounding").source.endswith("benchmark/tasks/grounding.py")
    assert "retrieval" in load_config([SMOKE])["finetune"]  # the override inherits the built-in's defaults


def test_a_users_dataset_folder_adds_adapters_and_overrides_a_built_in(user_plugins: dict[str, Path]) -> None:
    """The one rule, for dataset adapters: $FUSEBENCH_DATASETS's synthetic.py is the adapter of kind synthetic."""
    from benchmark.datasets import ADAPTER_TABLE, dataset_tasks, get_adapter

    folder = user_plugins["FUSEBENCH_DATASETS"]
    assert dataset_kinds() == [*BUILT_IN_KINDS, "toy_scenes"]
    assert get_adapter("synthetic").description.startswith(OVERRIDE_MARK)
    assert ADAPTER_TABLE.source("synthetic") == folder / "synthetic.py"
    assert ADAPTER_TABLE.user_file("karpathy") is None
    assert dataset_tasks("synthetic") == ["retrieval", "grounding", "matching", "caption_match"]
    assert load_config([SMOKE])["datasets"]["scenes"]["kind"] == "synthetic"  # validated against the override


def test_snakemake_plans_the_users_plugins_and_tracks_the_overriding_files(tmp_path: Path) -> None:
    """The workflow sees the same plug-ins: the added method and task get jobs, and each overriding file (not the
    built-in it overrides) is an input of its jobs, so editing it re-runs them."""
    folders = write_user_plugins(tmp_path / "user")
    built_in = planned_jobs(snakemake(tmp_path / "run", "--dry-run"))
    result = snakemake(tmp_path / "run", "--dry-run", env={k: str(v) for k, v in folders.items()})
    jobs = planned_jobs(result)
    assert jobs["pretrain"] == built_in["pretrain"] + 1  # my_fusion
    assert jobs["finetune"] == jobs["pretrain"] * 3 and built_in["finetune"] == built_in["pretrain"] * 2  # + a task
    text = result.stdout + result.stderr
    for kind, name in (("BASELINES", "late_fusion"), ("BASELINES", "my_fusion"), ("TASKS", "retrieval")):
        assert re.search(rf"^\s+input: .*{re.escape(str(folders['FUSEBENCH_' + kind] / name))}\.py", text, re.M), name
    assert re.search(rf"^\s+input: .*{re.escape(str(folders['FUSEBENCH_DATASETS'] / 'synthetic.py'))}", text, re.M)
    assert "baselines/late_fusion.py" not in text.replace(str(folders["FUSEBENCH_BASELINES"]), "")


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
    workflow = snakemake(tmp_path, env=env)  # the run stops before any job
    assert workflow.returncode != 0 and re.search(message, workflow.stderr), workflow.stderr[-2000:]
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
