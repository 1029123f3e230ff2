"""The task contract is closed, and the second built-in task (``matching``) measures what its docstring says.

**No task named outside its file.** Only ``benchmark/tasks/`` (the tasks), ``benchmark/metrics/`` and
``benchmark/hf_metrics/`` (where metrics are defined) may name a task or a task's metric; the rest of the
package — config, stages, train, report, cli, perf, registry, datasets, models, evaluation, data, … — asks
the task (:class:`benchmark.tasks.base.Task`). The rule, checked on the syntax tree (``ast``) of every module
there: no string constant in code — f-string parts included, docstrings excluded — may

* equal a registered task's name, one of its metric names, or ``val_<metric>`` (what code compares, looks
  up or keys by), or
* start with a metric prefix: a metric name's part up to and including its ``@`` (``t2i_R@``, ``AR@``, …),
  or end with such a prefix's part from its first ``_`` (``_R@``: a prefix assembled as ``f"{d}_R@"``),

except the elements of a class-level ``tasks = (...)`` declaration: a dataset adapter or a method saying which
tasks it serves is the plug-in's own declaration, not the framework branching. Prose that mentions a task
inside a longer message or description ("COCO / Flickr30k retrieval (Karpathy split)") is not a branch and
is allowed, as are docstrings and comments.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from benchmark.tasks import get_task, task_names
from tests.helpers import REPO

OWN_METRICS = ("tasks", "metrics", "hf_metrics")
"""Folders of ``benchmark/`` that may name tasks and metrics: the tasks themselves and the metric definitions."""


def _vocabulary() -> tuple[set[str], tuple[str, ...], tuple[str, ...]]:
    """(names a literal may not equal, prefixes it may not start with, tails it may not end with), from every
    registered task."""
    import yaml

    defaults = yaml.safe_load((REPO / "workflows" / "config" / "default.yaml").read_text())
    exact: set[str] = set()
    for name in task_names():
        task = get_task(name)
        settings = defaults["evaluate"].get(name, task.defaults.get("evaluate", {}))
        metrics = {*task.metric_names(settings), *task.table_metrics, *task.headline_metrics, *task.subset_metrics}
        exact |= {name, *metrics, *(f"val_{m}" for m in metrics)}
    prefixes = tuple(sorted({m[: m.index("@") + 1] for m in exact if "@" in m and not m.startswith("val_")}))
    tails = tuple(sorted({p[p.index("_") :] for p in prefixes if "_" in p}))
    return exact, prefixes, tails


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (module, class, function, attribute docstrings)."""
    out = set()
    for node in ast.walk(tree):
        for statement in getattr(node, "body", []) if isinstance(getattr(node, "body", None), list) else []:
            if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                out.add(id(statement.value))
    return out


def _declarations(tree: ast.AST) -> set[int]:
    """ids of the string constants inside a class-level ``tasks = (...)`` declaration."""
    out = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for statement in cls.body:
            targets = statement.targets if isinstance(statement, ast.Assign) else [getattr(statement, "target", None)]
            value = getattr(statement, "value", None)
            if value is not None and any(isinstance(t, ast.Name) and t.id == "tasks" for t in targets):
                out |= {id(n) for n in ast.walk(value) if isinstance(n, ast.Constant)}
    return out


def task_leaks(root: Path) -> list[str]:
    """``file:line: 'literal'`` of every string constant under ``root`` that names a task or a metric."""
    exact, prefixes, tails = _vocabulary()
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] in OWN_METRICS:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        allowed = _docstrings(tree) | _declarations(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in allowed:
                continue
            if node.value in exact or node.value.startswith(prefixes) or node.value.endswith(tails):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}: {node.value!r}")
    return found


def test_no_code_outside_the_tasks_names_a_task_or_its_metrics() -> None:
    assert task_leaks(REPO / "benchmark") == []


