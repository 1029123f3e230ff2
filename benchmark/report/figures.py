"""What every figure shares: the headless backend, one style, one colour per method, atomic PDF + PNG files.

The palette is Okabe & Ito's colour-blind-safe set; a method keeps its colour in every figure
(assigned by sorted method name, references in grey). Its own module so that every plotting module
(:mod:`benchmark.report.plots`, :mod:`benchmark.report.curves`) imports it without importing the other.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmark.io import atomic_path

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
REFERENCE_COLOR = "#999999"
STYLE = {
    "figure.dpi": 120,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
}


def method_colors(methods: list[str], references: tuple[str, ...] = ()) -> dict[str, str]:
    learned = sorted(m for m in set(methods) if m not in references)
    colors = {m: OKABE_ITO[i % len(OKABE_ITO)] for i, m in enumerate(learned)}
    colors.update({m: REFERENCE_COLOR for m in references})
    return colors


def save(figure: plt.Figure, stem: Path) -> list[Path]:
    """Write ``stem``.pdf and ``stem``.png atomically; return both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in (".pdf", ".png"):
        path = stem.with_suffix(suffix)
        with atomic_path(path) as tmp:
            figure.savefig(
                tmp,
                format=suffix[1:],
                bbox_inches="tight",
                metadata={"CreationDate": None} if suffix == ".pdf" else None,
            )
        paths.append(path)
    plt.close(figure)
    return paths
