"""Shared fixtures (a tiny dataset and tokenizer built once per test session) and each test's kind.

Every test gets one of the markers ``unit``, ``integration`` or ``workflow`` (pyproject.toml), decided from what its
code reaches — the test function, its fixtures and the test or helper functions they call — so a new test file is
classified without a table: Snakemake or ``make`` on a command line → ``workflow``; another process
(``subprocess``, ``multiprocessing``, ``torchrun``, ``pdflatex``) → ``integration``; otherwise ``unit``. A test
marked ``integration`` by hand keeps it: a comparison with a reference library at full size, or an official-size
fixture, which ``make test-fast`` leaves to ``make test``. ``make test-fast`` runs ``-m unit``.
"""

from __future__ import annotations

import os
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# imported after the offline switches above: tests.helpers imports the package
from tests.helpers import SMOKE, snakemake, tiny_data_spec

TESTS = str(Path(__file__).resolve().parent)
"""Functions defined in files under this folder (test modules, helpers, fixtures) are followed."""
WORKFLOW_WORDS = frozenset({"snakemake", "make"})
"""A string constant naming one of these (a command line) means the test runs the workflow."""
PROCESS_WORDS = frozenset(
    {"subprocess", "Popen", "multiprocessing", "torch.multiprocessing", "start_processes", "torchrun", "pdflatex"}
)
"""A name or string constant among these means the test starts another process."""


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _reaches(functions: Iterable[object]) -> set[str]:
    """The kinds of work ("workflow", "integration") the code of ``functions`` reaches, following calls into test and
    helper functions (files under ``tests/``) and command lines held in module-level lists."""
    found: set[str] = set()
    seen: set[types.CodeType] = set()
    stack = [getattr(f, "__func__", f) for f in functions]
    while stack:
        function = stack.pop()
        code = getattr(function, "__code__", None)
        if code is None or code in seen:
            continue
        seen.add(code)
        namespace = getattr(function, "__globals__", {})
        for part in _code_objects(code):
            words = {c for c in part.co_consts if isinstance(c, str)} | set(part.co_names)
            for name in part.co_names:
                value = namespace.get(name)
                if isinstance(value, list | tuple):
                    words |= {v for v in value if isinstance(v, str)}
                elif isinstance(value, types.FunctionType) and value.__code__.co_filename.startswith(TESTS):
                    stack.append(value)
            found |= {"workflow"} if words & WORKFLOW_WORDS else set()
            found |= {"integration"} if words & PROCESS_WORDS else set()
    return found


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test ``workflow``, ``integration`` or ``unit`` (see the module docstring); tests sharing a fixture
    broader than one test that runs the workflow or another process share a pytest-xdist group (one worker builds it).
    """
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        definitions = [d for defs in (fixtures.name2fixturedefs.values() if fixtures else ()) for d in defs]
        kinds = _reaches([getattr(item, "obj", None), *(d.func for d in definitions)])
        if "workflow" not in kinds and item.get_closest_marker("integration"):
            kinds = {"integration"}  # marked by hand (module docstring)
        item.add_marker("workflow" if "workflow" in kinds else "integration" if kinds else "unit")
        shared = [d for d in definitions if d.scope != "function" and _reaches([d.func])]
        if shared:
            item.add_marker(pytest.mark.xdist_group(f"{shared[0].baseid}::{shared[0].argname}"))


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_global_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts from the same process-wide state, whatever ran before it.

    ``seed_everything`` (called by every stage) switches on torch's deterministic algorithms
    and seeds the global RNGs for the rest of the process; without this fixture a test's
    outcome could depend on which tests ran earlier. Global RNGs are seeded from the test's
    id, and torch's determinism switches and ``CUBLAS_WORKSPACE_CONFIG`` are put back after it.
    """
    import random

    import numpy as np
    import torch

    from benchmark.seeding import derive_seed

    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn_benchmark = torch.backends.cudnn.benchmark
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    seed = derive_seed("test", request.node.nodeid)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    yield
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    if cublas is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


@pytest.fixture(scope="session")
def smoke_config() -> dict[str, Any]:
    from benchmark.config import load_config

    return load_config([SMOKE])


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from benchmark.data.synthetic import build_synthetic_dataset

    root = tmp_path_factory.mktemp("tiny") / "data"
    build_synthetic_dataset(tiny_data_spec(), root)
    return root


@pytest.fixture(scope="session")
def tiny_tokenizer_file(tiny_dataset: Path) -> Path:
    from benchmark.data.standard_form import read_captions
    from benchmark.data.tokenizer import train_tokenizer

    captions = [c for caps in read_captions(tiny_dataset, "train").values() for c in caps]
    path = tiny_dataset.parent / "tokenizer.json"
    path.write_text(train_tokenizer(captions, vocab_size=200, max_length=24).to_str())
    return path


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke profile run once through Snakemake (its own copy of baselines/): the finished run that the workflow
    tests read and dry-run against. Tests must leave it as they found it (content and time stamps)."""
    workdir = tmp_path_factory.mktemp("workflow")
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir
