"""Documentation runs: every module's docstring examples and the README's Python blocks."""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import lagc_jax

README = Path(__file__).resolve().parents[1] / "README.md"
MODULES = sorted(m.name for m in pkgutil.walk_packages(lagc_jax.__path__, "lagc_jax."))


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failures == 0


def readme_blocks():
    if not README.exists():
        return []
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_python_blocks_run(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_blocks()[index], f"README.md block {index}", "exec"), {})


@pytest.mark.parametrize("page", ["TESTING.md", "MODEL.md"])
def test_docs_name_only_tests_that_exist(page):
    """Every `test_file.py::test_name` in docs/TESTING.md and docs/MODEL.md (which says
    what checks each section) is a test function in that file."""
    testing = README.parent / "docs" / page
    refs = re.findall(r"`(test_\w+\.py)::(test_\w+)`", testing.read_text())
    assert len(refs) >= 30
    tests_dir = Path(__file__).resolve().parent
    for filename, name in refs:
        source = (tests_dir / filename).read_text()
        assert re.search(rf"^def {name}\(", source, flags=re.M), f"{filename}::{name}"
