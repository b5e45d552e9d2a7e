"""The exporter's import graph, read from the source with ``ast``: which package imports which.

``python -m tests.tools.imports`` prints the package graph and every import that breaks the
layering (an import against the flow, or a cycle between modules); it exits 1 if there is one.
``tests/test_architecture.py`` holds the tree to the same rules.

Every import counts: at module level, inside a function, or under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "exporter"

# Leaf modules every layer may use; they import nothing of the exporter but its version.
FOUNDATION = frozenset(
    {
        "exporter",
        "exporter.clock",
        "exporter.listen",
        "exporter.logs",
        "exporter.redact",
        "exporter.textsafe",
    }
)

# The layers in the order of the flow, lowest first: each may import the layers before it,
# never one after it. Layers on one line are peers and may not import each other.
FLOW: tuple[tuple[str, ...], ...] = (
    ("foundation",),
    ("config",),
    ("can",),
    ("state",),
    ("metrics",),
    ("polling", "web"),
    ("daemon",),
    ("cli",),
)


def _may_import() -> dict[str, frozenset[str]]:
    allowed: dict[str, frozenset[str]] = {}
    below: set[str] = set()
    for peers in FLOW:
        for layer in peers:
            allowed[layer] = frozenset(below)
        below.update(peers)
    # A program of its own: it reuses the config's loaders and CAN's path, never the daemon.
    allowed["simulator"] = frozenset({"foundation", "config", "can"})
    return allowed


MAY_IMPORT: Mapping[str, frozenset[str]] = _may_import()

# The one import of the simulator by the daemon: the --demo wiring starts it in-process.
ALLOWED_EXCEPTIONS = frozenset({("exporter.daemon.run", "exporter.simulator")})


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    imported: str
    line: int

    def describe(self) -> str:
        return f"{_path(self.importer)}:{self.line}: {self.importer} imports {self.imported}"


def layer_of(module: str) -> str:
    if module in FOUNDATION:
        return "foundation"
    if module == "exporter.__main__":
        return "cli"
    parts = module.split(".")
    name = parts[1]
    return name if name in MAY_IMPORT else "foundation"


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(known: Mapping[str, Path]) -> list[Import]:
    """Every import of an exporter module by an exporter module, resolved to a known module."""
    found: list[Import] = []
    for module, path in known.items():
        found.extend(
            imports_in(module, path.read_text(), known, package=path.name == "__init__.py")
        )
    return found


def imports_in(
    module: str, source: str, known: Mapping[str, Path], *, package: bool = False
) -> list[Import]:
    """The imports of exporter modules in one module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        for imported in _imported_names(node, module, package):
            target = _resolve(imported, known)
            if target is not None and target != module:
                found.append(Import(module, target, getattr(node, "lineno", 0)))
    return found


def _imported_names(node: ast.AST, module: str, package: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = module.split(".")
            if not package:
                parts = parts[:-1]
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join([*parts, base] if base else parts)
        # "from exporter.metrics import declarations" imports the submodule.
        yield from (f"{base}.{alias.name}" for alias in node.names)


def _resolve(name: str, known: Mapping[str, Path]) -> str | None:
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def violations(found: list[Import]) -> list[str]:
    """Imports against the flow, then cycles between modules: one line each."""
    problems = []
    for edge in found:
        source, target = layer_of(edge.importer), layer_of(edge.imported)
        if source == target or (edge.importer, edge.imported) in ALLOWED_EXCEPTIONS:
            continue
        if target not in MAY_IMPORT[source]:
            problems.append(f"{edge.describe()} ({source} may not import {target})")
    problems.extend(f"import cycle: {' → '.join(cycle)}" for cycle in cycles(found))
    return problems


def cycles(found: list[Import]) -> list[list[str]]:
    """One cycle through each strongly connected set of modules (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in found:
        graph[edge.importer].add(edge.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [[*component, component[0]] for component in components]


def package_graph(found: list[Import]) -> dict[str, dict[str, int]]:
    """Layer → layer it imports → how many imports."""
    graph: dict[str, dict[str, int]] = {layer: {} for layer in MAY_IMPORT}
    for edge in found:
        source, target = layer_of(edge.importer), layer_of(edge.imported)
        if source != target:
            graph[source][target] = graph[source].get(target, 0) + 1
    return graph


def _path(module: str) -> str:
    path = modules().get(module)
    return str(path.relative_to(ROOT)) if path else module


def main() -> int:
    known = modules()
    found = imports(known)
    for layer, targets in package_graph(found).items():
        listed = ", ".join(f"{target} ({count})" for target, count in sorted(targets.items()))
        print(f"{layer:<10} → {listed or '-'}")
    problems = violations(found)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
