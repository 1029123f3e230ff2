"""Shared test helpers: paths, small inputs, the command lines the tests run, and files several tests write.

Test modules import from here, never from another test module or from ``conftest`` (which holds the fixtures).
Saved tiny models are built by ``tests/published_fixtures.py`` and ``tests/pretrained_fixtures.py``, official-format
files by ``tests/fixtures/official_formats.py``.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.config import load_config
from benchmark.config.grid import run_tasks
from benchmark.metrics.bootstrap import RetrievalItems, resample_weights

# -- paths and small inputs ------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


SMOKE = REPO / "workflows" / "config" / "smoke.yaml"


SMALL_SCENES = {"train": 24, "val": 8, "test": 8}


SMALL_IMAGE_SIZE = 32


def build_small_scenes(folder: Path, splits: dict[str, int] = SMALL_SCENES, image_size: int = SMALL_IMAGE_SIZE) -> Path:
    """The default config's synthetic scenes, small (24/8/8 images of 32 px unless told), built into ``folder``:
    what the official-format tests write out in each format and compare with."""
    from benchmark.config import load_yaml
    from benchmark.data.synthetic import build_synthetic_dataset
    from benchmark.paths import DEFAULT_CONFIG

    spec = load_yaml(DEFAULT_CONFIG)["datasets"]["scenes"]
    build_synthetic_dataset({**spec, "splits": dict(splits), "image_size": image_size}, folder)
    return folder


def tiny_data_spec(seed: int = 0, **changes: Any) -> dict[str, Any]:
    """A dataset spec small enough to build in well under a second."""
    from benchmark.config import load_config, stage_spec

    config = load_config([SMOKE])
    spec = stage_spec(config, "data", dataset="scenes")
    spec = {k: v for k, v in spec.items() if k not in ("stage", "dataset")}
    spec.update({"seed": seed, "splits": {"train": 64, "val": 16, "test": 24}})
    spec.update(changes)
    return spec


# -- command lines: Snakemake and the fusebench CLI ------------------------------------------------------------------

TASKS = tuple(run_tasks(load_config([SMOKE])))  # tasks: all, the opt-in ones (matching) left out


SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]


SMOKE_TIMEOUT_S = 2700
"""The smoke run takes about 1 minute alone on 2 cores with the warm worker (4 without; 80e480f), and 15-20 minutes
without it when `make test`'s second xdist worker runs another workflow beside it (cbd8631); the limit only stops a
hung run."""


def run(command: list[str], timeout: int = SMOKE_TIMEOUT_S, **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run`` whose timeout fails the test saying it was a timeout, with the output so far."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-3000:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        pytest.fail(f"timed out after {timeout} s (a hang, not a wrong result): {' '.join(command)}\n{tail}")


def snakemake(
    workdir: Path, *args: str, overlays: tuple[Path, ...] = (), env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run Snakemake on the smoke profile (plus overlays) with the module's own baselines folder."""
    baselines = workdir / "baselines"
    if not baselines.exists():
        shutil.copytree(REPO / "baselines", baselines)
    return run(
        [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(SMOKE), *map(str, overlays), *args],
        env={**os.environ, "FUSEBENCH_BASELINES": str(baselines), **(env or {})},
    )


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule → job count from a dry run's 'Job stats' table."""
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M))
    counts.pop("total", None)
    return {rule: int(n) for rule, n in counts.items()}


def config_args(*sets: str, config: Path = SMOKE) -> list[str]:
    """``--config CONFIG --set=KEY=VALUE …``: the smoke profile (unless told) with dotted-key overrides."""
    return ["--config", str(config), *(f"--set={s}" for s in sets)]


def job_args(
    method: str,
    data: Path,
    out: Path,
    tokenizer: Path | None = None,
    task: str | None = None,
    seed: int = 0,
    threads: int | None = 1,
) -> list[str]:
    """A stage job's own arguments on the scenes dataset, as the workflow's rules pass them to the CLI."""
    args = ["--dataset", "scenes", "--method", method, *(["--task", task] if task else []), "--seed", str(seed)]
    args += ["--threads", str(threads)] if threads is not None else []
    args += ["--data", str(data), *(["--tokenizer", str(tokenizer)] if tokenizer else []), "--out", str(out)]
    return args


def fusebench_process(*argv: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m benchmark ARGV`` in a fresh process from the repository root (``env`` replaces the environment)."""
    command = [sys.executable, "-m", "benchmark", *argv]
    return subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, timeout=timeout, env=os.environ if env is None else env
    )


# -- result files and tables -----------------------------------------------------------------------------------------


def require_pdflatex() -> None:
    if shutil.which("pdflatex"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("CI must have pdflatex: `make test` installs it from Debian (make tex)")
    pytest.skip(
        "pdflatex not installed (apt-get install texlive-latex-base texlive-latex-recommended "
        "texlive-fonts-recommended lmodern); the LaTeX compile tests need it"
    )


def compile_document(body: str, tmp_path: Path, preamble: str = "") -> None:
    from benchmark.report.paper import compile_latex

    source = tmp_path / "doc.tex"
    source.write_text(
        "\\documentclass{article}\\usepackage[utf8]{inputenc}\\usepackage[T1]{fontenc}"
        "\\usepackage{lmodern}\\usepackage{booktabs}\\usepackage{graphicx}"
        + preamble
        + "\\begin{document}"
        + body
        + "\\end{document}\n"
    )
    compile_latex(source, [tmp_path], tmp_path / "doc.pdf", passes=1)
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def nontrivial_weights(rng: np.random.Generator, units: int, count: int) -> list[np.ndarray]:
    """Resample multiplicities with 0s, 1s and 2s (and the odd 3+ from real bootstrap draws)."""
    crafted = [rng.permutation(np.arange(units) % 3) for _ in range(count)]  # as many 0s, 1s and 2s
    drawn = list(resample_weights(units, count, seed=int(rng.integers(1 << 30))))
    for w in crafted + drawn:
        assert w.sum() > 0 and (w == 0).any() and (w == 1).any(), w
    assert all((w == 2).any() for w in crafted)
    return crafted + drawn


def grounding_pairs(
    rng: np.random.Generator, pairs: int, ties: bool
) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray]], list[tuple[int, int]]]:
    """(targets, scored predictions, sizes): 0–3 targets per pair, noise boxes plus noisy copies of the targets."""
    targets, predictions = [], []
    for k in range(pairs):
        n = k % 4  # no-target, single-target and multi-target expressions
        boxes = np.column_stack([rng.uniform(0, 30, (n, 2)), rng.uniform(5, 15, (n, 2))])
        noise = np.column_stack([rng.uniform(0, 30, (3, 2)), rng.uniform(5, 15, (3, 2))])
        guess = np.vstack([noise, boxes + rng.normal(0, 1.5, boxes.shape)])
        scores = rng.uniform(0, 1, len(guess))
        targets.append(boxes)
        predictions.append((guess, scores.round(2) if ties else scores))
    predictions[5] = (np.zeros((0, 4)), np.zeros(0))  # pair 5 has a target and no box: IoU 0
    return targets, predictions, [(48, 48)] * pairs


GROUNDING_METRICS = ("AP", "AP50", "AP75", "AR@100", "mIoU", "Acc@0.5", "N-acc", "T-acc", "no_target_balanced_acc")


def retrieval_items_hitting(n_images: int, captions: int, missed: Sequence[int]) -> RetrievalItems:
    """Items whose every query ranks its positive first, except the images in ``missed`` (and their captions)."""
    owner = np.repeat(np.arange(n_images), captions)
    i2t = np.zeros(n_images, dtype=int)
    i2t[list(missed)] = len(owner)  # no positive in the gallery ranking: never a hit
    return RetrievalItems(np.where(np.isin(owner, list(missed)), n_images, 0), owner, i2t, (1,))


def markdown_rows(text: str, heading: str) -> dict[str, list[str]]:
    """method → cells of the first Markdown table after ``heading``."""
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
    header, body = rows[0], rows[2:]  # rows[1] is the |---| rule
    return {"header": header, **{row[0]: row for row in body}}


def tidy_retrieval_frame(
    values: dict[str, list[float]], references: dict[str, float], metric: str = "mean_R"
) -> pd.DataFrame:
    """main.csv-like rows: one per (method, seed) of ``values``, one seedless row per reference."""

    def row(method: str, seed: int | None, value: float) -> dict[str, Any]:
        return {
            "dataset": "d",
            "method": method,
            "seed": seed,
            "task": "retrieval",
            "metric": metric,
            "corruption": "none",
            "severity": 0,
            "value": value,
            "status": "ok",
        }

    rows = [row(method, seed, value) for method, per_seed in values.items() for seed, value in enumerate(per_seed)]
    rows += [row(method, None, value) for method, value in references.items()]
    frame = pd.DataFrame(rows)
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


AGGREGATE_VALUES = {  # method → metric → per-seed values; mean, median and first seed all differ
    "m1": {"t2i_R@1": [0.50, 0.62, 0.71], "i2t_R@1": [0.44, 0.58, 0.53], "mean_R": [0.47, 0.60, 0.62]},
    "m2": {"t2i_R@1": [0.20, 0.35, 0.26], "i2t_R@1": [0.18, 0.23, 0.30], "mean_R": [0.19, 0.29, 0.28]},
}


def write_evaluation(path: Path, method: str, seed: int, metrics: dict[str, float], items: RetrievalItems) -> None:
    """A result file and its .items.npz as stages.run_evaluate writes them."""
    from benchmark.io import write_json
    from benchmark.results import items_path, metric_rows, write_items

    spec = {
        "stage": "evaluate",
        "dataset": "d",
        "task": "retrieval",
        "method": method,
        "seed": seed,
        "device": "cpu",
        "ks": list(items.ks),
        "batch_size": 8,
    }
    write_items(
        items_path(path),
        {
            "t2i_rank": items.t2i_rank,
            "text_owner": items.text_owner,
            "i2t_rank": items.i2t_rank,
            "ks": np.asarray(items.ks),
        },
    )
    write_json(
        path,
        {
            "spec": spec,
            "provenance": {"device": {"type": "cpu"}, "wall_time_s": 1.0},
            "protocol": {},
            "rows": metric_rows(spec, method, metrics),
            "items": items_path(path).name,
        },
    )


# -- plug-in files ---------------------------------------------------------------------------------------------------

TOY_TASK = (
    (REPO / "benchmark" / "tasks" / "matching.py")
    .read_text()
    .replace("class Matching(Task):", "class CaptionMatch(Task):")
    .replace('abbreviation = "ITM"', 'abbreviation = "Match"')
    .replace('"chance_pairs"', '"chance_match"')
    .replace(
        "    opt_in = True  # not in ``tasks: all``: the default and smoke runs stay as they were", "    opt_in = False"
    )
    .replace(
        "    settings_schema: ClassVar",
        "    defaults: ClassVar[dict[str, Any]] = {\n"
        '        "finetune": {"steps": 2, "batch_size": 8, "lr": 0.001, "weight_decay": 0.0, "warmup_steps": 0,\n'
        '                     "grad_clip": 1.0, "checkpoint_every": 1},\n'
        '        "evaluate": {"max_images": None, "negatives_seed": 0},\n'
        '        "summary_metric": "match_AUROC",\n'
        "    }\n"
        "    settings_schema: ClassVar",
    )
)
"""The plug-in test's task: the real second task (``benchmark/tasks/matching.py``, image–text matching) as a user's
file in ``$FUSEBENCH_TASKS`` — its own name, abbreviation and reference row, its defaults in the file, and in
``tasks: all`` (the built-in is opt-in)."""


TOY_ADAPTER = '''"""A toy dataset kind for the plug-in tests: the synthetic scenes under another kind name."""

from __future__ import annotations

from typing import Any, ClassVar

from benchmark.datasets.synthetic import Synthetic


class ToyScenes(Synthetic):
    description = "synthetic scenes under another name"
    config_schema: ClassVar[dict[str, Any]] = {
        **Synthetic.config_schema,
        "properties": {**Synthetic.config_schema["properties"], "kind": {"const": "toy_scenes"}},
    }
'''


def write_plugins(root: Path) -> tuple[Path, Path]:
    """A toy task and a toy dataset adapter in their own folders (as a user would add them)."""
    tasks, datasets = root / "tasks", root / "datasets"
    tasks.mkdir(parents=True)
    datasets.mkdir(parents=True)
    (tasks / "caption_match.py").write_text(TOY_TASK)
    (datasets / "toy_scenes.py").write_text(TOY_ADAPTER)
    return tasks, datasets


OVERRIDE_MARK = "(the user's own)"
"""Marks each overriding file of :func:`write_user_plugins`, so a test tells it from the built-in it overrides."""


def write_user_plugins(root: Path) -> dict[str, Path]:
    """A user's folder per plug-in kind, keyed by the variable that names it: each adds a plug-in (the method
    ``my_fusion``, a copy of image_only; the task ``caption_match``; the adapter ``toy_scenes``) and overrides a
    built-in with a file of its name (``late_fusion``, ``retrieval``, ``synthetic``) marked by OVERRIDE_MARK in its
    paper, abbreviation or description — the one rule of docs/plugins.md."""
    tasks, datasets = write_plugins(root)
    baselines = root / "baselines"
    baselines.mkdir()
    (baselines / "my_fusion.py").write_text((REPO / "baselines" / "image_only.py").read_text())
    late_fusion = (REPO / "baselines" / "late_fusion.py").read_text()
    (baselines / "late_fusion.py").write_text(late_fusion.replace('    paper = "', f'    paper = "{OVERRIDE_MARK} ', 1))
    (tasks / "retrieval.py").write_text(
        '"""Retrieval under another abbreviation: a user\'s override of the built-in task."""\n\n'
        "from benchmark.tasks.retrieval import Retrieval as BuiltIn\n\n\n"
        f"class Retrieval(BuiltIn):\n    abbreviation = {OVERRIDE_MARK!r}\n"
    )
    (datasets / "synthetic.py").write_text(
        '"""The synthetic scenes described anew: a user\'s override of the built-in adapter."""\n\n'
        "from benchmark.datasets.synthetic import Synthetic as BuiltIn\n\n\n"
        f"class Synthetic(BuiltIn):\n    description = {OVERRIDE_MARK + ' generated scenes'!r}\n"
    )
    return {"FUSEBENCH_BASELINES": baselines, "FUSEBENCH_TASKS": tasks, "FUSEBENCH_DATASETS": datasets}


def forget_plugin_modules(folder: Path) -> None:
    """Drop the modules imported from the plug-in files in ``folder`` (a test's temporary folder), so a file written
    again there is imported again and none outlives its test (plug-in modules are named ``fusebench_...``)."""
    folder = folder.resolve()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) if name.startswith("fusebench_") else None
        if file and Path(file).resolve().is_relative_to(folder):
            del sys.modules[name]


PLUGIN = '''"""CLIP fine-tuned for retrieval from its published weights (a test plug-in).

Follows Radford et al., ICML 2021: symmetric InfoNCE over the batch at a fixed temperature 0.07
(CLIP learns the temperature; fixed here to keep the plug-in minimal).
"""

from typing import Any

import torch
import torch.nn.functional as F

from benchmark.paths import REPO_ROOT
from benchmark.registry import load_method

Base = load_method("published_dual_encoder", REPO_ROOT / "baselines")


class FinetunedCLIP(Base):
    family = "dual encoder"
    paper = "Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021"
    training_stages = ("finetune",)
    defaults = {"objectives": {}, "pretrained": None, "text_padding": None, "max_length": None}

    def retrieval_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        logits = self.embed_image(batch["image"]) @ self.embed_text(batch["text"]).t() / 0.07
        target = torch.arange(len(logits), device=logits.device)
        return {"itc": (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2}
'''


# -- a model and its optimiser settings for in-process training -----------------------------------------------------

CPU = torch.device("cpu")


def clip_model_and_data(tiny_dataset: Path, tokenizer_file: Path, smoke_config: dict[str, Any], **overrides: Any):
    """contrastive_clip built for the smoke model on the tiny dataset, and the dataset's train split on the CPU."""
    from benchmark.data.dataset import load_split
    from benchmark.data.sampling import ImageTextData
    from benchmark.data.tokenizer import load_tokenizer, special_token_ids
    from benchmark.models.method import BuildContext
    from benchmark.registry import load_method
    from benchmark.seeding import seed_everything

    seed_everything(0)
    tokenizer = load_tokenizer(tokenizer_file, 24)
    split = load_split(tiny_dataset, "train")
    ctx = BuildContext(
        smoke_config["model"], split.image_size, tokenizer.get_vocab_size(), 24, special_token_ids(tokenizer)
    )
    model = load_method("contrastive_clip")(ctx, **overrides)
    return model, ImageTextData.from_split(split, tokenizer, CPU)


def optim_settings(steps: int, **changes: Any) -> Any:
    """The loop's OptimSettings for ``steps`` steps (batch 16, lr 3e-3, 2 warm-up steps), with ``changes``."""
    from benchmark.train.loop import OptimSettings

    values = dict(
        steps=steps, batch_size=16, lr=3e-3, weight_decay=0.0, warmup_steps=2, grad_clip=1.0, checkpoint_every=10
    )
    values.update(changes)
    return OptimSettings(**values)


