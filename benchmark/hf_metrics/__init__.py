"""FuseBench's task metrics as Hugging Face ``evaluate`` modules, shipped inside the package.

A researcher who trains outside FuseBench should get *the* FuseBench number from their own
loop, not a re-implementation that drifts in tie-breaking or in how empty cases count. Each
module here is a thin ``evaluate.Metric`` that validates its inputs and then calls FuseBench's
own metric code (:mod:`benchmark.metrics.retrieval`, :mod:`benchmark.metrics.detection`).

``evaluate.load`` takes a local folder that holds ``<folder name>.py``; the folders are
deliberately not Python packages (evaluate copies the script into its module cache and
imports it from there), so they are located by path with :func:`module_path`. Loading works
offline: no Hub access is attempted for a local path.

Example:
    >>> import evaluate
    >>> from benchmark.hf_metrics import module_path
    >>> recall = evaluate.load(module_path("retrieval"))
    >>> recall.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[0, 1], ks=[1])
    {'t2i_R@1': 1.0, 'i2t_R@1': 1.0, 'mean_R': 1.0}
"""

from __future__ import annotations

from pathlib import Path

#: FuseBench task → the folder (= module name) of its ``evaluate`` module.
MODULES: dict[str, str] = {"retrieval": "fusebench_retrieval", "grounding": "fusebench_grounding"}


def module_path(task: str) -> str:
    """Local path of the ``evaluate`` module for a FuseBench task, for ``evaluate.load(path)``.

    A path rather than a Hub name, so that loading needs no network and always uses the metric
    code of the installed FuseBench version.
    """
    if task not in MODULES:
        raise ValueError(f"no evaluate module for task {task!r}; available: {sorted(MODULES)}")
    folder = Path(__file__).resolve().parent / MODULES[task]
    return str(folder)
