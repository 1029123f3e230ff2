"""The shell commands of the workflow's job rules, built once.

Every job is one call of the ``fusebench`` command (``python -m benchmark``), so any stage can be run by
hand. A command is a Snakemake template: ``{params.spec}``, ``{input.tokenizer}``, ``{log}``… are filled
per job by Snakemake. The template text itself is what Snakemake records as a rule's code (a changed
command re-runs the rule's jobs under ``--rerun-triggers code``), so these functions return exactly the
commands the rules have always had (``tests/test_workflow_package.py`` pins them).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

FUSEBENCH = "python -m benchmark -v"
"""The CLI as a job calls it: the checkout's package (``PYTHONPATH``, set by the workflow's shell prefix)."""

TRAINING_STAGES = ("pretrain", "finetune")


def training_command(stage: str, *, trial: bool = False) -> str:
    """The command of a ``pretrain`` or ``finetune`` job (rules pretrain, finetune) or of a learning-rate
    trial (``trial``: rules tune_pretrain, tune_finetune).

    A run's job takes the method's tuning choice when it has one (``{params.tuned}``: ``--tuned FILE`` or
    nothing), and a fine-tuning job its pretrained checkpoint when the method is pretrained
    (``{params.init}``: ``--init FILE`` or nothing). A trial is never tuned, and its fine-tuning always
    starts from its own trial's pretraining (``--init {input.init}``)."""
    if stage not in TRAINING_STAGES:
        raise ValueError(f"not a training stage: {stage!r} (one of {', '.join(TRAINING_STAGES)})")
    init = ("--init {input.init}" if trial else "{params.init}") if stage == "finetune" else None
    tuned = None if trial else "{params.tuned}"
    return _command(
        stage,
        "--spec {params.spec} --threads {threads} --processes {resources.processes}",
        "--data {params.data}",
        "--tokenizer {input.tokenizer}",
        init,
        tuned,
        "--out {params.folder}",
    )


def tune_select_command(stage: str) -> str:
    """The command of a ``tune_select_pretrain`` or ``tune_select_finetune`` job: the choice from the trials'
    fine-tuning results (``{input.trials}``); the pretraining choice also copies the chosen trial's checkpoint
    (``{input.pretrained}`` → ``{output.model}``)."""
    if stage not in TRAINING_STAGES:
        raise ValueError(f"not a training stage: {stage!r} (one of {', '.join(TRAINING_STAGES)})")
    chosen = "--pretrained {input.pretrained} --chosen-model {output.model}" if stage == "pretrain" else None
    return _command("tune-select", "{input.trials}", chosen, "--out {output.choice}")


EVALUATION_STAGES = ("evaluate", "robustness")


def evaluation_command(stage: str) -> str:
    """The command of an ``evaluate`` or ``robustness`` job: the tokenizer and the checkpoint are optional
    (``{params.tokenizer}``, ``{params.checkpoint}``: none for a zero-shot method)."""
    if stage not in EVALUATION_STAGES:
        raise ValueError(f"not an evaluation stage: {stage!r} (one of {', '.join(EVALUATION_STAGES)})")
    return _command(
        stage,
        "--spec {params.spec} --threads {threads} --data {params.data}",
        "{params.tokenizer} {params.checkpoint}",
        "--out {output.result}",
    )


def quoted_json(spec: dict[str, Any]) -> str:
    """A stage spec as a job takes it (``--spec``): canonical JSON (sorted keys), shell-quoted. Its text is the
    job's ``params.spec``: Snakemake re-runs a job whose spec text changes."""
    return shlex.quote(json.dumps(spec, sort_keys=True))


def _command(stage: str, *parts: str | None) -> str:
    """``python -m benchmark -v STAGE PARTS… 2> {log}`` (the job's log is its stderr)."""
    return " ".join([FUSEBENCH, stage, *(part for part in parts if part), "2> {log}"])
