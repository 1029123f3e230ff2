"""The workflow reads a method's ``training_stages`` and ``defaults`` from syntax trees (no import, no torch), following
inheritance as Python does, and a method whose class disagrees with what was read is refused."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from benchmark.errors import MethodError
from benchmark.registry import NOT_LITERAL, declared_attributes, load_method, method_names, method_path

HEADER = '"""A test method written by tests/test_method_reader.py."""\n\nfrom typing import Any\n\nimport torch\n\n'


def write(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(HEADER + body)
    return path


def test_every_baseline_reads_as_its_class_says() -> None:
    for name in method_names():
        declared = declared_attributes(method_path(name))
        cls = load_method(name)
        assert declared["defaults"] == cls.defaults, name
        assert tuple(declared["training_stages"]) == tuple(cls.training_stages), name


def test_published_methods_inherit_instead_of_restating() -> None:
    """published_detector and published_dual_encoder assign neither attribute; published_matcher extends
    PublishedMethod's defaults with one key."""
    from benchmark.models.published import PublishedMethod

    for name in ("published_detector", "published_dual_encoder"):
        tree = ast.parse(method_path(name).read_text())
        (method,) = [node for node in tree.body if isinstance(node, ast.ClassDef)]
        assigned = {t.id for node in method.body if isinstance(node, ast.Assign) for t in node.targets}
        assert not assigned & {"training_stages", "defaults"}, name
        assert declared_attributes(method_path(name)) == {
            "training_stages": (),
            "defaults": PublishedMethod.defaults,
        }
    matcher = declared_attributes(method_path("published_matcher"))
    assert matcher["defaults"] == {**PublishedMethod.defaults, "itm_plus_itc": True}


def test_helper_classes_and_same_file_bases(tmp_path: Path) -> None:
    body = (
        "from benchmark.models import FusionMethod\n\n\n"
        "class Block(torch.nn.Module):\n    defaults = {'not': 'the method'}\n\n\n"
        "class Base(FusionMethod):\n    training_stages = ('finetune',)\n"
        "    defaults = {'objectives': {}, 'a': 1}\n\n\n"
        "class Child(Base):\n    family = 'x'\n    paper = 'y'\n    defaults = {**Base.defaults, 'b': [2, 3]}\n\n\n"
        "class After(torch.nn.Module):\n    pass\n"
    )
    path = write(tmp_path, "child", body)
    assert declared_attributes(path) == {
        "training_stages": ("finetune",),
        "defaults": {"objectives": {}, "a": 1, "b": [2, 3]},
    }
    plain = write(
        tmp_path, "plain", "from benchmark.models import FusionMethod\n\n\nclass Plain(FusionMethod):\n    pass\n"
    )
    assert declared_attributes(plain) == {"training_stages": ("pretrain", "finetune"), "defaults": {"objectives": {}}}


def test_a_class_that_disagrees_with_its_syntax_tree_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defaults computed at import time cannot be read without importing: recorded as not a literal, and a class
    whose imported defaults differ from the literal ones read is refused, naming the file."""
    body = (
        "from benchmark.models import FusionMethod\n\nSCALE = 2.0\n\n\n"
        "class Computed(FusionMethod):\n    family = 'x'\n    paper = 'y'\n"
        "    defaults = {'objectives': {}, 'scale': SCALE}\n\n\n"
        "Computed.defaults = {'objectives': {}, 'scale': 3.0}\n"
    )
    path = write(tmp_path, "computed", body)
    assert declared_attributes(path)["defaults"] == {"objectives": {}, "scale": NOT_LITERAL}
    literal = body.replace("'scale': SCALE", "'scale': 2.0")
    write(
        tmp_path,
        "overwritten",
        literal.replace("class Computed", "class Overwritten").replace("Computed.", "Overwritten."),
    )
    monkeypatch.setenv("FUSEBENCH_BASELINES", str(tmp_path))
    with pytest.raises(MethodError, match=r"overwritten\.py.*defaults is .*3\.0.*says .*2\.0"):
        load_method("overwritten", tmp_path)
