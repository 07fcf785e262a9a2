"""docs/API.md: every ```python block runs, and every public name is documented there."""

import importlib
import inspect
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[1] / "docs" / "API.md"
# Modules whose public API docs/API.md covers (cli, plotting, studies.paper and
# studies.compare have their own docs).
DOCUMENTED = (
    "lagc_jax",
    "lagc_jax.problems",
    "lagc_jax.datasets",
    "lagc_jax.delays",
    "lagc_jax.strategies",
    "lagc_jax.coding",
    "lagc_jax.timing",
    "lagc_jax.reductions",
    "lagc_jax.random_words",
    "lagc_jax.analysis",
    "lagc_jax.results",
    "lagc_jax.engine",
    "lagc_jax.studies.advise",
    "lagc_jax.studies.files",
    "lagc_jax.studies.statistics",
    "lagc_jax.checks",
)


def api_blocks():
    if not API.exists():
        return []
    return re.findall(r"```python\n(.*?)```", API.read_text(), flags=re.S)


def test_api_doc_exists_and_has_examples():
    assert API.exists() and len(api_blocks()) >= 35


@pytest.mark.parametrize("index", range(len(api_blocks())))
def test_api_python_blocks_run(index, tmp_path, monkeypatch):
    block = api_blocks()[index]
    if "from lagc_jax import datasets" in block:
        pytest.importorskip("sklearn", reason="the datasets examples need the 'data' extra")
    monkeypatch.chdir(tmp_path)
    exec(compile(block, f"docs/API.md block {index}", "exec"), {"__name__": "__api_doc__"})


def public_names(module_name):
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n
            for n, obj in vars(module).items()
            if not n.startswith("_")
            and (inspect.isfunction(obj) or inspect.isclass(obj))
            and getattr(obj, "__module__", None) == module_name
        ]
    return sorted(names)


@pytest.mark.parametrize("module_name", DOCUMENTED)
def test_every_public_name_is_documented(module_name):
    if module_name == "lagc_jax.datasets":
        pytest.importorskip("sklearn")
    text = API.read_text()
    missing = [
        n
        for n in public_names(module_name)
        if f"`{n}" not in text and f".{n}`" not in text and f"{n}(" not in text
    ]
    assert not missing, f"{module_name}: not in docs/API.md: {missing}"
