"""Atomic file writes (a crash never leaves a half-written result behind), JSON reads and file digests.

Every writer goes to a temporary file in the destination's directory and then ``os.replace``s
it into place, which is atomic on POSIX file systems. A reader therefore sees either the old
file or the complete new one, and Snakemake never mistakes a torn file for a finished output.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from benchmark.errors import DataFileError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; results must be readable like any file
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, writer: Callable[[IO[Any]], None], mode: str = "w") -> None:
    """Call ``writer(handle)`` on a temporary file, fsync it, then move it onto ``path``."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        writer(handle)
        handle.flush()
        os.fsync(handle.fileno())


def write_text(path: str | Path, text: str) -> None:
    """Atomically write ``text``."""
    atomic_write(path, lambda handle: handle.write(text))


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON with sorted keys (stable diffs)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path, what: str = "file") -> Any:
    """Read JSON, raising :class:`DataFileError` that names ``path`` on any failure."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DataFileError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{what} {path} cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{what} {path} is not valid JSON (line {exc.lineno}): {exc.msg}") from None


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes (read in 1 MiB chunks), as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
