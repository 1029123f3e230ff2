"""The method contract: every file in baselines/ runs pretrain → finetune → evaluate.

Parametrised over the files found, so a new method is tested without anyone writing a test.
`fusebench new-method` output must pass the same contract.
"""

from __future__ import annotations

import inspect
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmark.config import stage_spec
from benchmark.registry import load_method, method_names, method_schedule
from benchmark.stages import run_evaluate, run_finetune, run_pretrain, run_robustness
from benchmark.tasks import get_task, task_names
from tests.helpers import REPO, forget_plugin_modules

TASKS = tuple(task_names())


def _tiny_config(smoke_config: dict[str, Any]) -> dict[str, Any]:
    optim = {
        "steps": 6,
        "batch_size": 8,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "warmup_steps": 1,
        "grad_clip": 1.0,
        "checkpoint_every": 3,
    }
    return {
        **smoke_config,
        "tasks": list(TASKS),  # every task, the opt-in ones included: each method meets each task
        "pretrain": optim,
        "finetune": {task: optim for task in TASKS},
        "evaluate": {
            **smoke_config["evaluate"],
            "batch_size": 16,
            "retrieval": {
                **smoke_config["evaluate"]["retrieval"],
                "max_images": 12,
                "exhaustive_max_images": 6,
                "shortlist_k": 4,
            },
        },
        "robustness": {
            **smoke_config["robustness"],
            "max_images": 8,
            "severities": [2],
            "image": ["contrast"],
            "text": ["char_swap"],
            "missing": ["image", "text"],
        },
    }


def published_weights(method: str, folder: Path) -> Path:
    """A tiny saved checkpoint for the published ``method``: built (tests/published_fixtures.py) for the first
    checkpoint type its class reads (``architectures``), so a new published method needs no entry here."""
    from tests.published_fixtures import BUILDERS

    kinds = list(load_method(method).architectures)
    builder = next((BUILDERS[kind] for kind in kinds if kind in BUILDERS), None)
    assert builder, f"{method} reads {kinds}: tests/published_fixtures.py needs a tiny builder for one of them"
    return builder(folder)


def check_contract(method: str, config: dict[str, Any], data: Path, tokenizer: Path, out: Path) -> None:
    """Train (unless zero-shot), evaluate and run the robustness grid of ``method`` through the stages."""
    cls = load_method(method)
    assert cls.paper and cls.family and cls.__doc__, f"{method}: needs a docstring, family and paper"
    checkpoint: Path | None = None
    if cls.training_stages:
        spec = stage_spec(config, "pretrain", dataset="scenes", method=method, seed=0)
        run_pretrain(spec, data, tokenizer, out / "pretrain")
        result = json.loads((out / "pretrain" / "result.json").read_text())
        assert result["efficiency"]["parameters"] > 0
        assert all(v == v for p in result["train"]["history"] for v in p.values()), "non-finite pretraining loss"
    for task in TASKS:
        if cls.training_stages:
            spec = stage_spec(config, "finetune", dataset="scenes", method=method, seed=0, task=task)
            run_finetune(spec, data, tokenizer, out / "pretrain" / "model.safetensors", out / task)
            checkpoint = out / task / "model.safetensors"
        spec = stage_spec(config, "evaluate", dataset="scenes", method=method, seed=0, task=task)
        assert spec.get("zero_shot", False) is not bool(cls.training_stages)
        run_evaluate(spec, data, tokenizer if cls.training_stages else None, checkpoint, out / f"{task}.json")
        rows = json.loads((out / f"{task}.json").read_text())["rows"]
        assert rows and {r["method"] for r in rows} == {method}
        if get_task(task).not_applicable_reason(cls) is None:  # the task decides (matching: any pair scorer)
            computed = [r for r in rows if r["status"] == "ok"]
            assert all(0.0 <= r["value"] <= 1.0 for r in computed), rows
            # only stats without ground truth on this set (COCO's medium/large areas) may be undefined
            undefined = {r["metric"] for r in rows if r["status"] != "ok"}
            assert all(r["value"] is None and r["status"].startswith("undefined") for r in rows if r["status"] != "ok")
            assert not undefined & {"AP", "AP50", "mIoU", "mean_R", "t2i_R@1"}, undefined
        else:
            assert all(r["value"] is None and r["status"].startswith("not applicable: ") for r in rows)
        spec = stage_spec(config, "robustness", dataset="scenes", method=method, seed=0, task=task)
        run_robustness(
            spec, data, tokenizer if cls.training_stages else None, checkpoint, out / f"{task}.robustness.json"
        )
        rows = json.loads((out / f"{task}.robustness.json").read_text())["rows"]
        cells = {(r["corruption"], r["severity"]) for r in rows}
        assert cells == {("none", 0), ("contrast", 2), ("char_swap", 2), ("missing_image", 2), ("missing_text", 2)}
        for r in rows:  # every cell is measured, undefined, or says why it could not be run
            assert r["status"] == "ok" or r["status"].startswith(("not applicable: ", "undefined")), r
        if task == "grounding" and task in cls.tasks:
            missing = {
                r["corruption"]: r["status"]
                for r in rows
                if r["corruption"].startswith("missing") and r["metric"] == "AP"
            }
            assert all(s == "ok" or "cannot run without the" in s for s in missing.values()), missing


