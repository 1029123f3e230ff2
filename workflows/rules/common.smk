# Helpers shared by the workflow files (how jobs call the CLI, their specs, the conda env).

import json
import os
import shlex
import sys


def _uses_conda():
    try:
        from snakemake_interface_executor_plugins.settings import DeploymentMethod

        return DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    except (ImportError, AttributeError):
        return False


# Jobs call `python -m benchmark` (the `fusebench` command) from this checkout's source. With
# --use-conda, `python` is the rule's conda env; otherwise it is the interpreter running
# Snakemake (e.g. .venv/bin/python even when the venv is not activated).
# (Braces are doubled twice: once for this f-string, once for Snakemake's own formatting.)
_JOB_PATH = "" if _uses_conda() else f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; "
shell.prefix(
    f"set -euo pipefail; {_JOB_PATH}"
    f"export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
)

BASELINES = str(baselines_dir())
"""Method files (baselines/, or $FUSEBENCH_BASELINES); each is an input of its method's jobs."""

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
