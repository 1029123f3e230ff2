"""The tuning choice: a method's learning-rate factor from its trials, on val."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from benchmark.errors import DataFileError
from benchmark.io import write_json
from benchmark.stages.records import result_record

log = logging.getLogger("fusebench")


def run_tune_select(trial_results: list[Path], out_file: Path) -> None:
    """A method's learning-rate choice from its tuning trials' fine-tuning results (val only), as choice.json."""
    from benchmark.io import read_json
    from benchmark.train.tuning import choose

    started = time.perf_counter()
    trials: dict[float, dict[str, dict[str, Any]]] = {}
    methods = set()
    for path in trial_results:
        result = read_json(path, what="tuning trial result")
        spec = result.get("spec", {})
        if "tuning_trial" not in spec:
            raise DataFileError(f"{path} is not a tuning trial's fine-tuning result (its spec has no 'tuning_trial')")
        methods.add(spec["method"])
        trials.setdefault(float(spec["tuning_trial"]), {})[spec["task"]] = result
    if len(methods) != 1:
        raise DataFileError(f"tuning trials of several methods given together: {sorted(methods)}")
    choice = {"method": methods.pop(), **choose(trials), "trial_files": [str(p) for p in trial_results]}
    spec = {"stage": "tune_select", "method": choice["method"]}
    write_json(out_file, {**result_record(spec, started), **choice})
    log.info(
        "tuning %s: learning-rate factor %s (%s) → %s", choice["method"], choice["lr_factor"], choice["rule"], out_file
    )