@pytest.mark.parametrize("method", method_names())
def test_method_contract(
    method: str, smoke_config: dict, tiny_dataset: Path, tiny_tokenizer_file: Path, tmp_path: Path
) -> None:
    """Every file in baselines/ passes through every stage; a published model with a tiny saved checkpoint."""
    config = _tiny_config(smoke_config)
    if method_schedule(method).published:
        weights = published_weights(method, tmp_path / "weights")
        config = {**config, "method_overrides": {method: {"pretrained": str(weights)}}}
    check_contract(method, config, tiny_dataset, tiny_tokenizer_file, tmp_path)


def test_new_method_template_passes_the_contract(
    smoke_config: dict, tiny_dataset: Path, tiny_tokenizer_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "benchmark", "new-method", "gated_fusion", "--dir", str(baselines)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert (baselines / "gated_fusion.py").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "benchmark", "new-method", "gated_fusion", "--dir", str(baselines)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "benchmark", "new-method", "Gated-Fusion", "--dir", str(baselines)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert bad.returncode == 2 and "lower_snake_case" in bad.stderr
    monkeypatch.setenv("FUSEBENCH_BASELINES", str(baselines))
    check_contract("gated_fusion", _tiny_config(smoke_config), tiny_dataset, tiny_tokenizer_file, tmp_path / "run")


# -- a method with a known answer, through the evaluation stages ------------------------------------------------------


def pair_noise(image: Any, caption: Any) -> Any:
    """A deterministic pseudo-random number in [0, 1) per (image index, caption index); tensors or arrays."""
    return (image * 7919 + caption * 104729 + image * caption * 31337) % 1009 / 1009


# pair_noise's weight in the noisy pair scorer: large enough that it often outranks positives, and such that a
# negative never ties a positive (1 / PERTURBATION is no multiple of 1 / 1009)
PERTURBATION = 3.3


ORACLE_SOURCE = '''"""Test oracle with a known answer, written by tests/test_contract.py.

It looks each test item up: image i of the test split in $FUSEBENCH_ORACLE_DATA (by its pixel bytes)
embeds as the one-hot e_i, each caption of image i (by its non-pad token ids under the tokenizer
$FUSEBENCH_ORACLE_TOKENIZER) as e_i too, anything else (a corrupted item) as 0. So it ranks every
clean test item first, and loses that under corruption.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from benchmark.models import BuildContext, FusionMethod


class Oracle(FusionMethod):
    family = "test oracle"
    paper = "none: a lookup table"
    defaults: dict[str, Any] = {"objectives": {}, "perturbation": 0.0}

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__(ctx, **overrides)
        from benchmark.data.dataset import load_split
        from benchmark.data.tokenizer import encode, load_tokenizer

        split = load_split(os.environ["FUSEBENCH_ORACLE_DATA"], "test")
        texts, owners = split.caption_pairs()
        tokens = encode(load_tokenizer(os.environ["FUSEBENCH_ORACLE_TOKENIZER"], ctx.max_length), texts)
        self.size = len(split)
        self.image_lookup = {split.images[i].numpy().tobytes(): i for i in range(len(split))}
        self.text_lookup = {tuple(ids[mask.bool()].tolist()): (j, owners[j])
                            for j, (ids, mask) in enumerate(zip(tokens["input_ids"], tokens["attention_mask"]))}

    def image_index(self, images: torch.Tensor) -> torch.Tensor:
        """Index of each image in the test split, -1 when unknown."""
        found = [self.image_lookup.get(image.cpu().numpy().tobytes(), -1) for image in images]
        return torch.tensor(found, dtype=torch.long, device=images.device)

    def text_index(self, text: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(caption index, index of its image) of each text, -1 when unknown."""
        found = [self.text_lookup.get(tuple(ids[mask.bool()].tolist()), (-1, -1))
                 for ids, mask in zip(text["input_ids"].cpu(), text["attention_mask"].cpu())]
        index = torch.tensor(found, dtype=torch.long, device=text["input_ids"].device).reshape(-1, 2)
        return index[:, 0], index[:, 1]

    def one_hot(self, index: torch.Tensor) -> torch.Tensor:
        """Row e_index, or zeros for -1."""
        return torch.nn.functional.one_hot(index + 1, self.size + 1)[:, 1:].float()

    def embed_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.one_hot(self.image_index(images))

    def embed_text(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.one_hot(self.text_index(text)[1])
'''

PAIR_SCORER_SOURCE = '''
    # the pair scorer: methods of Oracle, appended to ORACLE_SOURCE
    def prepare_images(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        index = self.image_index(images)
        return {"index": index, "embedding": self.one_hot(index)}

    def prepare_texts(self, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        caption, owner = self.text_index(text)
        return {"caption": caption, "embedding": self.one_hot(owner)}

    def score_prepared(self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor]) -> torch.Tensor:
        """The embeddings' match (the ITC similarity) plus ``perturbation`` x pair_noise: a different order."""
        match = (images["embedding"] * texts["embedding"]).sum(-1)
        return match + self.hparams["perturbation"] * pair_noise(images["index"], texts["caption"]).float()


'''


class Oracles:
    """Writes oracle methods into a private baselines folder and checkpoints for them, as finetune would."""

    def __init__(self, root: Path, config: dict[str, Any], data: Path, tokenizer_file: Path) -> None:
        from benchmark.data.dataset import load_split
        from benchmark.data.tokenizer import load_tokenizer, special_token_ids
        from benchmark.models import BuildContext

        self.root, self.config, self.data, self.tokenizer_file = root, config, data, tokenizer_file
        self.baselines = root / "baselines"
        self.baselines.mkdir()
        self.test = load_split(data, "test")
        max_length = config["tokenizer"]["max_length"]
        tokenizer = load_tokenizer(tokenizer_file, max_length)
        self.ctx = BuildContext(
            config["model"], self.test.image_size, tokenizer.get_vocab_size(), max_length, special_token_ids(tokenizer)
        )

    def checkpoint(self, method: str, pair_scorer: bool, **overrides: Any) -> Path:
        """Write ``method`` (an oracle, with a pair scorer or embeddings only) and a checkpoint for it."""
        from benchmark.hashing import config_hash
        from benchmark.train.checkpoint import save_checkpoint

        source = ORACLE_SOURCE + (PAIR_SCORER_SOURCE + inspect.getsource(pair_noise) if pair_scorer else "")
        (self.baselines / f"{method}.py").write_text(source)
        forget_plugin_modules(self.baselines)  # a method written again is imported again
        model = load_method(method)(self.ctx, **overrides)
        assert model.has_pair_scorer == pair_scorer and model.has_embeddings
        spec = stage_spec(self.config, "finetune", dataset="scenes", method=method, seed=0, task="retrieval")
        path = self.root / method / "model.safetensors"
        save_checkpoint(
            path,
            model,
            {
                "method": method,
                "context": self.ctx.to_json(),
                "overrides": overrides,
                "spec_hash": config_hash(spec),
                "stage": "finetune",
            },
        )
        return path

    def evaluate(self, method: str, checkpoint: Path, out: Path, **retrieval: Any) -> dict[str, Any]:
        """run_evaluate on the test split with these evaluate.retrieval settings; the result JSON and its items."""
        config = {
            **self.config,
            "evaluate": {
                **self.config["evaluate"],
                "retrieval": {**self.config["evaluate"]["retrieval"], "max_images": None, **retrieval},
            },
        }
        spec = stage_spec(config, "evaluate", dataset="scenes", method=method, seed=0, task="retrieval")
        run_evaluate(spec, self.data, self.tokenizer_file, checkpoint, out)
        result = json.loads(out.read_text())
        with np.load(out.parent / result["items"]) as items:
            result["item_arrays"] = {k: items[k] for k in items.files}
        return result


@pytest.fixture
def oracles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smoke_config: dict, tiny_dataset: Path, tiny_tokenizer_file: Path
) -> Iterator[Oracles]:
    """Oracle methods in a private baselines folder; their cached modules are removed afterwards."""
    made = Oracles(tmp_path, smoke_config, tiny_dataset, tiny_tokenizer_file)
    monkeypatch.setenv("FUSEBENCH_BASELINES", str(made.baselines))
    monkeypatch.setenv("FUSEBENCH_ORACLE_DATA", str(tiny_dataset))
    monkeypatch.setenv("FUSEBENCH_ORACLE_TOKENIZER", str(tiny_tokenizer_file))
    yield made
    forget_plugin_modules(made.baselines)


def _values(result: dict[str, Any]) -> dict[str, float | None]:
    assert all(r["corruption"] == "none" and r["severity"] == 0 for r in result["rows"])
    return {r["metric"]: r["value"] for r in result["rows"]}


@pytest.mark.parametrize(
    "pair_scorer, retrieval, protocol",
    [
        (False, {}, "embedding"),
        (True, {"exhaustive_max_images": 1000}, "exhaustive"),
        (True, {"exhaustive_max_images": 4, "shortlist_k": 3}, "itc_shortlist"),
    ],
    ids=["embedding", "exhaustive", "itc_shortlist"],
)
def test_oracle_gets_its_known_answer(
    oracles: Oracles, tmp_path: Path, pair_scorer: bool, retrieval: dict[str, Any], protocol: str
) -> None:
    """An oracle ranks every positive first: every recall is 1 whatever the protocol, and the protocol is recorded."""
    method = "contract_oracle_pair" if pair_scorer else "contract_oracle_embedding"
    result = oracles.evaluate(method, oracles.checkpoint(method, pair_scorer), tmp_path / "eval.json", **retrieval)
    assert result["protocol"]["protocol"] == protocol
    assert result["protocol"]["images"] == len(oracles.test)
    assert all(r["status"] == "ok" and r["method"] == method for r in result["rows"])
    values = _values(result)  # every metric, and its seen / held-out rows on the compositional split, is perfect
    assert set(get_task("retrieval").metric_names(result["spec"])) <= set(values)
    assert values == dict.fromkeys(values, 1.0) and any("@held_out" in name for name in values)
    items = result["item_arrays"]
    assert (items["t2i_rank"] == 0).all() and (items["i2t_rank"] == 0).all()
    assert items["text_owner"].tolist() == oracles.test.caption_pairs()[1]


