"""Documentation runs: every module's docstring examples, the Python blocks of the README and
of the site's pages (docs/), and the tests they cite."""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import lagc_jax

README = Path(__file__).resolve().parents[1] / "README.md"
DOCS = README.parent / "docs"
MODULES = sorted(m.name for m in pkgutil.walk_packages(lagc_jax.__path__, "lagc_jax."))
# Pages whose Python blocks another test executes: API.md block by block
# (tests/test_api_docs.py), EXTENDING.md in order in one namespace (tests/test_extending.py).
PAGES_RUN_ELSEWHERE = ("API.md", "EXTENDING.md")


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    failures, _ = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert failures == 0


def readme_blocks():
    if not README.exists():
        return []
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_python_blocks_run(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_blocks()[index], f"README.md block {index}", "exec"), {})


def site_page_blocks():
    """(page, index) of every Python block of the site's pages (docs/**/*.md)."""
    blocks = []
    for page in sorted(DOCS.rglob("*.md")):
        name = page.relative_to(DOCS).as_posix()
        if name not in PAGES_RUN_ELSEWHERE:
            count = len(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))
            blocks += [(name, index) for index in range(count)]
    return blocks


@pytest.mark.parametrize("page, index", site_page_blocks())
def test_site_python_blocks_run(page, index, tmp_path, monkeypatch):
    """Each Python block of a site page runs on its own, as a reader would paste it."""
    block = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)[index]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, f"docs/{page} block {index}", "exec"), {"__name__": "__site_page__"})


def test_every_site_page_with_code_is_executed():
    pages = {page for page, _ in site_page_blocks()}
    assert {"index.md", "strategies/lazy.md", "delays.md", "scale.md"} <= pages
    for name in PAGES_RUN_ELSEWHERE:
        assert (DOCS / name).exists(), f"docs/{name} is listed as run elsewhere but is gone"


def test_readme_and_site_name_only_tests_that_exist():
    """Every `test_file.py::test_name` the README or a site page cites is a test function."""
    tests_dir = Path(__file__).resolve().parent
    pages = [README, *sorted(DOCS.rglob("*.md"))]
    refs = {
        (page.name, *ref)
        for page in pages
        for ref in re.findall(r"`(test_\w+\.py)::(test_\w+)`", page.read_text())
    }
    assert len(refs) >= 60
    missing = [
        f"{page}: {filename}::{name}"
        for page, filename, name in sorted(refs)
        if not re.search(rf"^def {name}\(", (tests_dir / filename).read_text(), flags=re.M)
    ]
    assert not missing, missing


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
