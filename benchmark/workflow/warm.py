"""The client side of the warm worker: a job's ``python -m benchmark …`` hands its command to a process that has
already imported torch and the stages, which forks a copy of itself to run it.

Why: a training or evaluation job spends 7–9 CPU-seconds importing torch, transformers, timm and FuseBench's
stages before its first step (``timing.startup_s``); a default run has hundreds of such jobs on 2 cores. A fork of
a process that has done those imports starts in milliseconds, and it is still one process per job: Snakemake's
per-job caching, logs, exit codes and resumption are unchanged, and so is every number (the job seeds itself;
``tests/test_warm_worker.py`` checks a forked job writes the same bits as a fresh one).

The protocol (one Unix socket per environment, :func:`socket_path`):

1. The client connects and sends its standard input, output and error (``SCM_RIGHTS``) with one JSON line:
   the arguments, the working directory, the environment.
2. The server (:mod:`benchmark.cli.warm`) forks; the child takes those descriptors, directory and environment
   and runs ``fusebench`` as ``python -m benchmark`` would; the server waits for it and sends back its exit
   status as one JSON line. A client that goes away (Snakemake killing the job) gets its child terminated.

The server serves only clients whose import-time environment is its own (:func:`fingerprint`: the interpreter,
``sys.path``, the variables torch, the BLAS libraries and the Hugging Face libraries read when imported, and the
package's source files), because those decide what the imports did. Any mismatch, a missing or busy server, or
any error before the job starts makes the client run the command in its own process as before, so the warm
worker only ever saves time. It is switched on by ``FUSEBENCH_WARM=1`` in the job's environment (the workflow's
shell prefix sets it when the config's ``warm_start`` is true) and started by the first job that wants it; it
exits after ``IDLE_EXIT_S`` seconds without a job.

Torch-free and FuseBench-free: this module runs at the start of every job, before anything is imported.
"""

from __future__ import annotations

import array
import fcntl
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENABLE_VARIABLE = "FUSEBENCH_WARM"
"""``1`` in a job's environment: hand the command to the warm worker (started if none serves this environment)."""

SERVE_COMMAND = "warm-serve"
"""The ``fusebench`` subcommand that runs the server (never itself handed to a server)."""

IDLE_EXIT_S = 120.0
"""A server with no job running and none received for this long exits."""

START_TIMEOUT_S = 120.0
"""How long the first client waits for a server it started to answer (its imports take seconds, longer on a
loaded machine); past it, the client runs its command itself."""

IMPORT_TIME_PREFIXES = (
    "ATEN_",
    "CUDA",
    "CUBLAS",
    "FUSEBENCH_",
    "HF_",
    "KMP_",
    "LD_",
    "MKL",
    "NVIDIA",
    "OMP_",
    "OPENBLAS",
    "PYTHON",
    "PYTORCH",
    "TIMM",
    "TOKENIZERS",
    "TORCH",
    "TRANSFORMERS",
)
"""Environment variables that can change what importing torch, a BLAS or a Hugging Face library does."""

PACKAGE_ROOT = Path(__file__).resolve().parents[1]

JOB_ENVIRONMENT_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
"""What ``fusebench`` sets in its environment where unset, before importing anything (offline unless told
otherwise; no tokenizer threads racing the job's own)."""


def enabled(argv: list[str], environ: dict[str, str] | None = None) -> bool:
    """Whether this command should go to a warm worker: switched on, and not the server's own command."""
    environ = os.environ if environ is None else environ
    return environ.get(ENABLE_VARIABLE) == "1" and SERVE_COMMAND not in argv