def _pair_scorer_ranks(owners: list[int], n_images: int, perturbation: float) -> tuple[np.ndarray, np.ndarray]:
    """0-based rank of the best positive of each text (t2i) and image (i2t) under the perturbed pair scorer."""
    owner = np.asarray(owners)[:, None]
    positive = owner == np.arange(n_images)[None, :]  # texts × images
    scores = positive + perturbation * pair_noise(np.arange(n_images)[None, :], np.arange(len(owners))[:, None])
    t2i = (scores > scores[positive][:, None]).sum(1)
    best = np.where(positive, scores, -np.inf).max(0)
    i2t = (np.where(positive, -np.inf, scores) > best[None, :]).sum(0)
    return t2i, i2t


def test_itc_shortlist_equals_exhaustive_scoring_when_everything_is_shortlisted(
    oracles: Oracles, tmp_path: Path
) -> None:
    """With shortlist_k ≥ every gallery, re-ranking the ITC shortlist must give exactly the fusion head's ranking.

    The galleries are the images (t2i) and the texts (i2t), so k covers the texts. The pair scorer adds noise to the
    ITC similarity, so its order differs from ITC's (which ranks every positive first): a re-rank that kept any ITC
    order would change the per-item ranks.
    """
    n_images, perturbation = len(oracles.test), PERTURBATION
    n_texts = len(oracles.test.caption_pairs()[0])
    checkpoint = oracles.checkpoint("contract_oracle_noisy_pair", True, perturbation=perturbation)
    exhaustive = oracles.evaluate(
        "contract_oracle_noisy_pair",
        checkpoint,
        tmp_path / "exhaustive.json",
        exhaustive_max_images=n_images,
        shortlist_k=2,
    )
    shortlist = oracles.evaluate(
        "contract_oracle_noisy_pair",
        checkpoint,
        tmp_path / "shortlist.json",
        exhaustive_max_images=n_images - 1,
        shortlist_k=n_texts,
    )
    assert exhaustive["protocol"]["protocol"] == "exhaustive"
    assert shortlist["protocol"]["protocol"] == "itc_shortlist" and shortlist["protocol"]["shortlist_k"] == n_texts
    t2i, i2t = _pair_scorer_ranks(oracles.test.caption_pairs()[1], n_images, perturbation)
    assert (t2i > 0).any() and (i2t > 0).any(), "the pair scorer must disagree with ITC for this test to bite"
    for result in (exhaustive, shortlist):
        assert result["item_arrays"]["t2i_rank"].tolist() == t2i.tolist()
        assert result["item_arrays"]["i2t_rank"].tolist() == i2t.tolist()
    assert exhaustive["rows"] == shortlist["rows"]
    assert _values(exhaustive)["t2i_R@1"] == pytest.approx(float((t2i == 0).mean()))


