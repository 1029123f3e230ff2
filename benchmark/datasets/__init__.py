"""Dataset adapters: the one table of built-in kinds, plus the files of ``$FUSEBENCH_DATASETS``.

``datasets.<name>.kind`` in the configuration names an adapter; the contract is documented in
:mod:`benchmark.datasets.base`.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from benchmark.plugins import PluginTable
from benchmark.tasks import TASK_TABLE, get_task, task_names

if TYPE_CHECKING:
    from benchmark.datasets.base import DatasetAdapter

BUILTIN_KINDS = {
    "synthetic": "benchmark.datasets.synthetic",
    "coco_captions": "benchmark.datasets.coco_captions",
    "karpathy": "benchmark.datasets.karpathy",
    "hf_retrieval": "benchmark.datasets.hf_retrieval",
    "webdataset": "benchmark.datasets.webdataset",
    "refer": "benchmark.datasets.refer",
    "grefcoco": "benchmark.datasets.grefcoco",
}
ADAPTER_TABLE = PluginTable(
    "dataset adapter", "benchmark.datasets.base:DatasetAdapter", BUILTIN_KINDS, "FUSEBENCH_DATASETS"
)


def dataset_kinds() -> list[str]:
    """Every available adapter kind: the built-ins, then ``$FUSEBENCH_DATASETS``'s files."""
    return ADAPTER_TABLE.names()


def get_adapter(kind: str) -> DatasetAdapter:
    """The adapter of ``kind``, checked against the contract and the available tasks."""
    return _load(kind, str(ADAPTER_TABLE.folder()), str(_task_folder()))


def _task_folder() -> object:

    return TASK_TABLE.folder()


@cache
def _load(kind: str, folder: str, task_folder: str) -> DatasetAdapter:
    from benchmark.datasets.base import check_adapter

    cls = ADAPTER_TABLE.load(kind)
    cls.kind = kind
    check_adapter(cls, task_requirements())
    return cls()


def task_requirements() -> dict[str, tuple[str, ...]]:
    """Task name → the dataset parts it requires, for every available task."""

    return {name: tuple(get_task(name).requires) for name in task_names()}


def dataset_tasks(kind: str) -> list[str]:
    """The tasks a dataset of ``kind`` serves, in task order."""
    from benchmark.datasets.base import served_tasks

    return served_tasks(type(get_adapter(kind)), task_requirements())
