"""Qiu et al.'s lexical text perturbations: synonym replacement, word insertion, punctuation.

Rates are measured from the output text (not from the function's own counters) on 2,000
captions written in the scene grammar's style, and must lie within 0.02 of the severity's
nominal per-word rate. With about 10,000 eligible words per severity the binomial standard
error is at most 0.005 (rate 0.35), so 0.02 is four standard errors.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest

from benchmark.corruptions.text import (
    LEXICAL_OPERATIONS,
    PUNCTUATION_MARKS,
    SCENE_LEXICON,
    SENTENCE_PERTURBATIONS,
    TEXT_CORRUPTIONS,
    WORD_RATES,
    ModelRequiredError,
    corrupt_text,
    corrupt_text_counted,
    load_lexicon,
)
from benchmark.data.grammar import NUMBER_WORDS, RELATIONS, join_and, plural, with_article
from benchmark.errors import DataFileError

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "white")
SIZES = ("small", "large")
TOLERANCE = 0.02


def _phrase(rng: random.Random) -> str:
    words = [rng.choice(SIZES)] if rng.random() < 0.5 else []
    return " ".join([*words, rng.choice(COLORS), rng.choice(SHAPES)])


def _caption(rng: random.Random) -> str:
    """One caption in the form of one of the grammar's templates (list, count, relation, partial)."""
    template = rng.randrange(4)
    phrases = [with_article(_phrase(rng)) for _ in range(rng.randint(1, 3))]
    if template == 0:
        return join_and(phrases)
    if template == 1:
        n = rng.randint(3, 5)
        return f"{NUMBER_WORDS[n]} objects: {NUMBER_WORDS[n - 1]} {plural(_phrase(rng))} and {phrases[0]}"
    if template == 2:
        return f"the {_phrase(rng)} is {rng.choice(RELATIONS)} the {_phrase(rng)}"
    return "a scene with " + join_and([*phrases[:1], f"a {rng.choice(COLORS)} object"])


CORPUS = [_caption(random.Random(k)) for k in range(2000)]


def _entry(word: str) -> tuple[str, ...]:
    """The word's synonyms, punctuation around it ignored ("objects:" is "objects")."""
    return SCENE_LEXICON.get(word.strip(string.punctuation), ())


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(word in it for word in short)


def _measure(name: str, severity: int) -> tuple[int, int]:
    """(words changed, eligible words) over the corpus, counted from the texts alone."""
    changed = eligible = 0
    for k, text in enumerate(CORPUS):
        before, after = text.split(), corrupt_text(text, name, severity, k).split()
        if name == "synonym_replace":
            assert len(after) == len(before)
            for old, new in zip(before, after):
                core = old.strip(string.punctuation)
                assert new == old or new == old.replace(core, new.strip(string.punctuation)), (old, new)
                assert new == old or new.strip(string.punctuation) in _entry(old), (old, new)
            changed += sum(old != new for old, new in zip(before, after))
            eligible += sum(bool(_entry(w)) for w in before)
        elif name == "word_insert":
            assert _is_subsequence(before, after), (text, after)
            changed += len(after) - len(before)
            eligible += sum(bool(_entry(w)) for w in before)
        else:
            assert [w for w in after if w not in PUNCTUATION_MARKS] == before, (text, after)
            changed += len(after) - len(before)
            eligible += len(before)
    return changed, eligible


@pytest.mark.parametrize("name", list(LEXICAL_OPERATIONS))
def test_measured_rate_matches_the_severity(name: str) -> None:
    for severity, rate in enumerate(WORD_RATES, start=1):
        changed, eligible = _measure(name, severity)
        assert eligible > 5000, f"{name}: too few eligible words ({eligible}) to measure a rate"
        assert changed / eligible == pytest.approx(rate, abs=TOLERANCE), f"{name} severity {severity}"


@pytest.mark.parametrize("name", list(LEXICAL_OPERATIONS))
def test_reported_counts_match_the_text(name: str) -> None:
    for k, text in enumerate(CORPUS[:300]):
        out, changed, eligible = corrupt_text_counted(text, name, 4, k)
        before = text.split()
        if name == "synonym_replace":
            assert changed == sum(a != b for a, b in zip(before, out.split()))
        else:
            assert changed == len(out.split()) - len(before)
        assert eligible == (len(before) if name == "insert_punctuation" else sum(bool(_entry(w)) for w in before))


