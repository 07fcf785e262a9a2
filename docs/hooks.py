"""Build helpers for the documentation site (mkdocs.yml names this file twice).

- As an mkdocs hook (``hooks:``): the site also serves the files that live outside docs/ —
  the figures, BENCHMARKS.md and its plot — and one API reference page per module of the
  package, generated from the source tree, so a new module gets its page without an edit.
- As a griffe extension (mkdocstrings' ``extensions:``): the docstrings are written for
  doctest and Sphinx. Their ``>>>`` examples become fenced ``pycon`` blocks (Markdown would
  otherwise read ``>>>`` as nested quotes), and Sphinx roles such as :func:`name` become
  code spans.
"""

from __future__ import annotations

import re
from pathlib import Path

import griffe
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lagc_jax"
# Files outside docs/ that the pages link to, as globs relative to the repository root.
OUTSIDE_DOCS = (
    "figures/*.png",
    "figures/*.md",
    "figures/*.csv",
    "BENCHMARKS.md",
    "BENCHMARKS_scaling.png",
)
REFERENCE_SECTION = "API reference"


def module_names():
    """Every module of the package, from the source tree (nothing is imported)."""
    names = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):
            names.append(".".join(parts))
    return names


def reference_page(module):
    return f"reference/{module}.md"


def on_config(config):
    """Fill the nav's API reference section with one page per module (after the pages
    mkdocs.yml lists there; idempotent, for `mkdocs serve`'s rebuilds)."""
    generated = [{module: reference_page(module)} for module in module_names()]
    for entry in config.nav:
        if isinstance(entry, dict) and REFERENCE_SECTION in entry:
            written = [item for item in entry[REFERENCE_SECTION] if item not in generated]
            entry[REFERENCE_SECTION] = written + generated
    return config


def reference_markdown(module, package):
    """A module's page: its docstring and members. A package that re-exports names (its
    ``__all__``) shows its docstring and a table linking each name to where it is defined,
    rather than every definition a second time."""
    obj = package[module.removeprefix(PACKAGE + ".")] if module != PACKAGE else package
    if not ((obj.is_package or obj.is_subpackage) and obj.exports):
        return f"::: {module}\n"
    rows = []
    for name in sorted(obj.exports, key=str.lower):
        member = obj.members[name]
        target = member.final_target if member.is_alias else member
        summary = (
            target.docstring.value.split("\n\n")[0].replace("\n", " ") if target.docstring else ""
        )
        summary = SPHINX_ROLE.sub(code_span, summary).replace("|", "\\|")
        where = target.path if target.is_module else target.parent.path
        rows.append(f"| [`{name}`][{target.path}] | `{where}` | {summary} |")
    return (
        f"::: {module}\n    options:\n      members: false\n\n"
        "## Exported names\n\n| name | defined in | summary |\n|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )


def on_files(files, config):
    for pattern in OUTSIDE_DOCS:
        for path in sorted(ROOT.glob(pattern)):
            files.append(
                File.generated(config, path.relative_to(ROOT).as_posix(), abs_src_path=str(path))
            )
    package = griffe.load(PACKAGE, search_paths=[str(ROOT)])
    for module in module_names():
        files.append(
            File.generated(
                config, reference_page(module), content=reference_markdown(module, package)
            )
        )
    return files


DOCTEST_LINE = re.compile(r"^(\s*)>>> ")
SPHINX_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc):`(~?)([^`]+)`")


def code_span(role):
    """:func:`a.b` -> `a.b`; :func:`~a.b` -> `b` (Sphinx's short form)."""
    tilde, target = role.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def markdown_docstring(text):
    r"""A doctest-and-Sphinx docstring as Markdown: each run of ``>>>`` lines with its output
    (up to a blank line) fenced as ``pycon``, and Sphinx roles as code spans.

    >>> markdown_docstring("Adds.\n\n>>> 1 + 1\n2\n\nSee :func:`~a.b.add`.").splitlines()
    ['Adds.', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'See `add`.']
    """
    lines, out, in_example = text.split("\n"), [], False
    for line in lines:
        if not in_example and DOCTEST_LINE.match(line):
            indent = DOCTEST_LINE.match(line).group(1)
            out.append(f"{indent}```pycon")
            in_example = True
        elif in_example and not line.strip():
            out.append(f"{indent}```")
            in_example = False
        out.append(line if in_example else SPHINX_ROLE.sub(code_span, line))
    if in_example:
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestAsMarkdown(griffe.Extension):
    """Rewrites every docstring the reference renders with :func:`markdown_docstring`."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
