# Helpers shared by the workflow files (how jobs call the CLI, their specs, the conda env).

import json
import os
import shlex


# Jobs call `python -m benchmark` (the `fusebench` command) from this checkout's source, which
# works both in the project venv and in the conda env (where the package is not installed).
# (Braces are doubled twice: once for this f-string, once for Snakemake's own formatting.)
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

BASELINES = os.path.join(workflow.basedir, "baselines")
"""Method files; each is an input of its method's jobs."""

CONDA_ENV = "../../environment.yml"
"""Every rule runs in the same pinned environment (paths are relative to this file)."""


def spec_json(stage, **wildcards):
    """A params function: the JSON stage spec of one job, shell-quoted."""

    def fn(w):
        values = {k: getattr(w, k) for k in ("dataset", "method", "seed", "task") if hasattr(w, k)}
        if "seed" in values:
            values["seed"] = int(values["seed"])
        values.update(wildcards)
        return shlex.quote(json.dumps(stage_spec(config, stage, **values), sort_keys=True))

    return fn


def threads_for_jobs():
    return config["threads"]