def source_stamp(root: Path = PACKAGE_ROOT) -> str:
    """Every ``.py`` file of the package with its size and modification time: a server started before an edit
    has the old code imported and must not serve the new one."""
    entries = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                stat = os.stat(os.path.join(folder, name))
                entries.append(f"{os.path.join(folder, name)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def fingerprint_parts(environ: dict[str, str] | None = None, path: list[str] | None = None) -> dict[str, Any]:
    """What the imports of a process depended on (module docstring).

    ``path`` is the module search path the process started with (``sys.path`` by default): a server takes its
    own before importing anything, since imports may extend it."""
    environ = {**JOB_ENVIRONMENT_DEFAULTS, **(os.environ if environ is None else environ)}
    environ.pop(ENABLE_VARIABLE, None)
    relevant = {k: v for k, v in sorted(environ.items()) if k.startswith(IMPORT_TIME_PREFIXES)}
    path = sys.path if path is None else path
    return {"python": sys.executable, "path": list(path), "environment": relevant, "source": source_stamp()}


def fingerprint(environ: dict[str, str] | None = None, path: list[str] | None = None) -> str:
    """A digest of :func:`fingerprint_parts`; a server serves only clients with its own."""
    return hashlib.sha256(json.dumps(fingerprint_parts(environ, path), sort_keys=True).encode()).hexdigest()


MAX_SOCKET_PATH = 100
"""Bytes a Unix socket's path may take here: ``sun_path`` holds 108 on Linux and 104 on macOS, with its NUL."""


def socket_path(print_: str) -> Path | None:
    """The server's socket for one fingerprint: in the temporary folder, or in ``/tmp`` where that folder's path is
    too long for a socket (``$TMPDIR`` under a deep folder); None where neither fits (no warm worker then)."""
    name = f"fusebench-warm-{os.getuid()}-{print_[:16]}.sock"
    for folder in (tempfile.gettempdir(), "/tmp"):
        path = Path(folder) / name
        if len(os.fsencode(str(path))) <= MAX_SOCKET_PATH and os.path.isdir(folder):
            return path
    return None


def send_request(connection: socket.socket, argv: list[str], print_: str) -> None:
    """The request: this process's standard streams and one JSON line (module docstring)."""
    request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "fingerprint": print_}
    payload = (json.dumps(request) + "\n").encode()
    fds = [sys.stdin.fileno(), sys.stdout.fileno(), sys.stderr.fileno()]
    connection.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])


def read_line(connection: socket.socket) -> dict[str, Any] | None:
    """One JSON line from the other side, or None when it closed first."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(4096)
        if not chunk:
            return None
        data += chunk
    return json.loads(data)


def _connect(path: Path) -> socket.socket | None:
    """A connection to the server at ``path``, or None. Only to a server of this user (``SO_PEERCRED``, Linux): a
    job hands over its environment and its streams, never to another user's process at a guessed path."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
        if hasattr(socket, "SO_PEERCRED"):
            credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            if struct.unpack("3i", credentials)[1] != os.getuid():
                raise OSError(f"{path} is served by another user")
    except OSError:
        connection.close()
        return None
    return connection


def _start_server(path: Path) -> socket.socket | None:
    """Start a server for this environment (one at a time: a lock file beside the socket) and connect to it."""
    lock_path = path.with_suffix(".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        connection = _connect(path)  # another client may have started it while this one waited for the lock
        if connection is not None:
            return connection
        log = path.with_suffix(".log")
        with open(log, "ab") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "benchmark", SERVE_COMMAND, "--socket", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # outlives this job; Snakemake's interrupt of a job does not reach it
                env={k: v for k, v in os.environ.items() if k != ENABLE_VARIABLE},
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and server.poll() is None:  # a server that failed: run the job here
            connection = _connect(path)
            if connection is not None:
                return connection
            time.sleep(0.05)
    return None


def delegate(argv: list[str]) -> int | None:
    """Run ``fusebench argv`` in a warm worker and return its exit status, or None where this process should run
    it itself (no server could serve it; nothing of the job has run)."""
    try:
        print_ = fingerprint()
        path = socket_path(print_)
        if path is None:
            return None
        connection = _connect(path) or _start_server(path)
        if connection is None:
            return None
        with connection:
            sys.stdout.flush()
            sys.stderr.flush()
            send_request(connection, argv, print_)
            accepted = read_line(connection)
            if not accepted or not accepted.get("accepted"):
                return None
            done = read_line(connection)
    except (OSError, ValueError):
        return None
    if done is None:
        print(f"fusebench: the warm worker ({path}) stopped before the job finished", file=sys.stderr)
        return 1
    return int(done["status"])
