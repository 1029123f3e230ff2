"""Aggregate every result file into the tables a paper cites.

Outputs under ``tables/`` (each with its provenance: config hash, git commit, date, hardware):

* ``main.csv`` — tidy, one row per number: dataset, method, seed, task, metric, corruption,
  severity, value, status; ``main_stats.csv`` — per method and metric: mean, sample std, seed
  count ``n`` (of ``n_configured``), 95 % two-level bootstrap CI of the seed-mean (seeds and test
  items; also items only), best / not significantly worse with the Holm-adjusted bootstrap
  probability (:mod:`benchmark.report.statistics`); ``comparisons.csv`` — paired bootstrap
  differences between methods;
* ``main.md`` / ``main.tex`` — retrieval and detection tables (mean ± std, best in bold,
  methods not significantly worse than the best underlined / in italics);
* ``robustness.*`` — see :mod:`benchmark.report.robustness`;
* ``efficiency.*`` — two tables: cost (parameters, FLOPs per example, training throughput, peak
  memory) and wall time per stage (means over seeds);
* ``macros.tex`` — one ``\\newcommand`` per reported number; ``provenance.json``.

After a failed run the workflow still writes these tables, from every result that exists
(:func:`read_expected`, ``fusebench aggregate --expected``): each missing evaluation, robustness
or reference result becomes rows with status ``failed: <first line of the error> (log: <path>)``
— the error of the first job of its chain whose output is missing (``not run: …`` when that job
never started) — so a failure is a row, not a gap. The seeds column then reads
succeeded/configured (``2/3``) and a mean over fewer seeds than configured carries a dagger (†)
and a footnote. The expected-results file is JSON, written by the workflow and documented where it is
built (:mod:`benchmark.workflow.expected`): every evaluation, robustness and reference job of the run,
each with the jobs it depends on in run order and the file whose existence means it succeeded.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.errors import ConfigError, DataFileError
from benchmark.io import read_json, write_json, write_text
from benchmark.metrics.bootstrap import RESAMPLES
from benchmark.numerics import summary as numeric_summary
from benchmark.paths import TABLES
from benchmark.provenance import git_state
from benchmark.report.tables import (
    csv_with_footer,
    footer_text,
    latex_table,
    macro_name,
    macros_file,
    number,
)
from benchmark.results import ROW_COLUMNS, items_path
from benchmark.results import row as result_row
from benchmark.tasks import get_task, reference_rows_of_all_tasks

SIGNIFICANCE_NOTE = (
    "Best method per column in bold; methods not significantly worse than it {mark}: their two-sided "
    "bootstrap probability (twice the share of replicates in which the method is not behind the best), "
    "Holm-adjusted over the column, exceeds 0.05. Two-level paired bootstrap, {resamples:,} replicates, "
    "resampling seeds and then test units ({unit}); a bootstrap probability is not a p-value."
)
"""Caption sentence of the main tables (:mod:`benchmark.report.statistics` defines each quantity)."""
CI_HEADING = "95 % two-level bootstrap interval of the seed-mean (seeds, then test units — {unit} — resampled):"


def significance_note(task: str, mark: str) -> str:
    """:data:`SIGNIFICANCE_NOTE` for ``task``'s tables, its marks named by ``mark``."""
    return SIGNIFICANCE_NOTE.format(mark=mark, resamples=RESAMPLES, unit=get_task(task).bootstrap_unit or "a test item")


FAILED = "failed: "
"""Status prefix of the rows of a result whose job (or a job before it) failed, then the error and log."""
NOT_RUN = "not run: "
"""Status prefix of the rows of a result whose job never started (the run stopped first)."""
MISSING = (FAILED, NOT_RUN)
ERROR_LINE = "fusebench: "
"""How a job's error line starts (``fusebench: <kind>: <message>``, see :mod:`benchmark.errors`)."""
LOG_TAIL_BYTES = 65536
"""How much of the end of a log is searched for its error line."""
STATUS_CHARS = 300
"""Longest error line kept in a status (longer ones end with …)."""
PARTIAL_CELL = "†"
PARTIAL_NOTE = (
    "† mean over fewer seeds than configured (the seeds column reads succeeded/configured); "
    "the missing seeds are listed below."
)


@dataclass
class MissingResults:
    """What a failed run left out: rows standing for each missing result, and the jobs to blame."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    """``main.csv`` rows of missing evaluations and references (value empty, status failed / not run)."""
    robustness_rows: list[dict[str, Any]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Failed job (e.g. ``pretrain scenes clip seed 1``) → its status."""
    not_run: list[str] = field(default_factory=list)
    """Jobs that never started although results depend on them."""

    def summary(self, tables: Path | None = None) -> str:
        """A few lines for the end of a failed run: each failed job with its error and log."""
        if not self.failed and not self.not_run:
            return "no result is missing"
        lines = []
        if self.failed:
            count = len(self.failed)
            lines.append(f"{count} job{'s' if count > 1 else ''} failed:")
            lines += [f"  {job}: {status.removeprefix(FAILED)}" for job, status in self.failed.items()]
        if self.not_run:
            count = len(self.not_run)
            shown = ", ".join(self.not_run[:5]) + (", …" if count > 5 else "")
            lines.append(
                f"{count} job{'s' if count > 1 else ''} did not run (the run stopped first; "
                f"--keep-going runs every job it can): {shown}"
            )
        if tables is not None:
            lines.append(f"Tables of everything that finished, failed cells marked: {tables / 'main.md'}")
        return "\n".join(lines)


