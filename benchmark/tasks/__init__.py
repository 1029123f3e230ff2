"""Tasks: the one table of built-in tasks, plus the files of ``$FUSEBENCH_TASKS``.

A task is one file holding one :class:`~benchmark.tasks.base.Task` subclass (the contract is
documented in ``benchmark/tasks/README.md``). The framework looks tasks up here and never
branches on a task's name.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from benchmark.plugins import PluginTable

if TYPE_CHECKING:
    from benchmark.tasks.base import Task

BUILTIN_TASKS = {
    "retrieval": "benchmark.tasks.retrieval",
    "grounding": "benchmark.tasks.grounding",
    "matching": "benchmark.tasks.matching",  # opt-in: run when ``tasks`` names it
}
TASK_TABLE = PluginTable("task", "benchmark.tasks.base:Task", BUILTIN_TASKS, "FUSEBENCH_TASKS")


def task_names() -> list[str]:
    """Every available task: the built-ins, then ``$FUSEBENCH_TASKS``'s files."""
    return TASK_TABLE.names()


def get_task(name: str) -> Task:
    """The task called ``name`` (checked against the contract on first use)."""
    return _load(name, str(TASK_TABLE.folder()))


@cache
def _load(name: str, folder: str) -> Task:  # cached per plug-in folder, so tests can swap folders
    from benchmark.tasks.base import check_task

    cls = TASK_TABLE.load(name)
    check_task(cls)
    return cls()


def check_all_tasks() -> None:
    """Load every task (each checked against the contract) and check names shared across tasks."""
    from benchmark.tasks.base import check_task_table

    check_task_table([get_task(name) for name in task_names()])


def reference_rows_of_all_tasks() -> tuple[str, ...]:
    """Names of every task's reference rows (chance, text-blind detectors, ...)."""
    return tuple(row for name in task_names() for row in get_task(name).references)
