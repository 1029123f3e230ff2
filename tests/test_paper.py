"""The paper cites numbers only through macros, and every macro it cites is defined (no pdflatex needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.errors import ConfigError
from benchmark.report.paper import build_paper, undefined_macros
from tests.helpers import REPO

PAPER = REPO / "paper" / "main.tex"


def test_undefined_macros_lists_cited_but_undefined_names() -> None:
    source = r"\newcommand{\fbLocal}{1} see \fbA and \fbB, \fbLocal, \fbA again; \textbf{x}"
    assert undefined_macros(source, r"\newcommand{\fbB}{2}") == [r"\fbA"]
    assert undefined_macros(source, r"\newcommand{\fbA}{1}\newcommand{\fbB}{2}") == []


def test_paper_cites_only_macros_the_reference_run_defines() -> None:
    source = PAPER.read_text()
    assert undefined_macros(source, "") != [], "the paper should cite numbers through \\fb macros"
    assert undefined_macros(source, (REPO / "results" / "reference" / "macros.tex").read_text()) == []


def test_paper_build_names_a_missing_macro_before_running_latex(tmp_path: Path) -> None:
    tables, plots = tmp_path / "tables", tmp_path / "plots"
    tables.mkdir()
    plots.mkdir()
    (tables / "macros.tex").write_text("\\newcommand{\\fbChanceRetMeanRMean}{5.3}\n")
    with pytest.raises(ConfigError, match=r"does not define: .*\\fbCrossAttentionDetAPMean"):
        build_paper(PAPER, tables, plots, tmp_path / "main.pdf")
    assert not (tmp_path / "main.pdf").exists()


def test_efficiency_tables_fit_the_page_and_carry_the_labels_the_paper_cites() -> None:
    """Cost and wall time are two tables, neither scaled down (14 columns at text width were unreadable)."""
    import re

    import pandas as pd

    from benchmark.report.aggregate import efficiency_latex, efficiency_tables
    from benchmark.report.tables import WIDE_COLUMNS

    frame = pd.read_csv(REPO / "results" / "reference" / "efficiency.csv", comment="#")
    cost, time = efficiency_tables(frame)
    assert len(cost.columns) + len(time.columns) - 1 == 1 + 6 + 7  # all 14 columns of the one table, split
    assert "parameters" not in time and all(c == "method" or "\n" in c or c == "pretrain" for c in time.columns)
    latex = efficiency_latex(cost, time, {"config hash": "x"})
    assert max(len(cost.columns), len(time.columns)) <= WIDE_COLUMNS and "resizebox" not in latex
    labels = set(re.findall(r"\\label\{(tab:efficiency[^}]*)\}", latex))
    assert labels == {"tab:efficiency", "tab:efficiency-time"}
    assert labels <= set(re.findall(r"\\ref\{([^}]+)\}", PAPER.read_text()))
