"""The jobs of a run: which (dataset, task, method, seed) cells it evaluates and which training jobs feed them.

The Snakefile computes the grid from the configuration once (:class:`RunGrid`); the aggregate rule's inputs
and the expected-results file (:mod:`benchmark.workflow.expected`) both read it, so they name the same jobs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

from benchmark.config import dataset_tasks, method_training, pretrain_dataset, resolve_methods, run_datasets
from benchmark.registry import method_names
from benchmark.workflow.paths import RunLayout


@dataclass(frozen=True)
class RunGrid:
    """The run's cells and training jobs.

    ``dataset_tasks``: each dataset with each task it serves; ``training``: method → its training stages
    (``()`` for a zero-shot method, ``("finetune",)``, ``("pretrain", "finetune")``); ``pretrain_datasets``:
    the datasets pretrained on (a dataset with ``pretrain_from`` is fine-tuned from another's pretraining)."""

    dataset_tasks: Sequence[tuple[str, str]]
    methods: Sequence[str]
    seeds: Sequence[int]
    training: Mapping[str, Sequence[str]]
    pretrain_datasets: Sequence[str]

    def every_job(self, pattern: str, methods: Sequence[str] | None = None) -> list[str]:
        """``pattern`` for every (dataset, task, method, seed) of the run, in that order (datasets serve only
        their tasks)."""
        methods = self.methods if methods is None else methods
        return [
            pattern.format(dataset=d, task=t, method=m, seed=s)
            for (d, t), m, s in product(self.dataset_tasks, methods, self.seeds)
        ]

    def every_dataset_task(self, pattern: str) -> list[str]:
        return [pattern.format(dataset=d, task=t) for d, t in self.dataset_tasks]

    def trained_methods(self, stage: str = "finetune") -> list[str]:
        """The run's methods with a ``stage`` job (pretrain or finetune)."""
        return [m for m in self.methods if stage in self.training[m]]

    def pretrain_results(self, layout: RunLayout) -> list[str]:
        """The result of every pretraining job: per pretraining dataset, pretrained method and seed."""
        return [
            layout.pretrain.result.format(dataset=d, method=m, seed=s)
            for d, m, s in product(self.pretrain_datasets, self.trained_methods("pretrain"), self.seeds)
        ]

    def finetune_results(self, layout: RunLayout) -> list[str]:
        """The result of every fine-tuning job."""
        return self.every_job(layout.finetune.result, self.trained_methods())


def run_grid(config: dict[str, Any]) -> RunGrid:
    """The grid of a completed, validated configuration: its methods (``methods``, or every method file), the
    datasets it runs with the tasks each serves, its seeds and each method's training stages."""

    methods = resolve_methods(config, method_names())
    datasets = run_datasets(config)
    return RunGrid(
        dataset_tasks=[(dataset, task) for dataset in datasets for task in dataset_tasks(config, dataset)],
        methods=methods,
        seeds=config["seeds"],
        training={method: method_training(method, config) for method in methods},  # () = zero-shot: no training jobs
        pretrain_datasets=sorted({pretrain_dataset(config, dataset) for dataset in datasets}),
    )