@pytest.mark.parametrize("name", list(LEXICAL_OPERATIONS))
def test_determinism_and_identity(name: str) -> None:
    text = "a small red circle left of a large blue square"
    assert corrupt_text(text, name, 0, 7) == text
    assert corrupt_text("", name, 3, 7) == ""
    runs = [[corrupt_text(t, name, 5, k) for k, t in enumerate(CORPUS[:50])] for _ in range(2)]
    assert runs[0] == runs[1]
    # seeded per example: the same text under the same id is perturbed the same in any order
    assert [corrupt_text(t, name, 5, k) for k, t in reversed(list(enumerate(CORPUS[:50])))] == runs[0][::-1]
    assert len({corrupt_text(text, name, 5, k) for k in range(30)}) > 3  # ids change the draw


def test_insert_punctuation_inserts_only_marks_as_tokens() -> None:
    for k in range(200):
        out = corrupt_text("the purple square is above the yellow circle", "insert_punctuation", 5, k).split()
        assert " ".join(w for w in out if w not in PUNCTUATION_MARKS) == "the purple square is above the yellow circle"
        assert out[-1] == "circle"  # marks go before a word (AEDA), never after the last


def test_word_insert_inserts_synonyms_of_words_in_the_caption() -> None:
    text = "a small red circle left of a large blue square"
    allowed = {s for w in text.split() for s in _entry(w)}
    for k in range(200):
        out = corrupt_text(text, "word_insert", 5, k).split()
        assert _is_subsequence(text.split(), out)
        extra = list(out)
        for word in text.split():
            extra.remove(word)
        assert set(extra) <= allowed, extra


def test_synonyms_keep_case_and_attached_punctuation() -> None:
    outputs = {corrupt_text("Large circles, above.", "synonym_replace", 5, k) for k in range(200)}
    assert outputs <= {
        f"{a} {b}, {c}." for a in ("Large", "Big") for b in ("circles", "discs", "disks") for c in ("above", "over")
    }
    assert len(outputs) > 4


def test_a_user_lexicon_replaces_the_built_in_one(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.json"
    path.write_text(json.dumps({"Dog": ["hound", "dog", "pooch", "hound"], "park": ["green space"], "cat": []}))
    lexicon = load_lexicon(path)
    assert lexicon == {"dog": ("hound", "pooch"), "park": ("green space",)}  # self, repeats, empties dropped
    text = "a dog runs in the park"
    for k in range(100):
        out = corrupt_text(text, "synonym_replace", 5, k, lexicon=lexicon)
        assert out.replace("green space", "park").split()[1] in {"dog", "hound", "pooch"}
    # the built-in lexicon knows no word of this caption: nothing is eligible on real data without a file
    assert corrupt_text_counted(text, "synonym_replace", 5, 0) == (text, 0, 0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "JSON object"),
        ('{"two words": ["x"]}', "not a single word"),
        ('{"a": "b"}', "list of"),
        ("{", "cannot read"),
    ],
)
def test_malformed_lexicon_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataFileError, match=message):
        load_lexicon(path)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown text corruption 'leetspeak'") as error:
        corrupt_text("a red circle", "leetspeak", 1, 0)
    assert all(name in str(error.value) for name in (*TEXT_CORRUPTIONS, *SENTENCE_PERTURBATIONS))
    assert {"synonym_replace", "word_insert", "insert_punctuation"} <= set(TEXT_CORRUPTIONS)


@pytest.mark.parametrize("name", list(SENTENCE_PERTURBATIONS))
def test_sentence_level_perturbations_name_the_model_they_need(name: str) -> None:
    """Per-text corruption has no model: it names the model and the key that provides one
    (the rewrite itself is tested in test_sentence_perturbations.py)."""
    assert name not in TEXT_CORRUPTIONS
    for severity in (0, 3):
        with pytest.raises(
            ModelRequiredError,
            match=f"{name!r} .* needs .* not available offline unless 'robustness.sentence_models.{name}'",
        ):
            corrupt_text("a red circle", name, severity, 0)
