"""What both tower kinds share: whether a block is pretrained, the sha256 of its files, the Hub cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.errors import ConfigError
from benchmark.sources import (
    WEIGHT_SUFFIXES,
    cached_snapshot,
    file_digests,
    folder_files,
    offline,
)

RANDOM = "random"


def is_pretrained(block: dict[str, Any]) -> bool:
    """True when a tower block (``model.vision`` / ``model.text``) names a source of weights."""
    return block.get("init", RANDOM) not in (None, RANDOM)


def folder_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file of a weights folder, keyed by its path in the folder; hidden files and folders
    (.git, .cache) skipped."""
    return file_digests(folder_files(folder), root=folder)


def file_digest(path: Path) -> dict[str, str]:
    """``{file name: sha256}`` of a single weight file."""
    return file_digests([path], root=path.parent)


def hub_snapshot(repo: str, key: str, init: str, populate: Callable[[], None]) -> Path:
    """The local Hugging Face cache snapshot of ``repo`` (``org/name[@revision]``) holding weights.

    Offline, a repo not in the cache is a ConfigError; online, ``populate`` fetches it with the
    library's own loader (so exactly the files it uses are cached) before the snapshot is read.
    """

    def cached() -> Path | None:
        try:
            folder = cached_snapshot(repo)
        except Exception:  # LocalEntryNotFoundError, an invalid repo id, ...
            return None
        has_weights = any(p.name.endswith(WEIGHT_SUFFIXES) for p in folder_files(folder))
        return folder if has_weights else None

    folder = cached()
    if folder is None:
        if offline():
            raise ConfigError(
                f"'{key}': {init!r} is not an existing path and not in the local Hugging Face cache, and "
                "HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set, so it cannot be downloaded; give a local path to "
                "the weights instead (a file or a directory)"
            )
        try:
            populate()
        except Exception as exc:  # hub and loader errors vary: RepositoryNotFoundError, OSError, ...
            raise ConfigError(f"'{key}': {init!r} could not be fetched from the Hugging Face Hub: {exc}") from None
        folder = cached()
        if folder is None:
            name = repo.partition("@")[0]
            raise ConfigError(f"'{key}': {init!r} was loaded but no cached weight files were found for {name}")
    return folder