def error_line(log: Path) -> str:
    """The first line of the error a job's log ends with: its last ``fusebench: …`` line, without the prefix.

    Every stage ends a known failure with ``fusebench: <kind>: <message>`` and a crash with its
    traceback then ``fusebench: <stage> failed: <Exception>: <message>`` (:func:`benchmark.cli.main`);
    a job killed from outside has neither, so the log's last line is quoted instead."""
    with open(log, "rb") as handle:
        handle.seek(max(0, handle.seek(0, 2) - LOG_TAIL_BYTES))
        lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    line = next((line for line in reversed(lines) if line.startswith(ERROR_LINE)), None)
    if line is not None:
        text = line.removeprefix(ERROR_LINE)
    elif lines:
        text = f"no error line (killed?); the log ends: {lines[-1]}"
    else:
        text = "empty log (killed before it wrote anything?)"
    return text if len(text) <= STATUS_CHARS else text[: STATUS_CHARS - 1] + "…"


def job_label(job: dict[str, Any]) -> str:
    """``pretrain scenes contrastive_clip seed 1``: the rule and its wildcards."""
    values = [f"seed {v}" if k == "seed" else str(v) for k, v in job["wildcards"].items()]
    return " ".join([job["rule"], *values])


def _blame(chain: list[dict[str, Any]], missing: MissingResults) -> str:
    """The status of a missing result: the error of the first job of ``chain`` whose output is missing."""
    job = next((job for job in chain if not Path(job["output"]).is_file()), chain[-1])
    label, log = job_label(job), Path(job["log"])
    if not log.is_file():
        if label not in missing.not_run:
            missing.not_run.append(label)
        return f"{NOT_RUN}{label} did not start before the run stopped"
    status = f"{FAILED}{error_line(log)} (log: {log})"
    missing.failed.setdefault(label, status)
    return status


def read_expected(path: Path) -> tuple[list[Path], list[Path], list[Path], MissingResults]:
    """(evaluation and reference result files, robustness files, training files that exist, what is missing)
    from an expected-results file (its format: :mod:`benchmark.workflow.expected`)."""
    from benchmark.tasks.robustness import grid

    expected = read_json(path, what="expected-results file")
    results: list[Path] = []
    robustness: list[Path] = []
    missing = MissingResults()
    try:
        for cell in expected["cells"]:
            task = get_task(cell["task"])
            for key, files in (("evaluate", results), ("robustness", robustness)):
                job = cell[key]
                if Path(job["output"]).is_file():
                    files.append(Path(job["output"]))
                    continue
                status = _blame([*cell["upstream"], job], missing)
                spec = job["spec"]
                if key == "evaluate":
                    missing.rows += [result_row(spec, spec["method"], m, None, status) for m in task.metric_names(spec)]
                else:
                    names = task.metric_names(spec["task_settings"])
                    missing.robustness_rows += [
                        result_row(spec, spec["method"], m, None, status, corruption, severity)
                        for corruption, severity in [("none", 0), *grid(spec["robustness"])]
                        for m in names
                    ]
        for reference in expected["references"]:
            job = reference["reference"]
            if Path(job["output"]).is_file():
                results.append(Path(job["output"]))
                continue
            status = _blame([*reference["upstream"], job], missing)
            spec = {**job["spec"], "seed": None}
            task = get_task(reference["task"])
            missing.rows += [
                result_row(spec, name, m, None, status) for name in task.references for m in task.table_metrics
            ]
        training = [Path(p) for p in expected["training"] if Path(p).is_file()]
    except (KeyError, TypeError) as exc:
        raise DataFileError(f"expected-results file {path} is malformed ({type(exc).__name__}: {exc})") from None
    return results, robustness, training, missing


def failure_notes(frame: pd.DataFrame) -> dict[tuple[str, str], list[str]]:
    """(dataset, task) → one line per failed or not-run method and seed: ``- clip, seed 1: failed: … (log: …)``."""
    rows = frame[frame["status"].str.startswith(MISSING)]
    notes: dict[tuple[str, str], list[str]] = {}
    for (dataset, task, method, seed, status), _ in rows.groupby(
        ["dataset", "task", "method", "seed", "status"], sort=True, dropna=False
    ):
        who = method if pd.isna(seed) else f"{method}, seed {seed}"
        notes.setdefault((dataset, task), []).append(f"- {who}: {status}")
    return notes


