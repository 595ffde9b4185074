"""The package's shape: each part's imports point one way, and no import goes round in a circle.

Read from the source with `ast` (module-level imports, and those inside functions;
imports under `if TYPE_CHECKING:` are for annotations only and are left out).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "exporter"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, list[str]]]:
    """(module, names imported from it) for every import under `node`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield from _imports(other, module, is_package)
            continue
        if isinstance(child, ast.Import):
            yield from ((alias.name, []) for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (child.level - 1)]
                target = ".".join([*base, child.module] if child.module else base)
            else:
                target = child.module or ""
            yield target, [alias.name for alias in child.names]
        yield from _imports(child, module, is_package)


def import_graph() -> dict[str, set[str]]:
    """Each module → the project modules and the outside packages it imports."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets: set[str] = set()
        for target, names in _imports(tree, name, path.name == "__init__.py"):
            submodules = {f"{target}.{n}" for n in names if f"{target}.{n}" in modules}
            targets |= submodules
            # `from exporter.commands import run` is the module exporter.commands.run; the
            # package itself counts only for names that are not modules of their own.
            if len(submodules) < len(names) or not names:
                targets.add(target)
        graph[name] = {t for t in targets if t != name and (t in modules or "exporter" not in t)}
    return graph


GRAPH = import_graph()


def reachable(start: str) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        for target in GRAPH.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def part(prefix: str) -> list[str]:
    return sorted(name for name in GRAPH if name == prefix or name.startswith(prefix + "."))


def test_no_import_cycle_in_the_package() -> None:
    cycles = [name for name in GRAPH if name in reachable(name)]
    assert cycles == []


@pytest.mark.parametrize("module", part("exporter.destination"))
def test_the_destination_imports_neither_the_portal_nor_the_http_library(module: str) -> None:
    reached = reachable(module)
    assert not {name for name in reached if name.startswith(("exporter.portal", "aiohttp"))}


@pytest.mark.parametrize("module", part("exporter.manifest"))
def test_the_manifest_part_knows_no_portal_jobs_or_commands(module: str) -> None:
    banned = ("exporter.portal", "exporter.jobs", "exporter.commands", "exporter.cli", "aiohttp")
    assert not {name for name in reachable(module) if name.startswith(banned)}


def test_only_the_entry_point_imports_the_commands() -> None:
    importers = {
        name
        for name, targets in GRAPH.items()
        if any(
            t.startswith("exporter.commands.") and t != "exporter.commands.shared" for t in targets
        )
    }
    assert importers == {"exporter.cli"}


@pytest.mark.parametrize(
    "prefix", ["exporter.portal", "exporter.destination", "exporter.manifest", "exporter.jobs"]
)
def test_the_parts_do_not_know_the_command_line(prefix: str) -> None:
    for module in part(prefix):
        assert not {n for n in GRAPH[module] if n.startswith(("exporter.commands", "exporter.cli"))}


def test_the_model_imports_nothing_of_the_project() -> None:
    assert not {name for name in GRAPH["exporter.model"] if name.startswith("exporter")}


@pytest.mark.parametrize("module", part("exporter.simulator"))
def test_the_simulated_portal_imports_nothing_from_the_client_side(module: str) -> None:
    project = {name for name in reachable(module) if name.startswith("exporter")}
    assert project <= set(part("exporter.simulator")) | {"exporter"}


def test_every_part_says_what_it_owns() -> None:
    for prefix in ("portal", "destination", "manifest", "jobs", "commands", "simulator"):
        docstring = ast.get_docstring(ast.parse((PACKAGE / prefix / "__init__.py").read_text()))
        assert docstring and len(docstring) > 40, prefix
