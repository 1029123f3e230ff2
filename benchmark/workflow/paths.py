"""Every file of a run, once: the path templates of each job's outputs and log, the tables and the plots folder.

A :class:`RunLayout` holds the templates of one output folder (``output_dir``), with Snakemake's wildcards
(``{dataset}``, ``{task}``, ``{method}``, ``{seed}``, ``{tokenizer}``, ``{factor}``) left in them: the rules
use them as their ``output:`` and ``log:``, and Python code fills them with ``str.format``
(:mod:`benchmark.workflow.expected`). The file names come from :mod:`benchmark.paths`, where the stages and
the report read them.

Layout of ``output_dir``::

    <dataset>/data/ and data.result.json            the standard form (when generated) and its record
    <dataset>/tokenizer.json, tokenizers/<slug>.json
    <dataset>/pretrain/<method>/seed<seed>/          model.safetensors, result.json
    <dataset>/finetune/<task>/<method>/seed<seed>/   model.safetensors, result.json
    <dataset>/tuning/<method>/lr<factor>/pretrain/, …/finetune/<task>/   a pretraining trial, fine-tuned per task
    <dataset>/tuning/<method>/pretrain_choice.json, pretrain_chosen/model.safetensors
    <dataset>/tuning/<method>/finetune/<task>/lr<factor>/, …/choice.json   the fine-tuning trials of a task
    <dataset>/eval/<task>/<method>/seed<seed>.json   and .items.npz; references.json beside
    <dataset>/robustness/<task>/<method>/seed<seed>.json and .items.npz
    tables/, plots/
    logs/…                                           one log per job, mirroring the outputs
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.paths import (
    CHECKPOINT_FILE,
    DATA_RECORD_FILE,
    ITEMS_SUFFIX,
    TABLES,
    TRAINING_RECORD_FILE,
    TableFiles,
)

RESULT_SUFFIX = ".json"
"""An evaluation, robustness or reference job's result file ends so (its per-item records replace it)."""


def factor_label(factor: float) -> str:
    """A learning-rate factor as it appears in a trial's paths (``lr{factor}``): 0.5 → 0.5, 1.0 → 1, 2.0 → 2."""
    return f"{factor:g}"


def items_template(result: str) -> str:
    """The per-item records beside a result template: ``…/seed{seed}.json`` → ``…/seed{seed}.items.npz``
    (:func:`benchmark.results.items_path` on a path; kept a string so the template is not normalised)."""
    if not result.endswith(RESULT_SUFFIX):
        raise ValueError(f"not a result file: {result}")
    return result.removesuffix(RESULT_SUFFIX) + ITEMS_SUFFIX


@dataclass(frozen=True)
class TrainingFiles:
    """The folder a training job writes into (its ``--out``), its checkpoint, result record and log."""

    folder: str
    log: str

    @property
    def model(self) -> str:
        return f"{self.folder}/{CHECKPOINT_FILE}"

    @property
    def result(self) -> str:
        return f"{self.folder}/{TRAINING_RECORD_FILE}"


@dataclass(frozen=True)
class ResultFiles:
    """An evaluation or robustness job's result, its per-item records and its log."""

    result: str
    log: str

    @property
    def records(self) -> str:
        return items_template(self.result)


@dataclass(frozen=True)
class FileAndLog:
    """A job with one output file and its log."""

    output: str
    log: str


