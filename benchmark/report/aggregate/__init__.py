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
* ``controls.md`` / ``.tex`` — each configured control pair: what differs between its rows and its paired
  differences (:mod:`benchmark.report.aggregate.controls`); the main tables' ``params (M)`` column and capacity
  sentence come from :mod:`benchmark.report.aggregate.capacity`;
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

from benchmark.report.aggregate.efficiency import efficiency_latex, efficiency_tables
from benchmark.report.aggregate.failures import PARTIAL_NOTE, MissingResults, error_line, read_expected
from benchmark.report.aggregate.footers import data_footer
from benchmark.report.aggregate.main_tables import main_markdown
from benchmark.report.aggregate.rows import hardware_of
from benchmark.report.aggregate.run import run_aggregate, write_robustness

__all__ = [
    "PARTIAL_NOTE",
    "MissingResults",
    "data_footer",
    "efficiency_latex",
    "efficiency_tables",
    "error_line",
    "hardware_of",
    "main_markdown",
    "read_expected",
    "run_aggregate",
    "write_robustness",
]