def hardware_of(record: dict[str, Any]) -> str:
    """What computed a result, from its provenance: ``cpu: <model> (numerics portable: torch AVX2, MKL 2024.2
    (CBWR COMPATIBLE), oneDNN off, 1 thread)``, or on CUDA the GPU, CUDA / cuDNN versions and precision
    settings, then the CPU path. Results from before the numeric path was recorded give the model alone."""
    prov = record.get("provenance", {})
    device = prov.get("device", {})
    path = f" ({numeric_summary(prov['numerics'])})" if prov.get("numerics") else ""
    if device.get("type") == "cuda":
        versions = ", ".join(
            f"{label} {device[key]}" for key, label in (("cuda", "CUDA"), ("cudnn", "cuDNN")) if device.get(key)
        )
        tf32 = device.get("tf32_matmul")
        settings = [versions, device.get("precision", ""), "" if tf32 is None else f"TF32 {'on' if tf32 else 'off'}"]
        detail = ", ".join(s for s in settings if s)
        return f"cuda: {device.get('name', 'unknown GPU')}" + (f" ({detail})" if detail else "") + path
    return f"cpu: {prov.get('host', {}).get('cpu', 'unknown')}{path}"


def load_results(paths: Iterable[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    """(path, record) of every result file, each read once."""
    return [(Path(path), read_json(path, what="result file")) for path in paths]


def collect_rows(
    results: Iterable[tuple[Path, dict[str, Any]]],
    hardware: set[str] | None = None,
    missing: Iterable[dict[str, Any]] = (),
) -> pd.DataFrame:
    """Every row of every result record, checked for the tidy columns, and the ``missing`` results' rows;
    adds each record's hardware to ``hardware``."""
    rows: list[dict[str, Any]] = list(missing)
    references = reference_rows_of_all_tasks()
    for path, record in results:
        file_rows = record.get("rows") if isinstance(record, dict) else None
        if not isinstance(file_rows, list):
            raise DataFileError(f"result file {path} has no 'rows' list")
        if hardware is not None and file_rows and file_rows[0].get("method") not in references:
            hardware.add(hardware_of(record))
        for row in file_rows:
            missing = [c for c in ROW_COLUMNS if c not in row and c != "status"]
            if missing:
                raise DataFileError(f"result file {path} has a row without {missing}: {row}")
            rows.append({**{c: row.get(c) for c in ROW_COLUMNS}, "status": row.get("status", "ok")})
    frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    frame["seed"] = frame["seed"].astype("Int64")
    frame["value"] = frame["value"].astype(float)
    return frame.sort_values(
        ["dataset", "task", "method", "metric", "corruption", "severity", "seed"], kind="stable"
    ).reset_index(drop=True)


def _method_order(methods: Iterable[str]) -> list[str]:
    methods = sorted(set(methods))
    references = reference_rows_of_all_tasks()
    return [m for m in methods if m not in references] + [m for m in references if m in methods]


def _cell(stat: pd.Series, scale: float, with_std: bool = True) -> str:
    if np.isnan(stat["mean"]):
        status = str(stat["status"])
        return "failed" if status.startswith(FAILED) else "not run" if status.startswith(NOT_RUN) else "n/a"
    mark = PARTIAL_CELL if _fewer_seeds(stat) else ""
    if np.isnan(stat["std"]) or not with_std:
        return number(stat["mean"], scale) + mark
    return f"{number(stat['mean'], scale)} ± {number(stat['std'], scale)}{mark}"


def _fewer_seeds(stat: pd.Series) -> bool:
    """A learned method's mean over fewer seeds than configured (some failed or did not run)."""
    return not stat["reference"] and 0 < stat["n"] < stat.get("n_configured", stat["n"])


def _seeds_cell(rows: pd.DataFrame, zero_shot: bool = False) -> str:
    """Seeds behind a method's cells: ``3``, ``2/3`` (succeeded/configured), ``—`` for references and n/a;
    a published model evaluated without training says ``zero-shot`` (its seeds only re-run the evaluation),
    ``zero-shot (2/3)`` when some of them failed."""
    succeeded = int(rows["n"].max())
    configured = int(rows["n_configured"].max()) if "n_configured" in rows else succeeded
    if zero_shot:
        return "zero-shot" if succeeded == configured else f"zero-shot ({succeeded}/{configured})"
    if rows["reference"].any() or configured == 0:
        return "—"
    return str(succeeded) if succeeded == configured else f"{succeeded}/{configured}"


def _task_tables(
    stats: pd.DataFrame, dataset: str, task: str, zero_shot: frozenset[str] = frozenset()
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """(cells, best mask, not-worse mask, CI cells, n/a notes) for one (dataset, task).

    Failed and not-run results are not n/a: :func:`failure_notes` lists them."""
    block = stats[(stats["dataset"] == dataset) & (stats["task"] == task)]
    metrics = [m for m in get_task(task).table_metrics if m in set(block["metric"])]
    scale = 100.0 if get_task(task).percent else 1.0
    cells, best, worse, ci, notes = [], [], [], [], []
    for method in _method_order(block["method"]):
        rows = block[block["method"] == method].set_index("metric")
        cells.append(
            [
                method,
                _seeds_cell(rows, method in zero_shot),
                *[_cell(rows.loc[m], scale) if m in rows.index else "" for m in metrics],
            ]
        )
        best.append([False, False, *[bool(rows.loc[m, "best"]) if m in rows.index else False for m in metrics]])
        worse.append(
            [
                False,
                False,
                *[
                    bool(rows.loc[m, "not_worse_than_best"]) and not bool(rows.loc[m, "best"])
                    if m in rows.index
                    else False
                    for m in metrics
                ],
            ]
        )
        if not rows["reference"].any():
            ci.append(
                [
                    method,
                    *[
                        f"[{number(rows.loc[m, 'ci_low'], scale)}, {number(rows.loc[m, 'ci_high'], scale)}]"
                        if m in rows.index and not np.isnan(rows.loc[m, "ci_low"])
                        else "n/a"
                        for m in metrics
                    ],
                ]
            )
        shown = rows[rows.index.isin(metrics)]
        notes.extend(
            f"- {method}: {s}" for s in sorted({s for s in shown["status"] if s != "ok" and not s.startswith(MISSING)})
        )
    header = ["method", "seeds", *metrics]
    return (
        pd.DataFrame(cells, columns=header),
        pd.DataFrame(best, columns=header),
        pd.DataFrame(worse, columns=header),
        pd.DataFrame(ci, columns=["method", *metrics]),
        notes,
    )


def _has_partial_cells(cells: pd.DataFrame) -> bool:
    return bool(cells.iloc[:, 2:].apply(lambda column: column.str.endswith(PARTIAL_CELL)).to_numpy().any())


def evaluation_counts(results: list[tuple[Path, dict[str, Any]]]) -> dict[tuple[str, str], str]:
    """Per (dataset, task), what its test numbers are computed on, from the evaluation protocols, as the task
    phrases them (``Task.protocol_counts``)."""
    found: dict[tuple[str, str], set[str]] = {}
    for _, record in results:
        spec, protocol = record.get("spec", {}), record.get("protocol") or {}
        if spec.get("stage") != "evaluate" or not protocol:
            continue
        text = get_task(spec["task"]).protocol_counts(protocol)
        if text:
            found.setdefault((spec["dataset"], spec["task"]), set()).add(text)
    return {key: "Computed on " + " / ".join(sorted(texts)) + "." for key, texts in found.items()}


def training_note(training: list[dict[str, Any]], dataset: str, task: str) -> str:
    """How the scored checkpoints of (``dataset``, ``task``) were trained and chosen: the pretraining budget
    and the val selection rule."""
    from benchmark.report.curves import budget_text

    rules = {
        (r.get("train") or {}).get("validation", {}).get("rule")
        for r in training
        if r.get("spec", {}).get("stage") == "finetune"
        and (r["spec"].get("dataset"), r["spec"].get("task")) == (dataset, task)
        and (r.get("train") or {}).get("validation")
    }
    parts = [budget_text(training)]
    if rules:
        parts.append(f"Fine-tuned checkpoint chosen on val ({'; '.join(sorted(r for r in rules if r))}; selection.md).")
    return " ".join(p for p in parts if p)


def main_markdown(
    stats: pd.DataFrame,
    provenance: dict[str, Any],
    failures: dict[tuple[str, str], list[str]] | None = None,
    zero_shot: frozenset[str] = frozenset(),
    captions: dict[tuple[str, str], str] | None = None,
) -> str:
    """main.md: one table per (dataset, task); ``failures`` (:func:`failure_notes`) lists missing results;
    ``zero_shot`` methods (published models evaluated without training) are marked in the seeds column;
    ``captions`` (what a table is computed on, how it was trained) are added to its caption."""
    failures = failures or {}
    captions = captions or {}
    parts = ["# FuseBench results", ""]
    if failures:
        parts += [
            "**Partial results: some jobs failed or did not run.** Their results are marked below and in main.csv "
            "(status `failed: …` with the error and its log); rerun the workflow to retry them.",
            "",
        ]
    for (dataset, task), block in stats.groupby(["dataset", "task"], sort=True):
        cells, best, worse, ci, notes = _task_tables(stats, dataset, task, zero_shot)
        learned = block[~block["reference"]]
        configured = learned["n_configured"] if "n_configured" in learned else learned["n"]
        seed_counts = sorted({int(n) for n in configured if n > 0})
        unit = " (%)" if get_task(task).percent else ""
        marked = cells.copy()
        for i in range(len(marked)):
            for j in range(2, marked.shape[1]):
                if best.iloc[i, j]:
                    marked.iloc[i, j] = f"**{marked.iloc[i, j]}**"
                elif worse.iloc[i, j]:
                    marked.iloc[i, j] = f"_{marked.iloc[i, j]}_"
        parts += [
            f"## {dataset} — {task}",
            "",
            f"Mean ± sample std over {' or '.join(map(str, seed_counts)) or 0} seed(s){unit}; "
            + get_task(task).reference_note()
            + " "
            + significance_note(task, "in italics")
            + (" " + captions[(dataset, task)] if (dataset, task) in captions else ""),
            "",
            marked.to_markdown(index=False),
            "",
        ]
        if _has_partial_cells(cells):
            parts += [PARTIAL_NOTE, ""]
        if notes:
            parts += ["n/a:", *notes, ""]
        if failures.get((dataset, task)):
            parts += ["Failed or not run:", *failures[(dataset, task)], ""]
        if not ci.empty:
            heading = CI_HEADING.format(unit=get_task(task).bootstrap_unit or "a test item")
            parts += [heading, "", ci.to_markdown(index=False), ""]
    parts += ["---", footer_text(provenance)]
    return "\n".join(parts) + "\n"


def main_latex(
    stats: pd.DataFrame,
    provenance: dict[str, Any],
    zero_shot: frozenset[str] = frozenset(),
    captions: dict[tuple[str, str], str] | None = None,
) -> str:
    captions = captions or {}
    tables = []
    for (dataset, task), _ in stats.groupby(["dataset", "task"], sort=True):
        cells, best, worse, _, _ = _task_tables(stats, dataset, task, zero_shot)
        caption = (
            f"{task.capitalize()} on {dataset}: mean $\\pm$ sample std over seeds"
            + (" (%)" if get_task(task).percent else "")
            + ". "
            + significance_note(task, "underlined")
            + (" " + captions[(dataset, task)] if (dataset, task) in captions else "")
            + (" " + PARTIAL_NOTE.split(";")[0] + "." if _has_partial_cells(cells) else "")
        )
        tables.append(latex_table(cells, caption, f"tab:{dataset}-{task}", provenance, best, worse))
    return "\n".join(tables)


def efficiency_frame(training: list[dict[str, Any]], evaluations: list[dict[str, Any]]) -> pd.DataFrame:
    """Per method (mean over seeds): model size, FLOPs, throughput, memory, wall time per stage."""
    rows: dict[str, dict[str, list[float]]] = {}

    def add(method: str, key: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not (isinstance(value, float) and np.isnan(value)):
            rows.setdefault(method, {}).setdefault(key, []).append(float(value))

    for record in training:
        spec = record.get("spec", {})
        method, stage = spec.get("method"), spec.get("stage")
        if not method:
            continue
        if stage == "pretrain":
            for key, value in record.get("efficiency", {}).items():
                add(method, key, value)
            train = record.get("train", {})
            add(method, "train_samples_per_s", train.get("samples_per_s"))
            add(method, "peak_memory_mb", train.get("peak_memory_mb"))
        if record.get("status") != "not applicable":
            add(
                method,
                f"wall_s_{stage}" + (f"_{spec['task']}" if spec.get("task") else ""),
                record.get("provenance", {}).get("wall_time_s"),
            )
    for record in evaluations:
        spec = record.get("spec", {})
        if spec.get("method") and record.get("status") != "not applicable":
            add(
                spec["method"],
                f"wall_s_{spec['stage']}_{spec['task']}",
                record.get("provenance", {}).get("wall_time_s"),
            )
    frame = pd.DataFrame(
        [{"method": m, **{k: float(np.mean(v)) for k, v in values.items()}} for m, values in sorted(rows.items())]
    )
    return frame


def efficiency_columns() -> dict[str, tuple[str, float, int]]:
    """Efficiency key → (column label, scale, digits): size, each task's FLOPs per example, training cost."""
    from benchmark.tasks import task_names

    per_task = [get_task(t).efficiency for t in task_names()]
    return {
        "parameters": ("params (M)", 1e-6, 2),
        **{key: (label, 1e-6, 1) for key, label in (e for e in per_task if e)},
        "flops_pretrain_forward_per_sample": ("MFLOPs / sample (pretrain fwd)", 1e-6, 1),
        "train_samples_per_s": ("train samples/s", 1.0, 0),
        "peak_memory_mb": ("peak memory (MB)", 1.0, 0),
    }


STAGE_ORDER = ("pretrain", "finetune", "evaluate", "robustness")
"""Order of the wall-time columns: the order the stages run in."""


def _wall_time_key(key: str) -> tuple[int, str]:
    stage, _, task = key.removeprefix("wall_s_").partition("_")
    return (STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER), f"{stage} {task}")


def efficiency_tables(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cost, time): the chosen cost columns scaled, and wall time per stage in seconds.

    Two tables rather than one: side by side they make 14 columns, which a page can only show
    scaled down to unreadable type. Time columns are named ``<stage>\\n<task>`` (two header lines
    in LaTeX, :func:`benchmark.report.tables.latex_table`; one in Markdown)."""
    if frame.empty:
        return frame, frame
    cost = pd.DataFrame({"method": frame["method"]})
    for key, (label, scale, digits) in efficiency_columns().items():
        if key in frame:
            cost[label] = [number(v, scale, digits) for v in frame[key]]
    time = pd.DataFrame({"method": frame["method"]})
    for key in sorted((k for k in frame.columns if k.startswith("wall_s_")), key=_wall_time_key):
        stage, _, task = key.removeprefix("wall_s_").partition("_")
        time["\n".join(p for p in (stage, task.replace("_", " ")) if p)] = [number(v, 1.0, 0) for v in frame[key]]
    return cost, time


def _one_line(table: pd.DataFrame) -> pd.DataFrame:
    return table.rename(columns=lambda c: c.replace("\n", " "))


def _two_lines(table: pd.DataFrame) -> pd.DataFrame:
    """Labels over two lines: before their parenthesis (``MFLOPs / pair`` over ``(retrieval)``), else at
    their last space (``train`` over ``samples/s``); ``method`` stays."""

    def broken(label: str) -> str:
        if label == "method" or " " not in label:
            return label
        return label.replace(" (", "\n(", 1) if " (" in label else "\n".join(label.rsplit(" ", 1))

    return table.rename(columns=broken)


EFFICIENCY_CAPTIONS = (
    "Cost per method (means over seeds): parameters, forward FLOPs per example (a multiply–add = 2 FLOPs), "
    "training throughput and peak memory (process RSS on CPU, allocated GPU memory on CUDA).",
    "Wall time per stage and task in seconds (means over seeds).",
)


def efficiency_markdown(cost: pd.DataFrame, time: pd.DataFrame, provenance: dict[str, Any]) -> str:
    parts = [
        "# FuseBench efficiency",
        "",
        "Means over seeds; FLOPs counted by torch.utils.flop_counter (a multiply–add = 2 FLOPs); peak memory is "
        "the process RSS on CPU, allocated GPU memory on CUDA.",
        "",
    ]
    if not cost.empty:
        parts += ["## Cost", "", _one_line(cost).to_markdown(index=False), ""]
    if len(time.columns) > 1:
        parts += ["## Wall time per stage (s)", "", _one_line(time).to_markdown(index=False), ""]
    return "\n".join(parts) + f"\n---\n{footer_text(provenance)}\n"


def efficiency_latex(cost: pd.DataFrame, time: pd.DataFrame, provenance: dict[str, Any]) -> str:
    """``tab:efficiency`` (cost) and ``tab:efficiency-time`` (wall time per stage)."""
    if cost.empty:
        return ""
    tables = [latex_table(_two_lines(cost), EFFICIENCY_CAPTIONS[0], "tab:efficiency", provenance)]
    if len(time.columns) > 1:
        tables.append(latex_table(time, EFFICIENCY_CAPTIONS[1], "tab:efficiency-time", provenance))
    return "\n".join(tables)


def macro_definitions(
    stats: pd.DataFrame, robustness: pd.DataFrame | None, efficiency: pd.DataFrame
) -> list[tuple[str, str]]:
    """(name, displayed value) for every number in the tables."""
    definitions: list[tuple[str, str]] = []
    for _, row in stats.sort_values(["dataset", "task", "method", "metric"]).iterrows():
        if pd.isna(row["mean"]):
            continue  # undefined or not applicable: nothing a paper could cite
        scale = 100.0 if get_task(row["task"]).percent else 1.0
        base = (row["method"], get_task(row["task"]).abbreviation, row["metric"])
        prefix = (row["dataset"],) if stats["dataset"].nunique() > 1 else ()
        definitions.append((macro_name(*prefix, *base, "mean"), number(row["mean"], scale)))
        if not row["reference"]:
            definitions.append((macro_name(*prefix, *base, "std"), number(row["std"], scale)))
            definitions.append((macro_name(*prefix, *base, "ci low"), number(row["ci_low"], scale)))
            definitions.append((macro_name(*prefix, *base, "ci high"), number(row["ci_high"], scale)))
            definitions.append((macro_name(*prefix, *base, "seeds"), str(int(row["n"]))))
    if robustness is not None and not robustness.empty:
        summary = (
            robustness.groupby(["dataset", "task", "method", "family", "score"])["value"]
            .agg(["mean", "std"])
            .reset_index()
        )
        for _, row in summary.iterrows():
            prefix = (row["dataset"],) if summary["dataset"].nunique() > 1 else ()
            base = (
                *prefix,
                row["method"],
                get_task(row["task"]).abbreviation,
                "robust",
                row["family"],
                row["score"],
            )
            definitions.append((macro_name(*base, "mean"), number(row["mean"], 1.0, 3)))
            definitions.append((macro_name(*base, "std"), number(row["std"], 1.0, 3)))
    columns = efficiency_columns()
    for _, row in efficiency.iterrows():
        for key, (_, scale, digits) in columns.items():
            if key in efficiency and not pd.isna(row.get(key)):
                definitions.append((macro_name(row["method"], "eff", key), number(row[key], scale, digits)))
    return definitions


def source_parts(note: dict[str, Any]) -> list[str]:
    """A data build's note (:func:`benchmark.stages.dataset_note`) as footer phrases: each file read
    (sha256 prefix), then each split's subset."""
    parts = [f"{Path(path).name} sha256 {digest[:12]}" for path, digest in sorted(note.get("sources", {}).items())]
    for split, cut in sorted(note.get("subset", {}).items()):
        official = f", official {cut['official_images']:,}" if cut.get("official_images") else ""
        parts.append(f"subset {split} {cut['images']} of {cut['of_images']} images{official}")
    return parts


def data_footer(results: list[tuple[Path, dict[str, Any]]]) -> str:
    """Per dataset read from official files: its sources (sha256 prefix), subset and leakage guard; for a
    dataset pretrained on another, that dataset's files and subset too (``pretrained on coco [...]``)."""
    notes: dict[str, str] = {}
    for _, record in results:
        dataset = record.get("spec", {}).get("dataset")
        protocol = record.get("protocol", {})
        note = protocol.get("dataset")
        if not dataset or not note or dataset in notes:
            continue
        pretraining = protocol.get("pretraining_data") or {}
        parts = []
        if pretraining.get("dataset", dataset) != dataset:
            read = source_parts(pretraining)
            parts.append(f"pretrained on {pretraining['dataset']}" + (f" [{'; '.join(read)}]" if read else ""))
        parts += source_parts(note)
        guard = pretraining.get("leakage_guard") or note.get("leakage_guard") or {}
        if guard:
            parts.append(
                f"{guard['removed_train_images']} train images removed (evaluation images of "
                f"{', '.join(guard['excluded_evaluation_images_of'])})"
            )
        notes[dataset] = f"{dataset} ({'; '.join(parts)})"
    return "; ".join(notes[d] for d in sorted(notes))


def zero_shot_methods(results: list[tuple[Path, dict[str, Any]]]) -> frozenset[str]:
    """Methods evaluated from published weights without training (their spec says ``zero_shot``)."""
    return frozenset(r["spec"]["method"] for _, r in results if r.get("spec", {}).get("zero_shot"))


def weights_footer(results: list[tuple[Path, dict[str, Any]]]) -> str:
    """Per method built from external weights: zero-shot or not, each source and its files' sha256 (prefix)."""
    notes: dict[str, str] = {}
    for _, record in results:
        method = record.get("spec", {}).get("method")
        protocol = record.get("protocol", {})
        weights = protocol.get("weights")
        if not method or not weights or method in notes:
            continue
        parts = ["zero-shot"] if protocol.get("training") == "zero-shot" else []
        for component, source in sorted(weights.items()):
            files = ", ".join(
                f"{Path(name).name} sha256 {digest[:12]}" for name, digest in sorted(source.get("files", {}).items())
            )
            parts.append(
                f"{component} from {source.get('init', source.get('source'))}" + (f" ({files})" if files else "")
            )
        notes[method] = f"{method} ({'; '.join(parts)})"
    return "; ".join(notes[m] for m in sorted(notes))


def run_aggregate(
    result_files: list[Path],
    out_dir: Path,
    config_hash_value: str,
    robustness_files: list[Path] | None = None,
    report: dict[str, Any] | None = None,
    training_files: list[Path] | None = None,
    missing: MissingResults | None = None,
) -> pd.DataFrame:
    """Write every table under ``out_dir``; return the tidy frame of clean results.

    ``missing`` (:func:`read_expected`, after a failed run) adds the rows of the results that
    are not there, so the tables show them as failed instead of leaving them out."""
    from benchmark.report.compositional import compositional_markdown, compositional_table
    from benchmark.report.curves import learning_curves, selection_markdown
    from benchmark.report.statistics import load_items, method_statistics

    report = report or {}
    missing = missing or MissingResults()
    hardware: set[str] = set()
    results = load_results(result_files)
    robustness_results = load_results(robustness_files or [])
    frame = collect_rows(results, hardware, missing.rows)
    robustness_frame = (
        collect_rows(robustness_results, hardware, missing.robustness_rows)
        if robustness_results or missing.robustness_rows
        else None
    )
    git = git_state()
    provenance = {
        "config hash": config_hash_value,
        "git commit": git["commit"][:12] + ("+dirty" if git.get("dirty") else ""),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "hardware": "; ".join(sorted(hardware)) or "unknown",
    }
    if missing.failed or missing.not_run:
        provenance["partial"] = f"{len(missing.failed)} job(s) failed, {len(missing.not_run)} did not run"
    data = data_footer(results)
    if data:
        provenance["data"] = data
    weights = weights_footer(results)
    if weights:
        provenance["weights"] = weights
    zero_shot = zero_shot_methods(results)
    by_seed: dict[tuple[str, str, str], list[tuple[int, Any]]] = {}
    evaluations = []
    for path, record in results:
        spec = record.get("spec", {})
        if spec.get("stage") == "evaluate":
            evaluations.append(record)
            items_file = items_path(path)
            if not items_file.is_file():
                raise DataFileError(f"per-item records missing for {path}: expected {items_file}")
            by_seed.setdefault((spec["dataset"], spec["task"], spec["method"]), []).append(
                (int(spec.get("seed") or 0), load_items(items_file, spec["task"]))
            )
    # ordered by seed: the bootstrap resamples methods with as many seeds in pairs, seed k with seed k
    items = {key: [i for _, i in sorted(runs, key=lambda run: run[0])] for key, runs in by_seed.items()}
    stats, comparisons = method_statistics(frame, items, reference_rows_of_all_tasks())
    training = [read_json(p, what="training result") for p in training_files or []]
    evaluations += [record for _, record in robustness_results]
    efficiency = efficiency_frame(training, evaluations)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / TABLES.main_csv, csv_with_footer(frame, provenance))
    write_text(out_dir / TABLES.main_stats, csv_with_footer(stats, provenance))
    write_text(out_dir / TABLES.comparisons, csv_with_footer(comparisons, provenance))
    captions = {key: f"{text} {training_note(training, *key)}" for key, text in evaluation_counts(results).items()}
    write_text(out_dir / TABLES.main_md, main_markdown(stats, provenance, failure_notes(frame), zero_shot, captions))
    composition = labelled_zero_shot(compositional_table(frame), zero_shot)
    write_text(out_dir / TABLES.compositional, compositional_markdown(composition, provenance))
    write_text(out_dir / TABLES.main_tex, main_latex(stats, provenance, zero_shot, captions))
    write_text(out_dir / TABLES.learning_curves, csv_with_footer(learning_curves(training), provenance))
    write_text(out_dir / TABLES.selection, selection_markdown(training, footer_text(provenance)))
    scores = None
    if robustness_frame is not None:
        from benchmark.report.robustness import load_cell_items

        cell_items = load_cell_items(robustness_results)  # per-item records per cell: the intervals
        scores = write_robustness(robustness_frame, out_dir, report, provenance, zero_shot, cell_items)
    write_text(out_dir / TABLES.efficiency_csv, csv_with_footer(efficiency, provenance))
    cost, time = efficiency_tables(efficiency)
    write_text(out_dir / TABLES.efficiency_md, efficiency_markdown(cost, time, provenance))
    write_text(out_dir / TABLES.efficiency_tex, efficiency_latex(cost, time, provenance))
    write_text(out_dir / TABLES.macros, macros_file(macro_definitions(stats, scores, efficiency), provenance))
    write_json(out_dir / TABLES.provenance, provenance)
    return frame


def labelled_zero_shot(frame: pd.DataFrame, zero_shot: frozenset[str], keep: str | None = None) -> pd.DataFrame:
    """``frame`` for display: each zero-shot method (a published model evaluated without training) named
    ``<method> (zero-shot)``, except ``keep`` (a name the table refers to, e.g. the reference method)."""
    if frame.empty or not zero_shot or "method" not in frame:
        return frame
    shown = frame.copy()
    shown["method"] = [f"{m} (zero-shot)" if m in zero_shot and m != keep else m for m in shown["method"]]
    return shown


def write_robustness(
    frame: pd.DataFrame,
    out_dir: Path,
    report: dict[str, Any],
    provenance: dict[str, Any],
    zero_shot: frozenset[str] = frozenset(),
    cell_items: dict[Any, Any] | None = None,
) -> pd.DataFrame:
    """robustness.csv (tidy grid), robustness_summary.csv, robustness_drops.csv, robustness.md/.tex; the
    Markdown and LaTeX tables mark zero-shot methods."""
    from benchmark.report.robustness import robustness_latex, robustness_markdown, summary_scores

    missing = [k for k in ("reference_method", "summary_metric") if k not in report]
    if missing:
        raise ConfigError(f"robustness tables need the report settings {missing} (stage spec 'report', --report)")
    reference, metrics = report["reference_method"], report["summary_metric"]
    scores, drops = summary_scores(frame, reference, metrics, cell_items)
    write_text(out_dir / TABLES.robustness_csv, csv_with_footer(frame, provenance))
    write_text(out_dir / TABLES.robustness_summary, csv_with_footer(scores, provenance))
    write_text(out_dir / TABLES.robustness_drops, csv_with_footer(drops, provenance))
    failed = [f"- {d} — {t}: {line[2:]}" for (d, t), lines in failure_notes(frame).items() for line in lines]
    if scores.empty:  # every robustness result failed: nothing to score
        markdown = "# FuseBench robustness\n\nNo scores: no robustness result was computed.\n"
        latex = f"% FuseBench robustness — {footer_text(provenance)}\n% no robustness result was computed\n"
    else:
        shown, shown_drops = (
            labelled_zero_shot(scores, zero_shot, reference),
            labelled_zero_shot(drops, zero_shot, reference),
        )
        markdown = robustness_markdown(shown, shown_drops, reference, report.get("max_images"))
        latex = robustness_latex(shown, reference, report.get("max_images"), provenance)
    write_text(
        out_dir / TABLES.robustness_md,
        markdown
        + ("\nFailed or not run (no scores):\n" + "\n".join(failed) + "\n" if failed else "")
        + f"\n---\n{footer_text(provenance)}\n",
    )
    write_text(out_dir / TABLES.robustness_tex, latex)
    return scores