@dataclass(frozen=True)
class RunLayout:
    """The path templates of every file a run writes under ``out`` (``config["output_dir"]``)."""

    out: str

    def _at(self, path: str) -> str:
        return f"{self.out}/{path}"

    def _log(self, path: str) -> str:
        return f"{self.out}/logs/{path}.log"

    # -- data --
    @property
    def data_dir(self) -> str:
        """Where a generated dataset is built (an adapter may read another folder in place)."""
        return self._at("{dataset}/data")

    @property
    def data(self) -> FileAndLog:
        """The data job's record, beside :attr:`data_dir` (:func:`benchmark.paths.data_record_path`)."""
        return FileAndLog(self._at(f"{{dataset}}/{DATA_RECORD_FILE}"), self._log("{dataset}/data"))

    @property
    def tokenizer(self) -> FileAndLog:
        """The WordPiece tokenizer trained on a dataset's captions."""
        return FileAndLog(self._at("{dataset}/tokenizer.json"), self._log("{dataset}/tokenizer"))

    @property
    def pretrained_tokenizer(self) -> FileAndLog:
        """The own tokenizer of a pretrained text tower, by its slug (:func:`benchmark.config.tokenizer_slug`)."""
        return FileAndLog(self._at("tokenizers/{tokenizer}.json"), self._log("tokenizers/{tokenizer}"))

    # -- training --
    @property
    def pretrain(self) -> TrainingFiles:
        return TrainingFiles(
            self._at("{dataset}/pretrain/{method}/seed{seed}"), self._log("{dataset}/pretrain/{method}/seed{seed}")
        )

    @property
    def finetune(self) -> TrainingFiles:
        path = "{dataset}/finetune/{task}/{method}/seed{seed}"
        return TrainingFiles(self._at(path), self._log(path))

    # -- the learning-rate search: the pretraining factor, then each task's fine-tuning factor --
    @property
    def trial_pretrain(self) -> TrainingFiles:
        """A pretraining trial (``pretrain.lr`` × factor)."""
        path = "{dataset}/tuning/{method}/lr{factor}/pretrain"
        return TrainingFiles(self._at(path), self._log(path))

    @property
    def trial_pretrain_finetune(self) -> TrainingFiles:
        """A pretraining trial fine-tuned on a task at the configured rate: what measures the trial on val."""
        return TrainingFiles(
            self._at("{dataset}/tuning/{method}/lr{factor}/finetune/{task}"),
            self._log("{dataset}/tuning/{method}/lr{factor}/finetune_{task}"),
        )

    @property
    def pretrain_choice(self) -> FileAndLog:
        """A tuned method's pretraining choice, from its pretraining trials' fine-tuning results."""
        return FileAndLog(
            self._at("{dataset}/tuning/{method}/pretrain_choice.json"),
            self._log("{dataset}/tuning/{method}/select_pretrain"),
        )

    @property
    def pretrain_chosen(self) -> str:
        """The chosen pretraining trial's checkpoint (a copy), which the fine-tuning trials start from."""
        return self._at(f"{{dataset}}/tuning/{{method}}/pretrain_chosen/{CHECKPOINT_FILE}")

    @property
    def trial_finetune(self) -> TrainingFiles:
        """A fine-tuning trial of a task (``finetune.<task>.lr`` × factor) from :attr:`pretrain_chosen`."""
        path = "{dataset}/tuning/{method}/finetune/{task}/lr{factor}"
        return TrainingFiles(self._at(path), self._log(path))

    @property
    def finetune_choice(self) -> FileAndLog:
        """A tuned method's fine-tuning choice for a task (on the fine-tuning dataset), from its trials."""
        return FileAndLog(
            self._at("{dataset}/tuning/{method}/finetune/{task}/choice.json"),
            self._log("{dataset}/tuning/{method}/finetune/{task}/select"),
        )

    # -- evaluation --
    @property
    def evaluation(self) -> ResultFiles:
        path = "{dataset}/eval/{task}/{method}/seed{seed}"
        return ResultFiles(self._at(path + RESULT_SUFFIX), self._log(path))

    @property
    def robustness(self) -> ResultFiles:
        path = "{dataset}/robustness/{task}/{method}/seed{seed}"
        return ResultFiles(self._at(path + RESULT_SUFFIX), self._log(path))

    @property
    def reference(self) -> FileAndLog:
        path = "{dataset}/eval/{task}/references"
        return FileAndLog(self._at(path + RESULT_SUFFIX), self._log(path))

    # -- reports --
    @property
    def tables_dir(self) -> str:
        return self._at("tables")

    @property
    def tables(self) -> TableFiles:
        """Every table's path (``layout.tables.main_csv``); the names are :data:`benchmark.paths.TABLES`."""
        return TableFiles._make(f"{self.tables_dir}/{name}" for name in TABLES)

    @property
    def aggregate_log(self) -> str:
        return self._log("aggregate")

    @property
    def plots_dir(self) -> str:
        return self._at("plots")

    @property
    def plots_log(self) -> str:
        return self._log("plots")

    @property
    def paper_log(self) -> str:
        return self._log("paper")

    @property
    def partial_dir(self) -> str:
        """Where a failed run's ``onerror`` writes the expected-results file and its logs."""
        return self._at("logs/partial")
