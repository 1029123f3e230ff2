"""The expected-results file: every result a run's tables are made of, and the jobs each comes from.

After a failed run the workflow (``onerror``, ``workflows/rules/partial.smk``) writes this file and calls
``fusebench aggregate --expected FILE`` (:func:`benchmark.report.aggregate.read_expected`): each result that
is missing becomes rows marked failed with the error of the first job of its chain whose output is missing,
so a failure is a row, not a gap. The file is JSON::

    {"cells": [{"dataset": …, "task": …, "method": …, "seed": …,
                "upstream": [JOB, …],        # in run order: data, tokenizer, pretrain, …, finetune
                "evaluate": JOB, "robustness": JOB}],     # each with its stage "spec"
     "references": [{"dataset": …, "task": …, "upstream": [JOB], "reference": JOB}],
     "training": [path, …]}                   # pretrain/finetune result.json (efficiency table)

where ``JOB = {"rule": …, "wildcards": {…}, "output": path, "log": path}`` names a job by the
file whose existence means it succeeded and the log it writes (:class:`~benchmark.workflow.paths.RunLayout`).
"""

from __future__ import annotations

from typing import Any

from benchmark.config import pretrain_dataset, stage_spec, text_tokenizer_init, tokenizer_slug
from benchmark.workflow.grid import RunGrid
from benchmark.workflow.paths import RunLayout


def job_files(layout: RunLayout, rule: str) -> tuple[str, str]:
    """(the output whose existence means a ``rule`` job succeeded, its log), as templates."""
    files = {
        "dataset": layout.data,
        "tokenizer": layout.tokenizer,
        "pretrained_tokenizer": layout.pretrained_tokenizer,
        "reference": layout.reference,
    }
    if rule in files:
        return files[rule].output, files[rule].log
    job = {
        "pretrain": layout.pretrain,
        "finetune": layout.finetune,
        "evaluate": layout.evaluation,
        "robustness": layout.robustness,
    }[rule]
    return job.result, job.log


def job_entry(layout: RunLayout, rule: str, **wildcards: Any) -> dict[str, Any]:
    """One job as ``fusebench aggregate --expected`` reads it: the file that exists once it succeeded, and its log."""
    output, log = job_files(layout, rule)
    return {"rule": rule, "wildcards": wildcards, "output": output.format(**wildcards), "log": log.format(**wildcards)}


def upstream_jobs(
    config: dict[str, Any], layout: RunLayout, grid: RunGrid, job: dict[str, Any]
) -> list[dict[str, Any]]:
    """The jobs an evaluation cell depends on, in run order: the data of the dataset pretrained on, the
    tokenizer, pretraining, the evaluated dataset's data (when another) and fine-tuning; a zero-shot method
    has none of the training jobs."""
    dataset, method = job["dataset"], job["method"]
    pretrained = {"dataset": pretrain_dataset(config, dataset), "method": method, "seed": job["seed"]}
    stages = grid.training[method]
    text_init = text_tokenizer_init(config, method)  # a pretrained text tower brings its own tokenizer
    if text_init:
        tokenizer = job_entry(layout, "pretrained_tokenizer", tokenizer=tokenizer_slug(text_init))
    else:
        tokenizer = job_entry(layout, "tokenizer", dataset=pretrained["dataset"])
    return [
        job_entry(layout, "dataset", dataset=pretrained["dataset"]),
        *([tokenizer] if stages else []),
        *([job_entry(layout, "pretrain", **pretrained)] if "pretrain" in stages else []),
        *([job_entry(layout, "dataset", dataset=dataset)] if dataset != pretrained["dataset"] else []),
        *([job_entry(layout, "finetune", **job)] if "finetune" in stages else []),
    ]


def expected_results(config: dict[str, Any], layout: RunLayout, grid: RunGrid) -> dict[str, Any]:
    """Every result the aggregate rule reads, each with the jobs it comes from (the format above)."""
    cells = []
    for (dataset, task), method, seed in (
        (dt, m, s) for dt in grid.dataset_tasks for m in grid.methods for s in grid.seeds
    ):
        job = {"dataset": dataset, "task": task, "method": method, "seed": int(seed)}
        cells.append(
            {
                **job,
                "upstream": upstream_jobs(config, layout, grid, job),
                "evaluate": {**job_entry(layout, "evaluate", **job), "spec": stage_spec(config, "evaluate", **job)},
                "robustness": {
                    **job_entry(layout, "robustness", **job),
                    "spec": stage_spec(config, "robustness", **job),
                },
            }
        )
    references = [
        {
            "dataset": dataset,
            "task": task,
            "upstream": [job_entry(layout, "dataset", dataset=dataset)],
            "reference": {
                **job_entry(layout, "reference", dataset=dataset, task=task),
                "spec": stage_spec(config, "reference", dataset=dataset, task=task),
            },
        }
        for dataset, task in grid.dataset_tasks
    ]
    training = [*grid.pretrain_results(layout), *grid.finetune_results(layout)]
    return {"cells": cells, "references": references, "training": training}
