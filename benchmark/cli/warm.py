"""The warm worker's server (``fusebench warm-serve``): import once what every job imports, then fork a child per
job (the protocol and why: :mod:`benchmark.workflow.warm`).

Single-threaded on purpose: forking a process with other threads running is unsafe, so one loop accepts
connections, forks, watches each client for hang-ups and reaps children. The server runs no torch operation
before forking (so no thread pool or CUDA context exists to be inherited); the child sets its own threads and
seeds, as a fresh job does.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import ctypes
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.cli.stage_commands import preload
from benchmark.workflow.warm import ENABLE_VARIABLE, IDLE_EXIT_S, fingerprint, fingerprint_parts, read_line

log = logging.getLogger("fusebench.warm")

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent exits


def warm_imports() -> None:
    """What a training or evaluation job imports before its stage runs (``stage_commands.preload``), and the
    stages themselves."""
    import benchmark.stages  # noqa: F401

    preload({})


def _receive(connection: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """The request line and the client's three standard descriptors (``SCM_RIGHTS``)."""
    fds = array.array("i")
    message, ancillary, _, _ = connection.recvmsg(1 << 20, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    while message and not message.endswith(b"\n"):
        chunk = connection.recv(1 << 20)
        if not chunk:
            break
        message += chunk
    if len(fds) != 3 or not message.endswith(b"\n"):
        for fd in fds:
            os.close(fd)
        return None
    return json.loads(message), list(fds)


def run_child(request: dict[str, Any], fds: list[int], fusebench: Callable[[], int], server_pid: int) -> None:
    """In the forked child: become the job's process (its streams, folder, environment and arguments), run
    ``fusebench`` (:func:`benchmark.cli.entry.main`, handed down by it), and exit with its status. Never
    returns."""
    status = 1
    try:
        # The job dies with the server (Linux): a job whose server was killed has lost its client's answer, and
        # Snakemake counts it failed and may run it again; the orphan must not go on writing its outputs.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != server_pid:  # it died before that took effect
            os._exit(1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.pop(ENABLE_VARIABLE, None)
        sys.argv = [sys.argv[0], *request["argv"]]
        logging.getLogger().handlers.clear()  # the job's own logging.basicConfig writes to its stderr
        try:
            status = fusebench()
        except SystemExit as exit_:  # argparse's usage errors
            status = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


class Server:
    """Accept, fork, watch, reap (module docstring)."""

    def __init__(
        self,
        path: Path,
        fusebench: Callable[[], int],
        started_with: tuple[dict[str, str], list[str]],
        idle_exit_s: float = IDLE_EXIT_S,
    ) -> None:
        self.path = path
        self.fusebench = fusebench
        self.idle_exit_s = idle_exit_s
        # The environment and sys.path before the warm imports, which may set variables and extend the path.
        self.environment, self.search_path = started_with
        self.print_ = fingerprint(self.environment, self.search_path)
        # What the imports set in the environment (e.g. TORCHINDUCTOR_CACHE_DIR); a fresh job would have it too.
        self.set_by_imports = {k: v for k, v in os.environ.items() if self.environment.get(k) != v}
        self.children: dict[int, socket.socket] = {}  # child pid → its client's connection
        self.selector = selectors.DefaultSelector()
        self.last_activity = time.monotonic()

    def serve(self, listener: socket.socket) -> None:
        """Serve on ``listener`` (bound and listening) until idle for ``idle_exit_s``."""
        self.selector.register(listener, selectors.EVENT_READ)
        log.info("warm worker serving %s (pid %d)", self.path, os.getpid())
        try:
            while self.children or time.monotonic() - self.last_activity < self.idle_exit_s:
                for key, _ in self.selector.select(timeout=0.1):
                    if key.fileobj is listener:
                        self._accept(listener)
                    else:
                        self._hung_up(key.fileobj)
                self._reap()
        finally:
            self.selector.close()
            listener.close()
            self.path.unlink(missing_ok=True)
            log.info("warm worker %s exits after %.0f s idle", self.path, self.idle_exit_s)

    def _accept(self, listener: socket.socket) -> None:
        connection, _ = listener.accept()
        self.last_activity = time.monotonic()
        received = _receive(connection)
        if received is None:
            connection.close()
            return
        request, fds = received
        expected = fingerprint(request["env"], self.search_path)
        if request.get("fingerprint") != self.print_ or expected != self.print_:
            ours = fingerprint_parts(self.environment, self.search_path)
            theirs = fingerprint_parts(request["env"], self.search_path)
            differs = sorted(k for k in ours if ours[k] != theirs[k]) or ["the client's search path or source"]
            log.info("warm worker refused %s: its environment differs in %s", request["argv"][:1], differs)
            for fd in fds:
                os.close(fd)
            connection.sendall(b'{"accepted": false}\n')
            connection.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        server_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            connection.sendall(b'{"accepted": true}\n')
            connection.close()
            self.selector.close()
            listener.close()
            for other in self.children.values():
                other.close()
            run_child({**request, "env": {**self.set_by_imports, **request["env"]}}, fds, self.fusebench, server_pid)
        for fd in fds:
            os.close(fd)
        self.children[pid] = connection
        self.selector.register(connection, selectors.EVENT_READ, pid)

    def _hung_up(self, connection: Any) -> None:
        """A client connection is readable only when it closed: its job was cancelled; stop the child."""
        pid = self.selector.get_key(connection).data
        self.selector.unregister(connection)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)

    def _reap(self) -> None:
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            connection = self.children.pop(pid, None)
            self.last_activity = time.monotonic()
            if connection is None:
                continue
            with contextlib.suppress(KeyError, ValueError):  # unregistered on hang-up
                self.selector.unregister(connection)
            try:
                code = os.waitstatus_to_exitcode(status)
                connection.sendall(f'{{"status": {code if code >= 0 else 128 - code}}}\n'.encode())
            except OSError:
                pass
            finally:
                connection.close()


def cmd_warm_serve(args: argparse.Namespace) -> None:
    """``fusebench warm-serve --socket PATH``: started by the first job that asks for a warm worker."""
    started_with = (dict(os.environ), list(sys.path))
    socket_path = Path(args.socket).resolve()
    # Listen before the imports: a path that cannot be bound fails at once (the client waiting for it then runs its
    # job itself), and the first clients queue in the backlog while the imports run.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    socket_path.unlink(missing_ok=True)
    listener.bind(str(socket_path))
    listener.listen(16)
    warm_imports()
    # Out of the run's folder: a server that outlives a killed run must not look like a job working there (make
    # run's stale-lock check, benchmark/workflow/locks.py); each child moves to its job's folder.
    os.chdir("/")
    Server(socket_path, args.fusebench, started_with, args.idle_exit).serve(listener)


__all__ = ["Server", "cmd_warm_serve", "read_line", "run_child", "warm_imports"]
