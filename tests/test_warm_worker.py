"""The warm worker (benchmark/workflow/warm.py, benchmark/cli/warm.py): a job handed to it writes what it would
have written in its own process, with the same exit status; a job it cannot serve runs in its own process.

That a forked training job computes the same bits as a fresh one is checked where it matters: the smoke profile
runs with ``warm_start: true`` (the default) and ``test_workflow`` compares its ``main.csv`` with the fixture,
which was written by fresh processes."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from benchmark.workflow import warm
from tests.helpers import REPO

pytestmark = pytest.mark.integration


def test_enabled_only_when_switched_on_and_never_for_the_server_itself() -> None:
    assert warm.enabled(["evaluate"], {"FUSEBENCH_WARM": "1"})
    assert not warm.enabled(["evaluate"], {})
    assert not warm.enabled(["evaluate"], {"FUSEBENCH_WARM": "0"})
    assert not warm.enabled([warm.SERVE_COMMAND, "--socket", "x"], {"FUSEBENCH_WARM": "1"})


def test_the_fingerprint_follows_import_time_variables_and_the_source(tmp_path: Path) -> None:
    """A variable torch or Hugging Face reads at import changes it, an unrelated one does not, the switch itself
    does not, and an edited source file does."""
    base = {"HOME": "/root", "OMP_NUM_THREADS": "1"}
    print_ = warm.fingerprint(base, ["/x"])
    assert warm.fingerprint({**base, "HOME": "/elsewhere"}, ["/x"]) == print_
    assert warm.fingerprint({**base, "FUSEBENCH_WARM": "1"}, ["/x"]) == print_
    assert warm.fingerprint({**base, "OMP_NUM_THREADS": "2"}, ["/x"]) != print_
    assert warm.fingerprint({**base, "HF_HUB_OFFLINE": "0"}, ["/x"]) != print_
    assert warm.fingerprint(base, ["/y"]) != print_
    # fusebench's own defaults count as set: a job run with or without them set by hand imports the same
    assert warm.fingerprint({**base, **warm.JOB_ENVIRONMENT_DEFAULTS}, ["/x"]) == print_
    package = tmp_path / "pkg"
    package.mkdir()
    module = package / "m.py"
    module.write_text("A = 1\n")
    stamp = warm.source_stamp(package)
    module.write_text("A = 22\n")
    assert warm.source_stamp(package) != stamp


def _fusebench(args: list[str], env: dict[str, str], out: Path) -> tuple[int, str, str]:
    """``python -m benchmark ARGS`` as a job runs it (stdout and stderr to files, as a job's log)."""
    with open(out / "stdout", "w") as stdout, open(out / "stderr", "w") as stderr:
        code = subprocess.run(
            [sys.executable, "-m", "benchmark", *args], cwd=REPO, env=env, stdout=stdout, stderr=stderr, timeout=600
        ).returncode
    return code, (out / "stdout").read_text(), (out / "stderr").read_text()


@pytest.fixture
def warm_env(tmp_path: Path):
    """The environment of a job with the warm worker on, its socket in a short folder of its own (pytest's
    ``tmp_path`` can be too long for a socket) that the test reads as ``tmp_path / "sockets"``; the server it starts
    is stopped afterwards."""
    short = Path(tempfile.mkdtemp(prefix="fbw-", dir="/tmp"))
    (tmp_path / "sockets").symlink_to(short)
    env = {**os.environ, "FUSEBENCH_WARM": "1", "TMPDIR": str(short), "PYTHONPATH": str(REPO)}
    yield env
    for log in short.glob("fusebench-warm-*.log"):
        for pid in re.findall(r"\(pid (\d+)\)", log.read_text()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
    shutil.rmtree(short, ignore_errors=True)


def test_a_long_temporary_folder_puts_the_socket_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A socket's path must fit ``sun_path``: under a deep ``$TMPDIR`` the socket goes to /tmp."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    path = warm.socket_path("0" * 64)
    assert path is not None and path.parent == Path("/tmp") and len(str(path)) <= warm.MAX_SOCKET_PATH
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    if len(str(tmp_path)) < 50:
        assert warm.socket_path("0" * 64).parent == tmp_path


def test_a_handed_over_command_writes_and_exits_as_in_its_own_process(tmp_path: Path, warm_env: dict) -> None:
    cold_env = {k: v for k, v in warm_env.items() if k != "FUSEBENCH_WARM"}
    runs = {}
    for name, env in (("cold", cold_env), ("first", warm_env), ("forked", warm_env)):
        (tmp_path / name).mkdir()
        runs[name] = _fusebench(["list-tasks"], env, tmp_path / name)
    assert runs["cold"][0] == runs["first"][0] == runs["forked"][0] == 0
    assert runs["cold"][1] == runs["first"][1] == runs["forked"][1]
    assert "grounding" in runs["cold"][1]
    logs = list((tmp_path / "sockets").glob("fusebench-warm-*.log"))
    assert len(logs) == 1 and "serving" in logs[0].read_text()  # one server, started by the first job

    # a failing command: the same exit status and the same error line, from the fork
    (tmp_path / "bad_cold").mkdir()
    (tmp_path / "bad_warm").mkdir()
    missing = str(tmp_path / "missing.yaml")
    cold = _fusebench(["validate-config", "--config", missing], cold_env, tmp_path / "bad_cold")
    forked = _fusebench(["validate-config", "--config", missing], warm_env, tmp_path / "bad_warm")
    assert cold[0] == forked[0] != 0
    assert missing in forked[2] and cold[2].splitlines()[-1] == forked[2].splitlines()[-1]


def test_a_client_from_another_environment_is_refused_and_runs_itself(tmp_path: Path, warm_env: dict) -> None:
    """The server answers ``accepted: false`` to a request whose import-time environment is not its own; the
    client then runs the command in its own process (``delegate`` returns None)."""
    (tmp_path / "first").mkdir()
    assert _fusebench(["list-tasks"], warm_env, tmp_path / "first")[0] == 0  # starts the server
    probe = (
        "import os, socket, sys; sys.path[0] = os.getcwd();"
        "from benchmark.workflow import warm;"
        "p = warm.fingerprint(); c = socket.socket(socket.AF_UNIX); c.connect(str(warm.socket_path(p)));"
        "os.environ['OMP_NUM_THREADS'] = '7'; warm.send_request(c, ['list-tasks'], p); print(warm.read_line(c))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=warm_env, capture_output=True, text=True)
    assert done.stdout.strip() == "{'accepted': False}", done.stderr
    log = next((tmp_path / "sockets").glob("fusebench-warm-*.log")).read_text()
    assert "refused ['list-tasks']: its environment differs in ['environment']" in log


def _blocked_job(tmp_path: Path, warm_env: dict) -> tuple[subprocess.Popen, int, int]:
    """A job handed to a warm worker that blocks (validate-config reading a FIFO nobody writes to): its client,
    the server's pid and the fork's."""
    (tmp_path / "first").mkdir()
    assert _fusebench(["list-tasks"], warm_env, tmp_path / "first")[0] == 0  # starts the server
    server = int(re.findall(r"\(pid (\d+)\)", next((tmp_path / "sockets").glob("fusebench-warm-*.log")).read_text())[0])
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    client = subprocess.Popen(
        [sys.executable, "-m", "benchmark", "validate-config", "--config", str(fifo)],
        cwd=REPO,
        env=warm_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        forks = subprocess.run(["pgrep", "-P", str(server)], capture_output=True, text=True).stdout.split()
        if forks:
            return client, server, int(forks[0])
        time.sleep(0.1)
    pytest.fail("the fork never started")


def _gone(pid: int, within_s: float = 30) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_cancelled_job_stops_its_fork(tmp_path: Path, warm_env: dict) -> None:
    """Snakemake cancelling a job kills its client; the server then terminates the job's fork."""
    client, server, child = _blocked_job(tmp_path, warm_env)
    client.kill()
    client.wait()
    assert _gone(child), f"the fork {child} of a cancelled job still runs"
    os.kill(server, 0)  # the server goes on


def test_a_job_whose_server_dies_fails_and_stops(tmp_path: Path, warm_env: dict) -> None:
    """A killed server takes its running forks with it (no orphan goes on writing a job's outputs), and their
    clients exit 1 saying so: Snakemake counts the job failed and runs it again."""
    client, server, child = _blocked_job(tmp_path, warm_env)
    os.kill(server, signal.SIGKILL)
    assert client.wait(timeout=60) == 1
    assert "the warm worker" in client.stderr.read() and _gone(child)
