"""Where FuseBench's own files are: the checkout, its configuration and its schema; and the names of a run's files.

The lowest layer (standard library only), so that every module can name a file of the checkout
without importing the configuration machinery above it (``docs/architecture.md``).

The names of the files a job writes (a checkpoint, a data record, per-item records, the tables) live
here once: the stages and the report write them, and the workflow's path templates
(:mod:`benchmark.workflow.paths`, imported by the Snakefile) are built from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout the imported package belongs to (``benchmark/``'s parent)."""
PROFILES_DIR = REPO_ROOT / "workflows" / "config"
"""The configuration profiles: ``default.yaml`` and the files layered on it (``smoke.yaml``, ``paper.yaml``, …)."""
DEFAULT_CONFIG = PROFILES_DIR / "default.yaml"
"""The one place every default lives."""
SCHEMA_PATH = REPO_ROOT / "workflows" / "schemas" / "config.schema.yaml"
"""The JSON schema the merged configuration is validated against."""

# -- the names of a run's files --

CHECKPOINT_FILE = "model.safetensors"
"""A training job's model, in the folder the job writes into (its ``--out``)."""
TRAINING_RECORD_FILE = "result.json"
"""A training job's result record, beside its checkpoint."""
DATA_RECORD_FILE = "data.result.json"
"""The data stage's result record, beside the folder a generated dataset is built into."""
ITEMS_SUFFIX = ".items.npz"
"""Per-item records of an evaluation or robustness result: the result file with this suffix instead of ``.json``."""


def data_record_path(build_dir: str | Path) -> Path:
    """The data stage's result file, beside the folder a generated dataset is built into."""
    return Path(build_dir).parent / DATA_RECORD_FILE


class TableFiles(NamedTuple):
    """The files ``fusebench aggregate`` writes into the tables folder (``tables/``): one field each.

    :data:`TABLES` holds their names; the workflow's aggregate rule lists the same fields as its outputs."""

    main_csv: str = "main.csv"
    main_md: str = "main.md"
    main_tex: str = "main.tex"
    main_stats: str = "main_stats.csv"
    comparisons: str = "comparisons.csv"
    compositional: str = "compositional.md"
    learning_curves: str = "learning_curves.csv"
    selection: str = "selection.md"
    robustness_csv: str = "robustness.csv"
    robustness_summary: str = "robustness_summary.csv"
    robustness_drops: str = "robustness_drops.csv"
    robustness_cells: str = "robustness_cells.csv"
    robustness_md: str = "robustness.md"
    robustness_tex: str = "robustness.tex"
    efficiency_csv: str = "efficiency.csv"
    efficiency_md: str = "efficiency.md"
    efficiency_tex: str = "efficiency.tex"
    controls_md: str = "controls.md"
    controls_tex: str = "controls.tex"
    macros: str = "macros.tex"
    provenance: str = "provenance.json"


TABLES = TableFiles()
"""The table file names (``TABLES.main_csv == "main.csv"``)."""
