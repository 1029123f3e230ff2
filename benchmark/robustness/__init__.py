"""The robustness grid: every task metric re-measured under each (corruption, severity) of the run
(:mod:`benchmark.robustness.grid`); the corruptions themselves are :mod:`benchmark.corruptions`, the tables
:mod:`benchmark.report.robustness`."""
