"""benchmark.workflow: the Python the Snakefile, the rules and the Makefile run, tested without Snakemake.

The path templates pin the layout of a run (changing one renames a job's files and re-runs it); the
commands are pinned to the exact text the rules always had (Snakemake records it as the rule's code);
the expected-results grid, the files of a weights folder, the stale-lock decision (on fake /proc
folders) and the dating of a failed run's partial tables are checked on small inputs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmark.config import load_config, stage_spec
from benchmark.paths import DATA_RECORD_FILE, TABLES, data_record_path
from benchmark.results import items_path
from benchmark.sources import folder_files
from benchmark.workflow import locks
from benchmark.workflow.commands import evaluation_command, quoted_json, training_command, tune_select_command
from benchmark.workflow.expected import expected_results, job_entry
from benchmark.workflow.grid import RunGrid, run_grid
from benchmark.workflow.inputs import local_weight_files
from benchmark.workflow.partial import OUTDATED, date_outdated, partial_message, run_fusebench
from benchmark.workflow.paths import RunLayout, factor_label, items_template

REPO = Path(__file__).resolve().parent.parent
RUN = RunLayout("results/smoke")

# -- paths --


def test_the_layout_of_a_run_is_pinned() -> None:
    assert {
        "data_dir": RUN.data_dir,
        "data": RUN.data.output,
        "data_log": RUN.data.log,
        "tokenizer": RUN.tokenizer.output,
        "tokenizer_log": RUN.tokenizer.log,
        "pretrained_tokenizer": RUN.pretrained_tokenizer.output,
        "pretrained_tokenizer_log": RUN.pretrained_tokenizer.log,
        "pretrain_model": RUN.pretrain.model,
        "pretrain_result": RUN.pretrain.result,
        "pretrain_log": RUN.pretrain.log,
        "finetune_model": RUN.finetune.model,
        "finetune_result": RUN.finetune.result,
        "finetune_log": RUN.finetune.log,
        "trial_pretrain_model": RUN.trial_pretrain.model,
        "trial_pretrain_log": RUN.trial_pretrain.log,
        "trial_probe_result": RUN.trial_pretrain_finetune.result,
        "trial_probe_log": RUN.trial_pretrain_finetune.log,
        "pretrain_choice": RUN.pretrain_choice.output,
        "pretrain_choice_log": RUN.pretrain_choice.log,
        "pretrain_chosen": RUN.pretrain_chosen,
        "trial_finetune_result": RUN.trial_finetune.result,
        "trial_finetune_log": RUN.trial_finetune.log,
        "finetune_choice": RUN.finetune_choice.output,
        "finetune_choice_log": RUN.finetune_choice.log,
        "evaluation": RUN.evaluation.result,
        "evaluation_records": RUN.evaluation.records,
        "evaluation_log": RUN.evaluation.log,
        "reference": RUN.reference.output,
        "reference_log": RUN.reference.log,
        "robustness": RUN.robustness.result,
        "robustness_records": RUN.robustness.records,
        "robustness_log": RUN.robustness.log,
        "main_csv": RUN.tables.main_csv,
        "aggregate_log": RUN.aggregate_log,
        "plots": RUN.plots_dir,
        "plots_log": RUN.plots_log,
        "paper_log": RUN.paper_log,
        "partial": RUN.partial_dir,
    } == {
        "data_dir": "results/smoke/{dataset}/data",
        "data": "results/smoke/{dataset}/data.result.json",
        "data_log": "results/smoke/logs/{dataset}/data.log",
        "tokenizer": "results/smoke/{dataset}/tokenizer.json",
        "tokenizer_log": "results/smoke/logs/{dataset}/tokenizer.log",
        "pretrained_tokenizer": "results/smoke/tokenizers/{tokenizer}.json",
        "pretrained_tokenizer_log": "results/smoke/logs/tokenizers/{tokenizer}.log",
        "pretrain_model": "results/smoke/{dataset}/pretrain/{method}/seed{seed}/model.safetensors",
        "pretrain_result": "results/smoke/{dataset}/pretrain/{method}/seed{seed}/result.json",
        "pretrain_log": "results/smoke/logs/{dataset}/pretrain/{method}/seed{seed}.log",
        "finetune_model": "results/smoke/{dataset}/finetune/{task}/{method}/seed{seed}/model.safetensors",
        "finetune_result": "results/smoke/{dataset}/finetune/{task}/{method}/seed{seed}/result.json",
        "finetune_log": "results/smoke/logs/{dataset}/finetune/{task}/{method}/seed{seed}.log",
        "trial_pretrain_model": "results/smoke/{dataset}/tuning/{method}/lr{factor}/pretrain/model.safetensors",
        "trial_pretrain_log": "results/smoke/logs/{dataset}/tuning/{method}/lr{factor}/pretrain.log",
        "trial_probe_result": "results/smoke/{dataset}/tuning/{method}/lr{factor}/finetune/{task}/result.json",
        "trial_probe_log": "results/smoke/logs/{dataset}/tuning/{method}/lr{factor}/finetune_{task}.log",
        "pretrain_choice": "results/smoke/{dataset}/tuning/{method}/pretrain_choice.json",
        "pretrain_choice_log": "results/smoke/logs/{dataset}/tuning/{method}/select_pretrain.log",
        "pretrain_chosen": "results/smoke/{dataset}/tuning/{method}/pretrain_chosen/model.safetensors",
        "trial_finetune_result": "results/smoke/{dataset}/tuning/{method}/finetune/{task}/lr{factor}/result.json",
        "trial_finetune_log": "results/smoke/logs/{dataset}/tuning/{method}/finetune/{task}/lr{factor}.log",
        "finetune_choice": "results/smoke/{dataset}/tuning/{method}/finetune/{task}/choice.json",
        "finetune_choice_log": "results/smoke/logs/{dataset}/tuning/{method}/finetune/{task}/select.log",
        "evaluation": "results/smoke/{dataset}/eval/{task}/{method}/seed{seed}.json",
        "evaluation_records": "results/smoke/{dataset}/eval/{task}/{method}/seed{seed}.items.npz",
        "evaluation_log": "results/smoke/logs/{dataset}/eval/{task}/{method}/seed{seed}.log",
        "reference": "results/smoke/{dataset}/eval/{task}/references.json",
        "reference_log": "results/smoke/logs/{dataset}/eval/{task}/references.log",
        "robustness": "results/smoke/{dataset}/robustness/{task}/{method}/seed{seed}.json",
        "robustness_records": "results/smoke/{dataset}/robustness/{task}/{method}/seed{seed}.items.npz",
        "robustness_log": "results/smoke/logs/{dataset}/robustness/{task}/{method}/seed{seed}.log",
        "main_csv": "results/smoke/tables/main.csv",
        "aggregate_log": "results/smoke/logs/aggregate.log",
        "plots": "results/smoke/plots",
        "plots_log": "results/smoke/logs/plots.log",
        "paper_log": "results/smoke/logs/paper.log",
        "partial": "results/smoke/logs/partial",
    }


def test_the_templates_agree_with_what_the_stages_write() -> None:
    job = {"dataset": "scenes", "task": "retrieval", "method": "clip", "seed": 2}
    build = RUN.data_dir.format(**job)
    assert str(data_record_path(build)) == RUN.data.output.format(**job)  # the data stage's record
    assert Path(RUN.data.output).name == DATA_RECORD_FILE
    for files in (RUN.evaluation, RUN.robustness):  # the evaluation stage's per-item records
        assert str(items_path(Path(files.result.format(**job)))) == files.records.format(**job)
    assert Path(RUN.pretrain.model).parent == Path(RUN.pretrain.result).parent  # one --out folder
    with pytest.raises(ValueError, match="not a result file"):
        items_template("x/seed{seed}.npz")


def test_every_table_has_one_distinct_file_in_the_tables_folder() -> None:
    assert len(set(TABLES)) == len(TABLES) == 21
    assert {Path(path).parent.as_posix() for path in RUN.tables} == {RUN.tables_dir}
    assert [Path(path).name for path in RUN.tables] == list(TABLES)
    assert RunLayout("/abs/out/").tables.main_csv == "/abs/out//tables/main.csv"  # output_dir kept as written


# -- commands: the exact text the rules had before (Snakemake's record of the rules' code) --

BEFORE = {
    ("pretrain", False): "python -m benchmark -v pretrain --spec {params.spec} --threads {threads}"
    " --processes {resources.processes} --data {params.data} --tokenizer {input.tokenizer} {params.tuned}"
    " --out {params.folder} 2> {log}",
    ("finetune", False): "python -m benchmark -v finetune --spec {params.spec} --threads {threads}"
    " --processes {resources.processes} --data {params.data} --tokenizer {input.tokenizer} {params.init}"
    " {params.tuned} --out {params.folder} 2> {log}",
    ("pretrain", True): "python -m benchmark -v pretrain --spec {params.spec} --threads {threads}"
    " --processes {resources.processes} --data {params.data} --tokenizer {input.tokenizer}"
    " --out {params.folder} 2> {log}",
    ("finetune", True): "python -m benchmark -v finetune --spec {params.spec} --threads {threads}"
    " --processes {resources.processes} --data {params.data} --tokenizer {input.tokenizer} --init {input.init}"
    " --out {params.folder} 2> {log}",
}


@pytest.mark.parametrize(("stage", "trial"), list(BEFORE))
def test_a_training_command_is_the_rules_command(stage: str, trial: bool) -> None:
    assert training_command(stage, trial=trial) == BEFORE[stage, trial]


@pytest.mark.parametrize("stage", ["evaluate", "robustness"])
def test_an_evaluation_command_is_the_rules_command(stage: str) -> None:
    assert evaluation_command(stage) == (
        f"python -m benchmark -v {stage} --spec {{params.spec}} --threads {{threads}} --data {{params.data}}"
        " {params.tokenizer} {params.checkpoint} --out {output.result} 2> {log}"
    )


def test_a_tuning_choice_command_copies_the_chosen_pretraining_only_for_pretraining() -> None:
    assert tune_select_command("pretrain") == (
        "python -m benchmark -v tune-select {input.trials} --pretrained {input.pretrained}"
        " --chosen-model {output.model} --out {output.choice} 2> {log}"
    )
    assert tune_select_command("finetune") == (
        "python -m benchmark -v tune-select {input.trials} --out {output.choice} 2> {log}"
    )


def test_a_command_names_only_its_stages() -> None:
    with pytest.raises(ValueError, match="not a training stage"):
        training_command("evaluate")
    with pytest.raises(ValueError, match="not an evaluation stage"):
        evaluation_command("pretrain")


# -- the files of a weights path --


def test_a_weights_folder_is_its_files_outside_hidden_folders(tmp_path: Path) -> None:
    folder = tmp_path / "vit"
    for name in (
        "config.json",
        "model.safetensors",
        ".gitattributes",
        "sub/extra.txt",
        ".cache/hub/x.lock",
        ".git/HEAD",
    ):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(name)
    files = local_weight_files(folder)
    assert files == [str(folder / n) for n in (".gitattributes", "config.json", "model.safetensors", "sub/extra.txt")]
    # the same rule as the provenance digests: every file a job hashes is an input of the job
    assert files == sorted(str(p) for p in folder_files(folder, hidden_files=True))
    assert set(map(str, folder_files(folder))) < set(files)  # a tower's digests leave the hidden file out
    assert local_weight_files(folder / "model.safetensors") == [str(folder / "model.safetensors")]
    assert local_weight_files("org/model-name") == []  # a hub name: nothing local to track


# -- the grid and the expected-results file --


@pytest.fixture(scope="module")
def smoke() -> dict:
    return load_config([REPO / "workflows/config/smoke.yaml"])


def test_the_grid_of_the_smoke_profile(smoke: dict) -> None:
    grid = run_grid(smoke)
    assert grid.seeds == smoke["seeds"] and grid.pretrain_datasets == ["scenes"]
    assert {dataset for dataset, _ in grid.dataset_tasks} == {"scenes"}
    assert all(grid.training[m] == ("pretrain", "finetune") for m in grid.methods)
    assert len(grid.every_job("{dataset}{task}{method}{seed}")) == len(grid.dataset_tasks) * len(grid.methods) * len(
        grid.seeds
    )


def _grid() -> RunGrid:
    return RunGrid(
        dataset_tasks=[("scenes", "retrieval"), ("scenes", "grounding")],
        methods=["early_concat", "late_fusion"],
        seeds=[0, 1],
        training={"early_concat": ("pretrain", "finetune"), "late_fusion": ()},
        pretrain_datasets=["scenes"],
    )


def test_the_grid_orders_jobs_by_dataset_task_method_seed() -> None:
    grid = _grid()
    assert grid.every_job("{task}/{method}/{seed}")[:3] == [
        "retrieval/early_concat/0",
        "retrieval/early_concat/1",
        "retrieval/late_fusion/0",
    ]
    assert grid.trained_methods() == grid.trained_methods("pretrain") == ["early_concat"]
    assert grid.pretrain_results(RUN) == [
        f"results/smoke/scenes/pretrain/early_concat/seed{s}/result.json" for s in (0, 1)
    ]
    finetuned = "results/smoke/scenes/finetune/retrieval/early_concat/seed0/result.json"
    assert grid.finetune_results(RUN)[0] == finetuned
    assert grid.every_dataset_task("{dataset}:{task}") == ["scenes:retrieval", "scenes:grounding"]


def test_the_expected_results_name_every_cell_and_its_chain(smoke: dict) -> None:
    expected = expected_results(smoke, RUN, _grid())
    assert len(expected["cells"]) == 2 * 2 * 2 and len(expected["references"]) == 2
    trained, zero_shot = expected["cells"][0], expected["cells"][2]
    assert (trained["method"], trained["seed"], zero_shot["method"]) == ("early_concat", 0, "late_fusion")
    assert [job["rule"] for job in trained["upstream"]] == ["dataset", "tokenizer", "pretrain", "finetune"]
    assert [job["rule"] for job in zero_shot["upstream"]] == ["dataset"]  # no training jobs upstream
    assert trained["upstream"][2] == {
        "rule": "pretrain",
        "wildcards": {"dataset": "scenes", "method": "early_concat", "seed": 0},
        "output": "results/smoke/scenes/pretrain/early_concat/seed0/result.json",
        "log": "results/smoke/logs/scenes/pretrain/early_concat/seed0.log",
    }
    job = {"dataset": "scenes", "task": "retrieval", "method": "early_concat", "seed": 0}
    assert trained["evaluate"] == {**job_entry(RUN, "evaluate", **job), "spec": stage_spec(smoke, "evaluate", **job)}
    assert trained["robustness"]["output"] == "results/smoke/scenes/robustness/retrieval/early_concat/seed0.json"
    reference = expected["references"][1]
    assert reference["reference"]["output"] == "results/smoke/scenes/eval/grounding/references.json"
    assert reference["upstream"] == [job_entry(RUN, "dataset", dataset="scenes")]
    assert expected["training"] == [*_grid().pretrain_results(RUN), *_grid().finetune_results(RUN)]


# -- a failed run's partial tables --


def test_partial_outputs_are_dated_1970_and_missing_ones_skipped(tmp_path: Path) -> None:
    table = tmp_path / "main.csv"
    table.write_text("x")
    dated = date_outdated([table, tmp_path / "missing.csv"])
    assert dated == [table] and dated[0] is table  # the objects given: Snakemake's calls need its own
    assert table.stat().st_mtime == OUTDATED


def test_fusebench_is_run_as_the_jobs_run_it(tmp_path: Path) -> None:
    assert "usage" in (run_fusebench(["--help"], tmp_path / "ok.log", REPO) or "")
    assert run_fusebench(["no-such-command"], tmp_path / "bad.log", REPO) is None
    assert "no-such-command" in (tmp_path / "bad.log").read_text()
    assert partial_message(" 2 job(s) failed\n", "out/plots", False, "out/logs/partial").splitlines()[:2] == [
        "FuseBench: 2 job(s) failed",
        "Plots could not be drawn: see out/logs/partial/plots.log",
    ]


# -- the stale-lock check of `make run` --

LOCAL_ROOT = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
PROC = "23 22 0:5 / /proc rw,nosuid shared:2 - proc proc rw{proc_options}\n"
NFS = "24 22 0:6 / /shared rw shared:3 - nfs4 server:/export rw,vers=4.2\n"


def fake_proc(
    tmp_path: Path, mounts: str = LOCAL_ROOT + PROC, processes: dict[str, tuple[list[str], str]] | None = None
) -> Path:
    """A /proc-like folder: self/mountinfo and, per pid, cmdline (NUL-separated) and the cwd link."""
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(mounts.replace("/proc", str(proc)).format(proc_options=""))
    for pid, (argv, cwd) in (processes or {"1": (["/sbin/init"], "/")}).items():
        (proc / pid).mkdir()
        (proc / pid / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
        os.symlink(cwd, proc / pid / "cwd")
    return proc


def locked(tmp_path: Path) -> str:
    folder = tmp_path / "run"
    (folder / ".snakemake" / "locks").mkdir(parents=True)
    (folder / ".snakemake" / "locks" / "0.input.lock").write_text("")
    return os.path.realpath(folder)


def test_mount_finds_the_longest_mount_point_above_a_path() -> None:
    mounts = LOCAL_ROOT + NFS + "25 24 0:7 / /shared/my\\040dir rw - tmpfs tmpfs rw,size=1k\n"
    assert locks.mount("/home/me", mounts) == ("ext4", "rw")
    assert locks.mount("/shared/run", mounts) == ("nfs4", "rw,vers=4.2")
    assert locks.mount("/shared/my dir/run", mounts) == ("tmpfs", "rw,size=1k")
    assert locks.mount("/sharedother", mounts)[0] == "ext4"


def test_a_lock_nobody_uses_on_a_local_disk_is_removed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = locked(tmp_path)
    proc = fake_proc(
        tmp_path, processes={"1": (["/sbin/init"], "/"), "7": (["python", "-m", "snakemake"], "/elsewhere")}
    )
    assert locks.stale_lock(folder, proc, euid=1000) == locks.Decision(True)
    marker = tmp_path / "unlocked"
    assert locks.main([folder, f"touch {marker}"], proc) == 0 and marker.exists()
    assert "removing the lock" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["/venv/bin/snakemake", "--cores", "2"],
        ["python", "-m", "benchmark", "pretrain"],
        ["python3", "/venv/bin/fusebench"],
    ],
)
def test_a_run_working_in_the_folder_keeps_its_lock(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = locked(tmp_path)
    proc = fake_proc(tmp_path, processes={"1": (["/sbin/init"], "/"), "42": (argv, folder)})
    assert locks.main([folder, "false"], proc) == 0
    assert "a run is working in" in capsys.readouterr().out and "pid 42" in locks.stale_lock(folder, proc).message


@pytest.mark.parametrize(
    ("mounts", "euid", "doubt"),
    [
        (LOCAL_ROOT.replace(" / / ", " / /nothing ") + NFS.replace("/shared", "/"), 0, "(nfs4) may be shared"),
        (LOCAL_ROOT + PROC.replace("rw{proc_options}", "rw,hidepid=2"), 1000, "hidepid"),
    ],
)
def test_a_lock_that_may_be_in_use_stays_and_the_command_is_printed(
    tmp_path: Path, mounts: str, euid: int, doubt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = locked(tmp_path)
    proc = fake_proc(tmp_path, mounts=mounts)
    decision = locks.stale_lock(folder, proc, euid=euid)
    assert not decision.unlock and doubt in decision.doubt
    if euid == 0:
        assert locks.main([folder, "snakemake --unlock"], proc) == 1
        assert "    snakemake --unlock" in capsys.readouterr().err


def test_other_users_processes_or_no_proc_leave_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = locked(tmp_path)
    assert "no /proc" in locks.stale_lock(folder, tmp_path / "no-proc").doubt
    proc = fake_proc(tmp_path, processes={"1": (["/sbin/init"], "/"), "9": (["snakemake"], "/x")})
    readlink = os.readlink

    def hidden(path: os.PathLike[str] | str) -> str:
        if Path(path).parent.name == "9":
            raise PermissionError(path)
        return readlink(path)

    monkeypatch.setattr(os, "readlink", hidden)
    assert "other users cannot be seen here (9)" in locks.stale_lock(folder, proc, euid=0).doubt


def test_no_lock_nothing_to_do_and_a_failed_unlock_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert locks.main([str(tmp_path), "false"], tmp_path / "no-proc") == 0  # no lock: /proc is not even read
    folder = locked(tmp_path)
    assert locks.main([folder, "false"], fake_proc(tmp_path)) == 1
    assert "`false` failed" in capsys.readouterr().err
    assert locks.main([folder]) == 2


def test_the_workflow_package_imports_no_torch() -> None:
    """The Snakefile imports it: torch must not be needed to plan a run."""
    import subprocess
    import sys

    code = (
        "import sys, benchmark.workflow.commands, benchmark.workflow.expected, benchmark.workflow.grid,"
        " benchmark.workflow.inputs, benchmark.workflow.locks, benchmark.workflow.partial, benchmark.workflow.paths;"
        " from benchmark.config import load_config; benchmark.workflow.grid.run_grid(load_config());"
        " print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "[]"


def test_specs_are_canonical_shell_quoted_json_and_factors_short() -> None:
    assert quoted_json({"b": [1, "it's"], "a": None}) == """'{"a": null, "b": [1, "it'"'"'s"]}'"""
    assert [factor_label(f) for f in (0.5, 1.0, 2.0, 1e-05)] == ["0.5", "1", "2", "1e-05"]
