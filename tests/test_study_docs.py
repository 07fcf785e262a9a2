"""Every study file the pages show (```toml blocks) is a valid study."""

import re
import tomllib
from pathlib import Path

import pytest

from lagc_jax.studies import files

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCKS = [
    pytest.param(block, id=f"{page.relative_to(ROOT)}-{i}")
    for page in PAGES
    for i, block in enumerate(re.findall(r"```toml\n(.*?)```", page.read_text(), re.S))
]


def test_the_pages_show_a_study_file():
    assert BLOCKS


@pytest.mark.parametrize("block", BLOCKS)
def test_study_files_on_the_pages_parse(block):
    study = files.parse_study(tomllib.loads(block))
    assert study.points and all(p.trials > 0 and p.iterations > 0 for p in study.points)