def test_itc_shortlist_ranks_unshortlisted_candidates_below_the_shortlist(oracles: Oracles, tmp_path: Path) -> None:
    """Candidates outside a query's top-k by ITC stay below every re-scored one (ALBEF's protocol).

    The oracle's ITC puts each positive in its query's shortlist, so every positive ranks within the top k,
    although the fusion head alone ranks many of them lower.
    """
    n_images, perturbation, k = len(oracles.test), PERTURBATION, 3
    checkpoint = oracles.checkpoint("contract_oracle_noisy_pair", True, perturbation=perturbation)
    result = oracles.evaluate(
        "contract_oracle_noisy_pair",
        checkpoint,
        tmp_path / "shortlist.json",
        exhaustive_max_images=n_images - 1,
        shortlist_k=k,
    )
    assert result["protocol"]["protocol"] == "itc_shortlist" and result["protocol"]["shortlist_k"] == k
    t2i, i2t = _pair_scorer_ranks(oracles.test.caption_pairs()[1], n_images, perturbation)
    assert (t2i >= k).any() and (i2t >= k).any(), "exhaustive ranks must exceed k for this test to bite"
    assert (result["item_arrays"]["t2i_rank"] < k).all() and (result["item_arrays"]["i2t_rank"] < k).all()
    assert (result["item_arrays"]["t2i_rank"] > 0).any(), "the shortlist must be re-ranked by the pair scorer"


