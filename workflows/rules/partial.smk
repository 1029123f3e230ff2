# After a failed run (the Snakefile's onerror, e.g. once --keep-going has run every job it could): the
# tables and plots of everything that finished, each missing result marked failed with its error and
# log, and a summary of the failed jobs. The failed jobs stay failed: their outputs are missing.
# But Snakemake does not look behind outputs that are present and newer than their inputs, so
# tables written now would make the next run say "Nothing to be done" and never retry them. Hence
# the tables and plots written here are dated 1970 (older than every input) and dropped from
# Snakemake's records (else inputs whose checksums match those recorded for older tables would not
# count as updated): the next run retries the failed jobs and rebuilds the tables, and a partial
# table is never taken for a finished one.

import subprocess


def job_entry(rule, output, **wildcards):
    """One job as `fusebench aggregate --expected` reads it: the file that exists once it succeeded, and its log."""
    log = getattr(rules, rule).log[0]
    return {"rule": rule, "wildcards": wildcards, "output": output.format(**wildcards), "log": log.format(**wildcards)}


def data_job(dataset):
    return job_entry("dataset", rules.dataset.output.result, dataset=dataset)


def expected_results():
    """Every result the aggregate rule reads, each with the jobs it comes from in run order (the format is
    documented in benchmark/report/aggregate.py)."""
    cells = []
    for key in every_job("{dataset} {task} {method} {seed}"):  # the grid of the aggregate rule's inputs
        dataset, task, method, seed = key.split(" ")
        job = {"dataset": dataset, "task": task, "method": method, "seed": int(seed)}
        pretrained = {"dataset": pretrain_dataset(config, dataset), "method": method, "seed": int(seed)}
        stages = TRAINING[method]  # a zero-shot method has no training jobs upstream
        text_init = text_tokenizer_init(config, method)  # a pretrained text tower brings its own tokenizer
        tokenizer_rule = "pretrained_tokenizer" if text_init else "tokenizer"
        tokenizer_job = {"tokenizer": tokenizer_slug(text_init)} if text_init else {"dataset": pretrained["dataset"]}
        upstream = [
            data_job(pretrained["dataset"]),
            *([job_entry(tokenizer_rule, getattr(rules, tokenizer_rule).output[0], **tokenizer_job)] if stages else []),
            *([job_entry("pretrain", rules.pretrain.output.result, **pretrained)] if "pretrain" in stages else []),
            *([data_job(dataset)] if dataset != pretrained["dataset"] else []),
            *([job_entry("finetune", rules.finetune.output.result, **job)] if "finetune" in stages else []),
        ]
        cells.append(
            {
                **job,
                "upstream": upstream,
                "evaluate": {
                    **job_entry("evaluate", rules.evaluate.output.result, **job),
                    "spec": stage_spec(config, "evaluate", **job),
                },
                "robustness": {
                    **job_entry("robustness", rules.robustness.output[0], **job),
                    "spec": stage_spec(config, "robustness", **job),
                },
            }
        )
    references = [
        {
            "dataset": dataset,
            "task": task,
            "upstream": [data_job(dataset)],
            "reference": {
                **job_entry("reference", rules.reference.output[0], dataset=dataset, task=task),
                "spec": stage_spec(config, "reference", dataset=dataset, task=task),
            },
        }
        for dataset, task in DATASET_TASKS
    ]
    training = [*rules.aggregate.input.pretrained, *rules.aggregate.input.finetuned]
    return {"cells": cells, "references": references, "training": [str(path) for path in training]}


def fusebench(*args, log):
    """Run `python -m benchmark -v ARGS` from this checkout as the jobs do, stderr to `log`; its stdout, or
    None if it failed."""
    path = os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")]))
    with open(log, "w") as stderr:
        result = subprocess.run(
            [sys.executable, "-m", "benchmark", "-v", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )
    return result.stdout if result.returncode == 0 else None


def mark_outdated(files):
    """Date `files` to 1970 and drop Snakemake's records of them: the next run rebuilds them."""
    for path in files:
        if os.path.exists(path):
            os.utime(path, (1, 1))  # 1 s after the epoch: Snakemake reads a time of 0 as none
            workflow.persistence.cleanup_metadata(path)


def partial_report():
    """onerror: the tables and plots of what finished, and a summary of the failed jobs (logged last)."""
    from snakemake.logging import logger

    folder = f"{OUT}/logs/partial"
    tables, plots = os.path.dirname(rules.aggregate.output.csv), os.path.dirname(rules.plots.output.main)
    settings = json.dumps(stage_spec(config, "report"), sort_keys=True)
    try:
        os.makedirs(folder, exist_ok=True)
        expected = f"{folder}/expected.json"
        with open(expected, "w") as handle:
            json.dump(expected_results(), handle, indent=1)
        summary = fusebench(
            "aggregate",
            *("--expected", expected, "--report", settings, "--out-dir", tables, "--config-hash", CONFIG_HASH),
            log=f"{folder}/aggregate.log",
        )
        if summary is None:
            logger.error(f"FuseBench: the tables of what finished could not be written: see {folder}/aggregate.log")
            return
        drawn = fusebench("plots", "--tables", tables, "--out-dir", plots, "--report", settings, log=f"{folder}/plots.log")
        mark_outdated([*rules.aggregate.output, *rules.plots.output])
    except Exception as error:  # never hide the run's own failure behind this one
        logger.error(f"FuseBench: the tables of what finished could not be written: {type(error).__name__}: {error}")
        return
    logger.error(
        f"FuseBench: {summary.strip()}\n"
        + (f"Plots: {plots}\n" if drawn is not None else f"Plots could not be drawn: see {folder}/plots.log\n")
        + "Rerun the same command to retry the failed jobs; add --report report.html for the HTML report of "
        "these tables."
    )
