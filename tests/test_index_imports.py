"""The index package's import hygiene: no private name crosses a module boundary into or out of
``matcher.index``, and no import circle runs through it.

Read from the source with :mod:`ast` (nothing is imported), so a violation is found wherever it is.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "matcher"
INDEX = "matcher.index"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def absolute(current: str, level: int, module: str | None) -> str:
    """The absolute name of a (possibly relative) ``from ... import`` source."""
    if not level:
        return module or ""
    base = current.split(".") if is_package(current) else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node outside ``if TYPE_CHECKING:`` blocks (those imports never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(sub) for sub in ast.walk(node))
    return (node for node in ast.walk(tree) if id(node) not in skipped)


def imports(name: str) -> Iterator[tuple[str, str | None, str | None, int]]:
    """``(imported module, imported name or None, local alias, line)`` for each import of a matcher
    module in ``name`` (function-level imports included: they make circles too)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    for node in runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom):
            source = absolute(name, node.level, node.module)
            if not source.startswith("matcher"):
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in MODULES:
                    yield submodule, None, alias.asname or alias.name, node.lineno
                else:
                    yield source, alias.name, alias.asname or alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("matcher"):
                    yield alias.name, None, alias.asname, node.lineno


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def in_index(name: str) -> bool:
    return name == INDEX or name.startswith(INDEX + ".")


def test_no_private_name_crosses_the_index_package_boundary() -> None:
    """Nothing in ``matcher.index`` imports a private name from another module, and no module imports
    one from ``matcher.index`` (by ``from m import _x`` or by ``m._x`` on an imported module)."""
    problems = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_aliases: dict[str, str] = {}
        for source, imported, alias, line in imports(name):
            if imported is None and alias is not None:
                module_aliases[alias] = source
            if imported is not None and private(imported) and source != name and (in_index(name) or in_index(source)):
                problems.append(f"{path.relative_to(ROOT)}:{line}: imports {imported} from {source}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and private(node.attr)
                and node.value.id in module_aliases
            ):
                source = module_aliases[node.value.id]
                if source != name and (in_index(name) or in_index(source)):
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: uses {source}.{node.attr}")
    assert problems == []


def test_no_import_circle_runs_through_the_index_package() -> None:
    graph = {
        name: {source for source, _imported, _alias, _line in imports(name) if source in MODULES} for name in MODULES
    }
    index_modules = [name for name in MODULES if in_index(name) and name != INDEX]
    assert len(index_modules) >= 8
    for start in index_modules:  # a circle through ``start`` is a path from one of its imports back to it
        seen: set[str] = set()
        stack = [(target, [start, target]) for target in graph[start]]
        while stack:
            current, path = stack.pop()
            if current == start:
                raise AssertionError("import circle: " + " -> ".join(path))
            if current in seen:
                continue
            seen.add(current)
            stack.extend((target, [*path, target]) for target in graph[current])


def test_the_checks_see_what_they_look_for() -> None:
    """The helpers above find module imports, name imports and function-level imports (so the checks
    cannot pass vacuously)."""
    store = {(source, imported, alias) for source, imported, alias, _line in imports("matcher.index.store")}
    assert ("matcher.index.database", None, "db") in store
    assert ("matcher.index.search", "range_hits", "range_hits") in store
    manifest = {(source, imported) for source, imported, _alias, _line in imports("matcher.index.manifest")}
    assert ("matcher.views", "KNOWN_VIEWS") in manifest  # imported inside a function
    assert private("_cached") and not private("__init__") and not private("cached_shard")