def test_the_scan_finds_a_branch_on_a_task_name(tmp_path: Path) -> None:
    """The rule catches what it is for: a branch on a task's name, a metric key, a metric prefix."""
    package = tmp_path / "benchmark"
    (package / "report").mkdir(parents=True)
    (package / "report" / "leaky.py").write_text(
        '"""Docstrings may say retrieval."""\n\n\n'
        "class Adapter:\n    tasks = ('retrieval',)  # a declaration: allowed\n\n\n"
        "def f(task, metric, d):\n"
        "    if task == 'grounding':\n        return 1\n"
        "    print('COCO retrieval files')  # prose: allowed\n"
        "    return metric.startswith(f'{d}_R@') or metric == 'val_mean_R' or metric.startswith('t2i_R@')\n"
    )
    leaks = task_leaks(package)
    assert sorted(leak.split(": ", 1)[1] for leak in leaks) == ["'_R@'", "'grounding'", "'t2i_R@'", "'val_mean_R'"]


# -- the matching task: its metric on hand-computed inputs ---------------------------------------------------


def test_matching_metrics_on_hand_computed_scores() -> None:
    from benchmark.tasks.matching import matching_metrics

    # positives 3, 1, 2; their own negatives 2, 1, 0 (negative scores 2, 1, 0)
    positive, negative = np.array([3.0, 1.0, 2.0]), np.array([2.0, 1.0, 0.0])
    # AUROC: p=3 beats 2, 1, 0 → 3; p=1: vs 2 → 0, vs 1 → ½, vs 0 → 1 → 1.5; p=2: vs 2 → ½, 1, 1 → 2.5; 7/9
    # pairwise accuracy: 3 > 2 → 1, 1 = 1 → ½, 2 > 0 → 1: 2.5 / 3
    assert matching_metrics(positive, negative) == pytest.approx({"match_AUROC": 7 / 9, "match_acc": 2.5 / 3})
    assert matching_metrics(np.ones(4), np.ones(4)) == {"match_AUROC": 0.5, "match_acc": 0.5}  # chance
    assert matching_metrics(np.array([1.0, 2.0]), np.array([0.0, -1.0])) == {"match_AUROC": 1.0, "match_acc": 1.0}
    # weights 1, 2 on the pairs (positive 1, negative 0) and (positive 2, negative 3):
    # Σ_p Σ_n w_p w_n H(s_p − s_n) = 1·1·H(1−0) + 1·2·H(1−3) + 2·1·H(2−0) + 2·2·H(2−3) = 1 + 0 + 2 + 0 = 3,
    # over (Σw)² = 9; accuracy (1·H(1−0) + 2·H(2−3)) / 3 = 1/3
    weighted = matching_metrics(np.array([1.0, 2.0]), np.array([0.0, 3.0]), np.array([1.0, 2.0]))
    assert weighted == pytest.approx({"match_AUROC": 1 / 3, "match_acc": 1 / 3})


def test_matching_items_resample_by_image() -> None:
    """The bootstrap records reproduce the metric at unit weights, and a unit's weight counts all its pairs."""
    from benchmark.tasks.matching import MatchingItems, matching_metrics

    positive, negative = np.array([3.0, 1.0, 2.0]), np.array([2.0, 1.0, 0.0])
    items = MatchingItems(positive, negative, np.array([0, 0, 1]), 2)
    assert items.metrics(np.ones(2)) == pytest.approx(matching_metrics(positive, negative))
    only_first = items.metrics(np.array([1.0, 0.0]))  # image 0's two pairs alone
    assert only_first == pytest.approx(matching_metrics(positive[:2], negative[:2]))
    batch = items.metrics_batch(np.array([[1.0, 1.0], [1.0, 0.0]]))
    assert batch["match_AUROC"] == pytest.approx([7 / 9, only_first["match_AUROC"]])


def test_negatives_are_other_images_captions_with_other_text_drawn_once() -> None:
    from benchmark.tasks.matching import draw_negatives

    captions = [["a red cube", "a cube"], ["a blue ball", "a cube"], ["a green cone"]]
    negatives = draw_negatives(captions, seed=0)
    texts = [c for caps in captions for c in caps]
    owners = [0, 0, 1, 1, 2]
    for p, q in enumerate(negatives):
        assert q >= 0 and owners[q] != owners[p] and texts[q] not in captions[owners[p]]
    assert (draw_negatives(captions, seed=0) == negatives).all()  # one draw per split and seed
    assert draw_negatives([["same"], ["same"]], seed=0).tolist() == [-1, -1]  # nothing unlike: no negative


