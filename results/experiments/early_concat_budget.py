"""Is early concat under-trained? Pretrain one method for STEPS steps (default config otherwise: warm-up 10 %,
validation every 100 steps), fine-tune it on retrieval, and print its validation curves (val split only).

    PYTHONPATH=. python results/experiments/early_concat_budget.py METHOD STEPS [DATA_DIR TOKENIZER]

DATA_DIR / TOKENIZER default to a default run's results/scenes/data and results/scenes/tokenizer.json.
"""

import json
import sys
from pathlib import Path

import torch

from benchmark.config import load_config, stage_spec
from benchmark.stages import run_finetune, run_pretrain

torch.set_num_threads(1)
method, steps = sys.argv[1], int(sys.argv[2])
data = Path(sys.argv[3] if len(sys.argv) > 3 else "results/scenes/data")
tokenizer = Path(sys.argv[4] if len(sys.argv) > 4 else "results/scenes/tokenizer.json")
out = Path(f"results/experiments/out/{method}-{steps}")
config = load_config(
    overrides=[f"pretrain.steps={steps}", f"pretrain.warmup_steps={steps // 10}", "validation.every=100"]
)
run_pretrain(stage_spec(config, "pretrain", dataset="scenes", method=method, seed=0), data, tokenizer, out / "pre")
spec = stage_spec(config, "finetune", dataset="scenes", method=method, seed=0, task="retrieval")
run_finetune(spec, data, tokenizer, out / "pre" / "model.safetensors", out / "ft")
for stage in ("pre", "ft"):
    record = json.loads((out / stage / "result.json").read_text())["train"]
    print(stage, record["wall_time_s"], record["validation"]["selected_step"])
    keys = ("step", "val_loss", "val_itm", "val_mlm", "val_mean_R", "val_i2t_R@1")
    for point in record["validation"]["curve"]:
        print({k: round(v, 4) for k, v in point.items() if k in keys})
