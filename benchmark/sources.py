"""Where external weights come from: a local path or a hub name, the local Hugging Face cache, file digests.

Shared by the pretrained towers (:mod:`benchmark.models.pretrained`), the published checkpoints
(:mod:`benchmark.models.published`), a text tower's tokenizer (:mod:`benchmark.data.tokenizer`) and the
sentence-perturbation models (:mod:`benchmark.corruptions.text`), which differ in what they accept (a
weight file or a folder, ``hf-hub:`` and timm names; a checkpoint directory) but not in how the
environment, a path, the hub cache and the provenance digests are read; it sits in the core layer so
that each of them can use it (``docs/architecture.md``):

* :func:`offline` — downloads forbidden (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``).
* :func:`existing_path` — a config value as a local path or a hub name; a missing path is a
  :class:`~benchmark.errors.ConfigError` naming the config key and the value;
  :func:`local_weights_path` and :func:`text_location` apply it to a tower's ``init``.
* :func:`cached_snapshot` — the folder of a hub name's snapshot in the local cache (never downloads).
* :func:`folder_files` / :func:`file_digests` — the sha256 of every file the weights come from, keyed
  by its path relative to the weights' folder (a single weight file: its name), so the provenance of
  the same weights reads the same on every machine.
* :func:`check_weight_files` — every ``.safetensors`` file of the weights has a readable header that
  covers the file: a truncated or corrupted copy is a :class:`~benchmark.errors.DataFileError` naming
  the config key and the file, before any model is built.
* :func:`load_failure` — what a library's loader raised on weights that cannot be read, as one line
  naming the key and the source (the workflow's failure summary keeps only the first line of an error).
* :func:`check_loading_info` — a ``transformers`` checkpoint that leaves a parameter of the model
  unloaded (missing, or of another shape) is a :class:`~benchmark.errors.DataFileError`, not a
  silently random tensor.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmark.errors import ConfigError, DataFileError, one_line
from benchmark.io import sha256_file

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
"""The endings of a single weight file (safetensors, or a pickled state dict)."""


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


def looks_like_path(init: str) -> bool:
    """A local path rather than a model name: absolute, ./ ../ ~, several '/' or a weight-file suffix."""
    return (
        init.startswith(("/", "./", "../", "~", ".\\"))
        or init.count("/") > 1
        or "\\" in init
        or init.lower().endswith(WEIGHT_SUFFIXES)
    )


def local_weights_path(init: str, key: str) -> Path | None:
    """The existing file or directory ``init`` names, None for a model name; a missing path is an error."""
    if init.startswith("local-dir:"):
        init = init[len("local-dir:") :]
    elif init.startswith("hf-hub:"):
        return None
    return existing_path(init, key, looks_like_path, "weight file or directory")


def text_location(init: str, key: str = "model.text.init") -> tuple[str, bool]:
    """(what to pass to ``from_pretrained``, local_files_only) for a text init, checking a path exists.

    ``local_files_only`` is true for a local directory and whenever the Hub is offline.
    """
    path = local_weights_path(init, key)
    if path is not None:
        if not path.is_dir():
            raise ConfigError(f"'{key}': {path} is not a directory saved with save_pretrained")
        return str(path), True
    return init, offline()


HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
"""What a Hugging Face hub model name looks like: ``org/name`` or a legacy ``name``."""


def checkpoint_directory(value: str, key: str, what: str) -> Path | None:
    """The existing ``save_pretrained`` directory ``value`` names, or None for a hub name.

    A value that exists nowhere and is no hub name, or that is a file, is a ConfigError naming
    ``key`` and ``value`` (``what``: "checkpoint", "model", … in "give the <what>'s directory")."""
    path = existing_path(value, key, lambda name: not HUB_NAME.match(name), "directory")
    if path is not None and not path.is_dir():
        raise ConfigError(f"{key} = {value!r} is a file; give the {what}'s directory")
    return path


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
    ``hidden_files``. The workflow's inputs of a weights folder are these files with ``hidden_files``
    (:func:`benchmark.workflow.inputs.local_weight_files`): every file any job's digests include."""
    files = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if not any(part.startswith(".") for part in (parts[:-1] if hidden_files else parts)) and path.is_file():
            files.append(path)
    return files


def file_digests(paths: Iterable[Path], root: Path) -> dict[str, str]:
    """``{path relative to root (POSIX): sha256}`` in sorted order; ``root`` is the weights' folder (a single
    file's parent, so the file is keyed by its name). No absolute path: provenance is machine-independent."""
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(paths)}


