"""Where external weights come from: a local path or a hub name, the local Hugging Face cache, file digests.

Shared by the pretrained towers (:mod:`benchmark.models.pretrained`) and the published checkpoints
(:mod:`benchmark.models.published`), which differ in what they accept (a weight file or a folder,
``hf-hub:`` and timm names; a checkpoint directory) but not in how the environment, a path, the
hub cache and the provenance digests are read:

* :func:`offline` — downloads forbidden (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``).
* :func:`existing_path` — a config value as a local path or a hub name; a missing path is a
  :class:`~benchmark.errors.ConfigError` naming the config key and the value.
* :func:`cached_snapshot` — the folder of a hub name's snapshot in the local cache (never downloads).
* :func:`folder_files` / :func:`file_digests` — the sha256 of every file the weights come from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from benchmark.errors import ConfigError
from benchmark.io import sha256_file

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline() -> bool:
    """True when HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set: names are looked up in the local cache only."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in OFFLINE_VARIABLES)


def existing_path(value: str, key: str, looks_like_path: Callable[[str], bool], expected: str) -> Path | None:
    """The existing file or directory ``value`` names (``~`` expanded), or None when it is a hub name.

    A value that exists nowhere but ``looks_like_path`` is a ConfigError naming ``key`` and ``value``:
    "no such ``expected``" (e.g. "directory").
    """
    path = Path(value).expanduser()
    if path.exists():
        return path
    if looks_like_path(value):
        raise ConfigError(f"{key} = {value!r}: no such {expected} ({path.resolve()})")
    return None


def cached_snapshot(repo: str) -> Path:
    """The local Hugging Face cache snapshot folder of ``repo`` (``org/name[@revision]``); nothing is downloaded.

    Raises what ``huggingface_hub.snapshot_download`` raises for a repo not in the cache
    (``LocalEntryNotFoundError``) or an invalid name.
    """
    from huggingface_hub import snapshot_download

    name, _, revision = repo.partition("@")
    return Path(snapshot_download(name, revision=revision or None, local_files_only=True))


def folder_files(folder: Path, hidden_files: bool = False) -> list[Path]:
    """The regular files under ``folder`` (recursively, links followed), sorted, outside hidden folders
    (``.git``, a download tool's ``.cache``); hidden files themselves (``.gitattributes``) only with
    ``hidden_files``."""
    files = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if not any(part.startswith(".") for part in (parts[:-1] if hidden_files else parts)) and path.is_file():
            files.append(path)
    return files


def file_digests(paths: Iterable[Path], root: Path | None = None) -> dict[str, str]:
    """``{path: sha256}`` in sorted order, keyed by each path as given, or relative to ``root`` (POSIX) when given."""
    return {(str(p) if root is None else p.relative_to(root).as_posix()): sha256_file(p) for p in sorted(paths)}