def test_matching_applies_to_methods_that_score_pairs() -> None:
    from benchmark.registry import load_method, method_names

    task = get_task("matching")  # any method reading both modalities with a pair scorer or embeddings
    assert task.opt_in and "matching" in task_names()
    reasons = {name: task.not_applicable_reason(load_method(name)) for name in method_names()}
    assert reasons["contrastive_clip"] is None and reasons["early_concat"] is None
    assert reasons["published_dual_encoder"] is None and reasons["published_matcher"] is None
    assert "reads only the image" in reasons["image_only"] and "reads only the text" in reasons["text_only"]
    assert "neither a pair scorer nor embeddings" in reasons["published_detector"]


def test_matching_is_opt_in() -> None:
    from benchmark.config import load_config
    from benchmark.config.grid import run_tasks
    from tests.helpers import SMOKE

    assert run_tasks(load_config([SMOKE])) == ["retrieval", "grounding"]  # tasks: all leaves it out
    assert run_tasks(load_config([SMOKE], overrides=["tasks=[matching]"])) == ["matching"]


# -- the matching task end to end: a dry run and a smoke-sized run ---------------------------------------------

MATCHING_OVERLAY = {
    "output_dir": "results/matching",
    "tasks": ["matching"],
    "methods": ["contrastive_clip", "early_concat", "image_only"],
    "finetune": {"matching": {"steps": 10, "batch_size": 32, "warmup_steps": 2, "checkpoint_every": 5}},
}
"""A smoke-sized run of the opt-in task alone: a dual encoder, a fusion-head scorer, a method it cannot measure."""


def test_matching_runs_end_to_end_in_a_dry_run_and_a_smoke_sized_run(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys

    import pandas as pd
    import yaml

    from tests.helpers import SMOKE

    overlay = tmp_path / "matching.yaml"
    overlay.write_text(yaml.safe_dump(MATCHING_OVERLAY))
    shutil.copytree(REPO / "baselines", tmp_path / "baselines")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]
    command += ["--directory", str(tmp_path), "--configfile", str(SMOKE), str(overlay)]
    env = {**os.environ, "FUSEBENCH_BASELINES": str(tmp_path / "baselines")}
    dry = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, timeout=600, env=env)
    assert dry.returncode == 0, dry.stderr[-3000:]
    text = dry.stdout + dry.stderr
    for rule, count in (("finetune", 3), ("evaluate", 3), ("robustness", 3), ("reference", 1)):
        assert re.search(rf"^{rule}\s+{count}\s*$", text, flags=re.M), (rule, text[-3000:])
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    tables = tmp_path / "results" / "matching" / "tables"
    frame = pd.read_csv(tables / "main.csv", comment="#")
    assert set(frame["task"]) == {"matching"}
    clean = frame[frame["corruption"] == "none"]
    for method in ("contrastive_clip", "early_concat"):
        rows = clean[clean["method"] == method].set_index("metric")
        assert set(rows.index) == {"match_AUROC", "match_acc"}, rows
        assert (rows["status"] == "ok").all() and rows["value"].between(0, 1).all(), rows
    chance = clean[clean["method"] == "chance_pairs"].set_index("metric")["value"]
    assert chance.to_dict() == {"match_AUROC": 0.5, "match_acc": 0.5}
    image_only = clean[clean["method"] == "image_only"]
    assert image_only["value"].isna().all() and image_only["status"].str.contains("reads only the image").all()
    robustness = pd.read_csv(tables / "robustness.csv", comment="#")
    assert {"none", "gaussian_noise", "keyboard"} <= set(robustness["corruption"])
    measured = robustness[(robustness["method"] == "early_concat") & (robustness["corruption"] != "missing_text")]
    assert measured["value"].notna().all()
    missing = robustness[(robustness["corruption"] == "missing_text") & (robustness["method"] != "image_only")]
    assert missing["value"].isna().all() and missing["status"].str.contains("no pair to score").all()
    markdown = (tables / "main.md").read_text()
    assert "matched and" in markdown and "mismatched pairs" in markdown  # the task's own protocol counts
    assert "## scenes — matching (match_AUROC)" in (tables / "robustness.md").read_text()
