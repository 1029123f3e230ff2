"""Text corruptions at severities 1–5: character- and word-level noise, no downloads.

Per-word rates follow Qiu et al., "Are Multimodal Models Robust to Image and Text
Perturbations?" (2022): severity 1…5 corrupts each eligible word with probability 0.05,
0.10, 0.15, 0.25, 0.35.

Character level (one edit in a selected word):
  ``keyboard`` a letter becomes a neighbouring QWERTY key · ``ocr`` a character becomes one
  OCR engines confuse it with (o→0, l→1, rn→m, …) · ``char_insert`` a random letter is
  inserted · ``char_substitute`` a letter becomes a different random letter · ``char_swap``
  two adjacent differing characters swap · ``char_delete`` a character is deleted.
Word level:
  ``word_swap`` a selected word swaps with its right neighbour (the last word with its left
  one), swaps applied left to right · ``word_delete`` a selected word is removed (never the
  last remaining word).

A word is *eligible* when the operation can change it (``char_delete`` needs two letters,
``ocr`` a confusable character, …); the rate applies to eligible words. Randomness comes from
a generator seeded by (text id, corruption, severity), so every method sees the same text.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

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
WORD_OPERATIONS = ("word_swap", "word_delete")
TEXT_CORRUPTIONS = (*CHARACTER_OPERATIONS, *WORD_OPERATIONS)


def corrupt_text_counted(text: str, name: str, severity: int, example_id: int) -> tuple[str, int, int]:
    """(corrupted text, words changed, eligible words); severity 0 is the identity."""
    if name not in TEXT_CORRUPTIONS:
        raise ValueError(f"unknown text corruption {name!r}; known: {', '.join(TEXT_CORRUPTIONS)}")
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


def corrupt_text(text: str, name: str, severity: int, example_id: int) -> str:
    """The corrupted text (see :func:`corrupt_text_counted`)."""
    return corrupt_text_counted(text, name, severity, example_id)[0]