def test_robustness_of_the_oracle_on_retrieval(oracles: Oracles, tmp_path: Path) -> None:
    """Clean cell = the known answer; corruption breaks the oracle's lookup; missing modality is n/a for retrieval."""
    method = "contract_oracle_embedding"
    checkpoint = oracles.checkpoint(method, False)
    config = {
        **oracles.config,
        "robustness": {
            **oracles.config["robustness"],
            "max_images": 8,
            "severities": [5],
            "image": ["gaussian_noise"],
            "text": ["word_delete"],
            "missing": ["image", "text"],
        },
    }
    spec = stage_spec(config, "robustness", dataset="scenes", method=method, seed=0, task="retrieval")
    run_robustness(spec, oracles.data, oracles.tokenizer_file, checkpoint, tmp_path / "robustness.json")
    rows = json.loads((tmp_path / "robustness.json").read_text())["rows"]
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        cells.setdefault((row["corruption"], row["severity"]), {})[row["metric"]] = row
    task = get_task("retrieval")
    names = set(task.metric_names(task.robustness_settings(spec["task_settings"], 0)))  # the candidate protocol
    assert set(cells) == {
        ("none", 0),
        ("gaussian_noise", 5),
        ("word_delete", 5),
        ("missing_image", 5),
        ("missing_text", 5),
    }
    assert all(set(metrics) == names for metrics in cells.values())
    assert {name: row["value"] for name, row in cells["none", 0].items()} == {name: 1.0 for name in names}
    for cell in (("missing_image", 5), ("missing_text", 5)):
        assert all(r["value"] is None and r["status"].startswith("not applicable: ") for r in cells[cell].values())
    for cell in (("gaussian_noise", 5), ("word_delete", 5)):
        assert all(r["status"] == "ok" for r in cells[cell].values())
        assert cells[cell]["cand_t2i_R@1"]["value"] < 1.0 and cells[cell]["cand_mean_R"]["value"] < 1.0, cells[cell]


# -- cross-attention's retrieval score (README) ---------------------------------------------------------------------


@pytest.mark.parametrize("scale", [3.7, 250.0], ids=["scale", "clamped-scale"])
def test_cross_attention_rank_score_is_itm_plus_itc_logit(
    smoke_config: dict, tiny_tokenizer_file: Path, scale: float
) -> None:
    """README: its rank score is the ITM logit plus the pair's ITC logit (BLIP's evaluation)."""
    import torch
    import torch.nn.functional as F

    from benchmark.data.tokenizer import load_tokenizer, special_token_ids
    from benchmark.models import BuildContext

    torch.manual_seed(0)
    tokenizer = load_tokenizer(tiny_tokenizer_file, 24)
    special = special_token_ids(tokenizer)
    ctx = BuildContext(smoke_config["model"], 32, tokenizer.get_vocab_size(), 24, special)
    model = load_method("cross_attention")(ctx).eval()
    with torch.no_grad():
        model.itc.logit_scale.fill_(math.log(scale))
        images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
        lengths = torch.tensor([24, 10, 5, 17, 3])
        mask = (torch.arange(24)[None, :] < lengths[:, None]).long()
        ids = torch.where(mask.bool(), torch.randint(5, tokenizer.get_vocab_size(), (5, 24)), special["pad"])
        text = {"input_ids": ids, "attention_mask": mask}
        images_prepared, texts_prepared = model.prepare_images(images), model.prepare_texts(text)
        itc = min(scale, model.hparams["max_logit_scale"]) * F.cosine_similarity(
            model.embed_image(images), model.embed_text(text), dim=-1
        )
        itm = model.match_logits(images_prepared, texts_prepared)
        score = model.score_prepared(images_prepared, texts_prepared)
    assert itc.abs().max() > 0.1, "the ITC term must matter for this test to bite"
    assert torch.allclose(score, itm + itc, atol=1e-6)