def check_weight_files(paths: Iterable[Path], key: str) -> dict[Path, dict[str, tuple[int, ...]]]:
    """Read the header of every ``.safetensors`` file among ``paths`` (no tensor data: cheap for any size).

    safetensors checks that the header is valid JSON and that its tensors cover the file exactly, so a
    truncated download or a garbage header is found here, named with ``key`` and the file, instead of as
    a library traceback when the model is built. Pickled ``.bin`` / ``.pth`` files have no header to
    check; :func:`load_failure` names them if they fail to load.

    Returns each safetensors file's tensor name → shape, so a caller that checks shapes next
    (a timm folder's weights against the model) does not open the header a second time.
    """
    from safetensors import SafetensorError, safe_open

    headers: dict[Path, dict[str, tuple[int, ...]]] = {}
    for path in paths:
        if not path.name.lower().endswith(".safetensors"):
            continue
        try:
            with safe_open(str(path), framework="pt") as handle:
                headers[path] = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118 (safe_open is no dict)
        except (SafetensorError, OSError) as exc:
            raise DataFileError(
                f"{key}: weight file {path} is unreadable ({one_line(exc)}); replace it with a complete copy"
            ) from None
    return headers


def weight_load_errors() -> tuple[type[BaseException], ...]:
    """What the libraries' loaders raise on weights they cannot read: torch's ``RuntimeError`` (a state dict
    that does not fit), ``OSError`` / ``ValueError`` / ``KeyError`` (missing or unknown files and keys),
    safetensors' ``SafetensorError`` (a bad header or a truncated file; it derives from ``Exception`` only),
    and a broken pickle or zip archive (``.bin`` / ``.pth``)."""

    from safetensors import SafetensorError

    return (
        RuntimeError,
        OSError,
        ValueError,
        KeyError,
        EOFError,
        SafetensorError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    )


def load_failure(where: str, what: str, exc: BaseException) -> DataFileError:
    """A DataFileError for weights at ``where`` (the key and its value, or the folder) that could not be loaded
    into ``what``, with the library's message on one line."""
    return DataFileError(f"{where} could not be loaded into {what}: {one_line(exc)}")


def check_loading_info(model: Any, info: dict[str, Any], where: str, optional: tuple[str, ...] = ()) -> None:
    """Fail when ``from_pretrained(..., output_loading_info=True, ignore_mismatched_sizes=True)`` left a
    tensor of ``model`` without its checkpoint value (transformers would only log it and initialise it
    randomly).

    The rules, each error naming ``where`` and the first offending tensor in the model's order:

    * a tensor whose shape differs in the checkpoint is an error (both shapes named);
    * a tensor of the model that the checkpoint lacks is an error, unless its name starts with one of
      ``optional`` (parts the caller never uses, e.g. the pooler of a BERT read as an encoder);
    * a checkpoint tensor the model has no place for (a pretraining or MLM head, a pooler, an old
      ``position_ids`` buffer) is not: it leaves every model tensor loaded. When the model's tensors are
      missing too, the message adds the first of them, which usually shows a prefix or architecture mix-up.
    """
    order = {name: i for i, name in enumerate(model.state_dict())}

    def first(names: Iterable[str]) -> list[str]:
        return sorted(names, key=lambda name: (order.get(name, len(order)), name))

    kind = type(model).__name__
    mismatched = {entry[0]: entry for entry in info.get("mismatched_keys", ())}
    if mismatched:
        name, found, wanted = mismatched[first(mismatched)[0]][:3]
        raise DataFileError(
            f"{where} does not fit {kind}: {name} has shape {list(found)} in the checkpoint, "
            f"{list(wanted)} in the model ({len(mismatched)} tensor(s) of another shape)"
        )
    missing = first(k for k in info.get("missing_keys", ()) if not k.startswith(optional))
    if missing:
        unexpected = first(info.get("unexpected_keys", ()))
        extra = (
            f"; it holds {len(unexpected)} tensor(s) the model has no place for, e.g. {unexpected[0]}"
            if unexpected
            else ""
        )
        raise DataFileError(
            f"{where} does not fit {kind}: {missing[0]} is missing from the checkpoint "
            f"({len(missing)} of the model's {len(order)} tensors missing{extra})"
        )
    if info.get("error_msgs"):
        raise DataFileError(f"{where} could not be loaded into {kind}: {info['error_msgs'][0]}")
