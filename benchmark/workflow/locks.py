"""The lock a stopped run left behind: remove it only when no run can be using the folder.

A run stopped by kill -9 or a lost node leaves Snakemake's lock (``.snakemake/locks``) behind, and the next
run would stop with ``LockException``. ``make run`` calls ``python -m benchmark.workflow.locks FOLDER
UNLOCK_COMMAND`` first: the lock is removed (the unlock command run) only when it can be proved that no run
uses the folder: the folder is on a local file system, so no other machine can run in it, and no process on
this machine runs Snakemake or a FuseBench job there. Otherwise it says why it cannot tell and prints the
command to run once you have checked (exit 1). A run working in the folder keeps its lock (exit 0).

The decision (:func:`stale_lock`) reads a ``/proc``-like folder (``proc``), so it is tested on fake ones.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LOCAL_FILE_SYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "bcachefs", "tmpfs", "overlay", "ramfs"}
)
"""File systems no other machine can mount: a run working in the folder would be a process here."""


def lock_files(folder: Path) -> list[str]:
    """The lock files Snakemake left in ``folder`` (``.snakemake/locks/*.lock``)."""
    locks = folder / ".snakemake" / "locks"
    return sorted(name for name in os.listdir(locks) if name.endswith(".lock")) if locks.is_dir() else []


def mount(path: str, mountinfo: str) -> tuple[str | None, str]:
    """(type, super options) of the file system holding ``path``: the longest mount point above it, from the
    text of ``/proc/self/mountinfo``; (None, "") when none is."""
    best, found = "", (None, "")
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        point, tail = fields[4].replace("\\040", " "), fields[fields.index("-") + 1 :]
        if (path + "/").startswith(point.rstrip("/") + "/") and len(point) >= len(best):
            best, found = point, (tail[0], tail[-1])
    return found


def working_here(pid: str, folder: str, proc: Path) -> bool | None:
    """True: process ``pid`` is Snakemake or a FuseBench job working in ``folder``; None: its folder cannot be
    read (another user's process)."""
    try:
        argv = (proc / pid / "cmdline").read_bytes().decode(errors="replace").split("\0")
        names = {os.path.basename(arg) for arg in argv[:2]}
        if names & {"snakemake", "fusebench"} or argv[1:3] in (["-m", "snakemake"], ["-m", "benchmark"]):
            return os.readlink(proc / pid / "cwd") == folder
        return False
    except PermissionError:
        return None
    except OSError:  # it has ended
        return False


@dataclass(frozen=True)
class Decision:
    """What to do with a lock: ``unlock`` it, or not, and why (``message``; ``doubt`` when it cannot tell)."""

    unlock: bool
    message: str = ""
    doubt: str = ""


def stale_lock(folder: str, proc: Path = Path("/proc"), euid: int | None = None) -> Decision:
    """Whether the lock in ``folder`` (a real path) may be removed, from the processes and mounts in ``proc``."""
    euid = os.geteuid() if euid is None else euid
    try:
        mountinfo = (proc / "self" / "mountinfo").read_text()
        kind, proc_options = mount(folder, mountinfo)[0], mount(str(proc), mountinfo)[1]
        found = {pid: working_here(pid, folder, proc) for pid in filter(str.isdigit, os.listdir(proc))}
    except OSError:
        kind, proc_options, found = None, "", {}
    running = [pid for pid, here in found.items() if here]
    unsure = [pid for pid, here in found.items() if here is None]
    if running:
        return Decision(False, f"a run is working in {folder} (pid {', '.join(running)}); its lock stays")
    if not found:
        return Decision(False, doubt="there is no /proc here to look for running processes")
    if kind not in LOCAL_FILE_SYSTEMS:
        return Decision(False, doubt=f"its file system ({kind}) may be shared with other machines")
    if unsure or ("hidepid" in proc_options and euid != 0):
        return Decision(
            False, doubt=f"the processes of other users cannot be seen here ({', '.join(unsure) or 'hidepid'})"
        )
    return Decision(True)


def main(argv: list[str] | None = None, proc: Path = Path("/proc")) -> int:
    """``python -m benchmark.workflow.locks FOLDER UNLOCK_COMMAND``: the exit status for ``make``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m benchmark.workflow.locks FOLDER UNLOCK_COMMAND", file=sys.stderr)
        return 2
    folder, unlock = os.path.realpath(args[0]), args[1]
    locks = os.path.join(folder, ".snakemake", "locks")
    if not lock_files(Path(folder)):
        return 0
    decision = stale_lock(folder, proc)
    if decision.unlock:
        print(f"make: removing the lock a stopped run left in {locks} (no run works in that folder)")
        done = subprocess.run(shlex.split(unlock), capture_output=True, text=True)
        if done.returncode:
            print(f"{done.stderr}make: `{unlock}` failed", file=sys.stderr)
            return 1
        return 0
    if not decision.doubt:
        print(f"make: {decision.message}")
        return 0
    print(
        f"make: a lock from an earlier run remains in {locks}. No run works in that folder on this\n"
        f"machine, but {decision.doubt}. If no run uses the folder on any machine, unlock it and run again:\n"
        f"    {unlock}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
