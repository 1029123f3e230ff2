"""Sentence-level text perturbations (formal, casual, passive, active, back_translation) with a model.

The models are tiny random T5s saved with ``save_pretrained`` in a temporary folder, with a
word-level tokenizers-backed tokenizer: what they write is noise, but it is the model's noise,
so the checks are that the rewrite is deterministic, is exactly ``model.generate`` under the
documented prefix and decoding, is the same at every severity, runs through the robustness grid
when configured, is a ConfigError naming the key when not, and is recorded with file digests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmark.config import load_config
from benchmark.corruptions.text import (
    SENTENCE_PERTURBATIONS,
    ModelRequiredError,
    Seq2Seq,
    corrupt_sentences,
    load_sentence_rewriter,
)
from benchmark.data.dataset import SceneSplit
from benchmark.errors import ConfigError
from benchmark.robustness.grid import (
    corrupt_split,
    evaluate_robustness,
    family,
    load_sentence_models,
    sentence_model_protocol,
)

# fmt: off
WORDS = [
    "a", "the", "red", "blue", "green", "yellow", "circle", "square", "triangle", "small", "large", "above",
    "below", "left", "right", "of", "is", "and", "with", "scene", "object", "two", "three", "transfer", "Casual",
    "to", "Formal", "Active", "Passive", ":", "ein", "der", "rote", "blaue", "Kreis",
]
# fmt: on
TEXTS = [
    "a red circle above the blue square",
    "the small green triangle",
    "a scene with two objects",
    "a blue square below a large red circle",
    "the red circle",
    "a green circle left of the small square",  # as many tokens as the fourth: one batch
]


def build_t5(directory: Path, seed: int) -> Path:
    """A random 1-layer T5 (d_model 16) and a word-level fast tokenizer, saved for ``from_pretrained``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    vocab = {w: i for i, w in enumerate(dict.fromkeys(["<pad>", "</s>", "<unk>", *WORDS]))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    backend.decoder = decoders.WordPiece()  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    config = T5Config(
        vocab_size=len(vocab),
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    for parameter in model.parameters():  # larger weights: varied, text-dependent outputs
        parameter.data.normal_(0, 1.0)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def t5_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("seq2seq")
    return [build_t5(root / f"t5_{seed}", seed) for seed in range(2)]


def _reference(directory: Path, texts: list[str], prefix: str, decoding: dict[str, Any]) -> list[str]:
    """``model.generate`` one text at a time, loaded independently of the code under test."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(directory, local_files_only=True).eval()
    out = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(prefix + text, return_tensors="pt").input_ids
            out.append(tokenizer.decode(model.generate(ids, **decoding)[0], skip_special_tokens=True).strip())
    return out


def test_the_rewrite_is_model_generate_with_the_prefix_and_deterministic_decoding(t5_dirs: list[Path]) -> None:
    rewriter = load_sentence_rewriter("formal", str(t5_dirs[0]))
    entry = SENTENCE_PERTURBATIONS["formal"]
    assert entry.prefixes == ("transfer Casual to Formal: ",)  # Styleformer's task prefix
    decoding = entry.decoding.kwargs()
    assert decoding["do_sample"] is False and decoding["num_beams"] == 5 and decoding["max_length"] == 32
    expected = _reference(t5_dirs[0], TEXTS, entry.prefixes[0], decoding)
    out = corrupt_sentences(TEXTS, "formal", 3, rewriter)
    assert out == [e or t for e, t in zip(expected, TEXTS)]
    assert sum(o != t for o, t in zip(out, TEXTS)) >= 3  # the model did rewrite
    assert len(set(out)) > 1  # and its output depends on the text


def test_back_translation_chains_two_models(t5_dirs: list[Path]) -> None:
    rewriter = load_sentence_rewriter("back_translation", [str(t5_dirs[0]), str(t5_dirs[1])])
    decoding = SENTENCE_PERTURBATIONS["back_translation"].decoding.kwargs()
    german = _reference(t5_dirs[0], TEXTS, "", decoding)
    english = _reference(t5_dirs[1], german, "", decoding)
    assert corrupt_sentences(TEXTS, "back_translation", 1, rewriter) == [e or t for e, t in zip(english, TEXTS)]
    with pytest.raises(ConfigError, match=r"sentence_models\.back_translation.*needs 2 model"):
        load_sentence_rewriter("back_translation", [str(t5_dirs[0])])


def test_determinism_across_loads_orders_and_severities(t5_dirs: list[Path]) -> None:
    first = load_sentence_rewriter("passive", str(t5_dirs[1]))
    second = load_sentence_rewriter("passive", str(t5_dirs[1]))
    out = corrupt_sentences(TEXTS, "passive", 1, first)
    for severity in (2, 3, 4, 5):  # one level (Qiu et al.), applied the same at every severity
        assert corrupt_sentences(TEXTS, "passive", severity, first) == out
    assert corrupt_sentences(TEXTS[::-1], "passive", 5, second) == out[::-1]  # fresh model, other order
    assert corrupt_sentences(TEXTS[:2], "passive", 2, second) == out[:2]  # other batch composition
    assert corrupt_sentences(TEXTS, "passive", 0, first) == TEXTS
    assert corrupt_sentences(["", "   "], "passive", 3, first) == ["", "   "]
    with pytest.raises(ValueError, match="severity"):
        corrupt_sentences(TEXTS, "passive", 6, first)
    with pytest.raises(ValueError, match="cannot apply"):
        corrupt_sentences(TEXTS, "active", 1, first)


def _split() -> SceneSplit:
    return SceneSplit(
        name="test",
        image_ids=[0, 1],
        images=torch.zeros(2, 3, 8, 8, dtype=torch.uint8),
        captions=[TEXTS[:3], TEXTS[3:]],
        boxes=[np.zeros((0, 4)), np.zeros((0, 4))],
        categories=[np.zeros(0, dtype=int), np.zeros(0, dtype=int)],
        refs=[
            {"image_index": 0, "sentence": TEXTS[0], "ref_id": 5},
            {"image_index": 1, "sentence": "the", "ref_id": 6},
        ],
    )


class _Task:
    def robustness_subset(self, split: SceneSplit, count: int | None) -> SceneSplit:
        return split.head(count)


def test_the_robustness_grid_runs_configured_models_and_records_them(t5_dirs: list[Path]) -> None:
    settings = {
        "max_images": None,
        "severities": [1, 4],
        "image": [],
        "text": ["char_swap", "formal", "back_translation"],
        "missing": [],
        "sentence_models": {"formal": str(t5_dirs[0]), "back_translation": [str(t5_dirs[0]), str(t5_dirs[1])]},
    }
    assert family("formal") == family("back_translation") == "text"
    seen: list[tuple[list[list[str]], list[str]]] = []

    def evaluate(split: SceneSplit, **_: Any) -> tuple[dict[str, float], dict[str, Any]]:
        seen.append((split.captions, [r["sentence"] for r in split.refs]))
        return {"n": float(len(split))}, {}

    results = evaluate_robustness(_split(), _Task(), settings, evaluate)  # type: ignore[arg-type]
    assert [(c, s) for c, s, _, _ in results] == [
        ("none", 0),
        *[(c, s) for c in ("char_swap", "formal", "back_translation") for s in (1, 4)],
    ]
    models = load_sentence_models(settings)
    formal = models["formal"].rewrite([*TEXTS, "the"])
    assert seen[3] == seen[4] == ([formal[:3], formal[3:6]], [formal[0], formal[6]])
    assert corrupt_split(_split(), "formal", 4, sentence_models=models).captions == seen[3][0]
    assert corrupt_split(_split(), "formal", 0, sentence_models=models).captions == _split().captions
    with pytest.raises(ModelRequiredError, match="'robustness.sentence_models.casual'"):
        corrupt_split(_split(), "casual", 1, sentence_models=models)

    protocol = sentence_model_protocol(models)["sentence_models"]
    assert set(protocol) == {"formal", "back_translation"}
    assert [m["directory"] for m in protocol["back_translation"]["models"]] == [str(d.resolve()) for d in t5_dirs]
    record = protocol["formal"]["models"][0]
    assert record["source"] == str(t5_dirs[0])
    files = sorted(p.name for p in t5_dirs[0].iterdir())
    assert sorted(record["files"]) == files and "model.safetensors" in files
    for name, digest in record["files"].items():
        assert digest == hashlib.sha256((t5_dirs[0] / name).read_bytes()).hexdigest()
    assert protocol["formal"]["prefixes"] == ["transfer Casual to Formal: "]
    assert protocol["formal"]["decoding"]["do_sample"] is False
    assert sentence_model_protocol({}) == {}  # no sentence-level perturbation: the protocol is unchanged


def test_a_sentence_perturbation_without_a_model_is_a_config_error(t5_dirs: list[Path]) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(overrides=["robustness.text=[keyboard, formal, back_translation]"])
    message = str(error.value)
    assert "'robustness.sentence_models.formal'" in message and "Styleformer" in message
    assert "'robustness.sentence_models.back_translation'" in message and "facebook/wmt19-en-de" in message
    with pytest.raises(ConfigError, match="robustness.sentence_models.back_translation"):
        load_config(overrides=["robustness.text=[back_translation]", "robustness.sentence_models.back_translation=x"])
    with pytest.raises(ConfigError, match=r"unknown key 'robustness.sentence_models.formall' \(did you mean 'formal'"):
        load_config(overrides=[f"robustness.sentence_models.formall={t5_dirs[0]}"])
    config = load_config(overrides=["robustness.text=[formal]", f"robustness.sentence_models.formal={t5_dirs[0]}"])
    assert config["robustness"]["sentence_models"] == {"formal": str(t5_dirs[0])}
    assert load_config()["robustness"]["sentence_models"] == {}
    with pytest.raises(ConfigError, match="'robustness.text' lists 'casual'.*Styleformer"):
        load_sentence_models({"text": ["casual"], "sentence_models": {"formal": str(t5_dirs[0])}})


def test_a_missing_model_directory_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"robustness\.sentence_models\.formal = .*no such directory"):
        load_sentence_rewriter("formal", str(tmp_path / "nowhere" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"sentence_models\.active = .*cannot load the directory"):
        load_sentence_rewriter("active", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"sentence_models\.casual = 'fusebench-test/absent'.*not in the local cache"):
        load_sentence_rewriter("casual", "fusebench-test/absent")


def test_seq2seq_is_loaded_in_eval_mode(t5_dirs: list[Path]) -> None:
    rewriter = load_sentence_rewriter("active", str(t5_dirs[0]))
    (step,) = rewriter.models
    assert isinstance(step, Seq2Seq) and not step.model.training
    assert step.folder == t5_dirs[0].resolve()
