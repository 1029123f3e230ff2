"""``fusebench``: one subcommand per pipeline stage, so every Snakemake job also runs by hand.

Each stage needs its *spec* (the slice of the config it depends on). Snakemake passes it as
``--spec JSON``; by hand, give config files and the job's wildcards instead::

    fusebench data --config workflows/config/smoke.yaml --dataset scenes --out results/smoke/scenes/data
    fusebench pretrain --config workflows/config/smoke.yaml --dataset scenes --method contrastive_clip \\
        --seed 0 --data results/smoke/scenes/data --tokenizer results/smoke/scenes/tokenizer.json \\
        --out results/smoke/scenes/pretrain/contrastive_clip/seed0

Exit codes are listed once, in :data:`benchmark.errors.EXIT_CODES` (and by ``fusebench --help``):
a known failure (configuration, input, mismatched input, non-finite loss) ends with one line on
stderr, its traceback only with ``-v``; a crash exits 1 with its traceback.
"""

from benchmark.cli.entry import main
from benchmark.cli.parser import build_parser

__all__ = ["build_parser", "main"]