def pretrain_loss_fn(model: Any, data: Any):
    """The training loop's loss function: pretraining losses on batch ``step`` of 16."""
    return lambda step: model.pretrain_losses(data.batch(step, 16, 0))


def scripted_validation(values: list[float], snapshots: list[dict[str, torch.Tensor]]):
    """A validation metric that follows ``values`` point by point and records the weights it saw."""

    def measure(model: torch.nn.Module) -> dict[str, float]:
        torch.rand(3)  # draws from the global RNG: the loop's per-step re-seeding keeps training unchanged
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"val_score": values[len(snapshots) - 1], "val_other": 1.0}

    return measure


def grid_frame(curves: dict[tuple[str, int], dict[str, object]]) -> pd.DataFrame:
    """(method, seed) → {"clean": M₀, corruption: [M_1, M_2]} as the tidy grounding rows of the grid."""
    rows = []
    for (method, seed), curve in curves.items():
        key = {"dataset": "d", "task": "grounding", "metric": "AP", "method": method, "seed": seed}
        rows.append({**key, "corruption": "none", "severity": 0, "value": curve["clean"]})
        for corruption, values in curve.items():
            if corruption != "clean":
                for severity, value in enumerate(values, start=1):  # type: ignore[arg-type]
                    rows.append({**key, "corruption": corruption, "severity": severity, "value": value})
    return pd.DataFrame(rows)


def validated_clip_run(
    setup: tuple[Path, Path, dict[str, Any]], state: Path, validation: Any, steps: int
) -> tuple[Any, Any]:
    """A fresh contrastive_clip (:func:`clip_model_and_data` of ``setup``) pretrained ``steps`` steps with
    ``validation``, its training state in ``state``: the loop's report and the model."""
    from benchmark.train.loop import train

    model, data = clip_model_and_data(*setup)
    report = train(
        model,
        pretrain_loss_fn(model, data),
        model.objective_weights,
        optim_settings(steps),
        CPU,
        0,
        state,
        "s",
        "t",
        validation,
    )
    return report, model
