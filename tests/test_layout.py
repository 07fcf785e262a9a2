"""The package's layout points one way (issue 23): the command line (``lagc_jax.cli``) only
parses and calls the library, the library never imports the command line, ``lagc_jax.studies``
uses no argparse, no module reaches for another's private names, and no modules import each
other in a cycle.

Every module is parsed with ``ast``, nothing is imported; an import inside a function counts
as much as one at the top of its module.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = "lagc_jax"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def parse_modules() -> dict:
    """{module name: (its syntax tree, whether it is a package's __init__)}."""
    return {
        module_name(path): (ast.parse(path.read_text(encoding="utf-8")), path.stem == "__init__")
        for path in sorted(ROOT.rglob("*.py"))
    }


MODULES = parse_modules()


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def resolve(importer: str, node: ast.ImportFrom) -> str:
    """The absolute module name of a ``from ... import`` in ``importer``."""
    if node.level == 0:
        return node.module
    package = importer if MODULES[importer][1] else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def known_module(name: str) -> str:
    """The package module ``name`` is, or lies in (``lagc_jax.x.y`` -> the longest known)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports(importer: str):
    """(line, imported module, name or None) of every import of a package module in
    ``importer``; ``from lagc_jax import simulate`` gives (line, "lagc_jax", "simulate"),
    ``from lagc_jax import engine`` gives (line, "lagc_jax.engine", None)."""
    for node in ast.walk(MODULES[importer][0]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield node.lineno, known_module(alias.name), None
        elif isinstance(node, ast.ImportFrom):
            source = resolve(importer, node)
            if source.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:
                    yield node.lineno, f"{source}.{alias.name}", None
                else:
                    yield node.lineno, known_module(source), alias.name


def edges(*, package_parts: bool = True) -> dict:
    """{(importer, imported): first line} over the package; without ``package_parts``, not
    the edges from a package's __init__ to its own submodules (a package gathering its
    parts makes no cycle)."""
    found = {}
    for importer, (_, is_package) in MODULES.items():
        for line, imported, _ in imports(importer):
            part = is_package and imported.startswith(importer + ".")
            if imported != importer and (package_parts or not part):
                found.setdefault((importer, imported), line)
    return found


def in_cli(module: str) -> bool:
    return module == "lagc_jax.cli" or module.startswith("lagc_jax.cli.")


def find_cycle(graph: dict):
    """One cycle of ``graph`` ({module: [modules it imports]}) as a list of modules whose
    last imports the first, or None."""
    state, stack = {}, []  # state: 1 while on the stack, 2 when done

    def visit(module):
        state[module] = 1
        stack.append(module)
        for target in graph.get(module, ()):
            if state.get(target) == 1:
                return stack[stack.index(target) :]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_the_parser_sees_the_layout():
    """The graph holds the edges the test is about (so an empty one cannot pass silently)."""
    found = edges()
    assert "lagc_jax.cli" in MODULES and "lagc_jax.studies.paper" in MODULES
    assert ("lagc_jax.cli.run", "lagc_jax.studies.compare") in found
    assert ("lagc_jax.plotting", "lagc_jax.studies.statistics") in found
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c"]
    assert find_cycle({"a": ["b"], "b": ["c"]}) is None


def test_no_import_cycle():
    found = edges(package_parts=False)
    graph = {}
    for importer, imported in found:
        graph.setdefault(importer, []).append(imported)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + "; ".join(
        f"{a} (line {found[a, b]}) imports {b}" for a, b in zip(cycle, cycle[1:] + cycle[:1])
    )


def test_the_library_does_not_import_the_command_line():
    offending = [
        f"{importer} (line {line}) imports {imported}"
        for (importer, imported), line in sorted(edges().items())
        if in_cli(imported) and not in_cli(importer)
    ]
    assert not offending, offending


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("lagc_jax.studies")))
def test_studies_use_no_argparse(module):
    offending = [
        node.lineno
        for node in ast.walk(MODULES[module][0])
        if isinstance(node, ast.Import)
        and any(a.name == "argparse" for a in node.names)
        or isinstance(node, ast.ImportFrom)
        and node.module == "argparse"
        and node.level == 0
    ]
    assert not offending, f"{module} imports argparse at lines {offending}"


def private_uses() -> dict:
    """{(module, other module, private name): line}: ``from other import _name``, and
    ``other._name`` where ``other`` is a package module the module imported."""
    uses = {}
    for importer in MODULES:
        bound = {}  # local name -> package module it stands for
        for node in ast.walk(MODULES[importer][0]):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    source = resolve(importer, node)
                    if f"{source}.{alias.name}" in MODULES:
                        bound[alias.asname or alias.name] = f"{source}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and alias.name in MODULES:
                        bound[alias.asname] = alias.name
        for line, imported, name in imports(importer):
            if name is not None and is_private(name) and imported != importer:
                uses.setdefault((importer, imported, name), line)
        for node in ast.walk(MODULES[importer][0]):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and is_private(node.attr)
                and bound[node.value.id] != importer
            ):
                uses.setdefault((importer, bound[node.value.id], node.attr), node.lineno)
    return uses


def test_no_module_uses_another_modules_private_names():
    offending = [
        f"{importer} (line {line}) uses {imported}.{name}"
        for (importer, imported, name), line in sorted(private_uses().items())
    ]
    assert not offending, offending
