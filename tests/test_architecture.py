"""The package layout stays acyclic and layered: no package imports a higher layer, counting
imports inside functions."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "hud"


def _parse(source: str) -> ast.Module:
    """``ast.parse``, tried again on ``SystemError``: CPython 3.11 can fail a parse with a
    spurious "AST constructor recursion depth mismatch" (gh-106905, its depth count left off
    by an error in an earlier conversion); seen once here after the agent tests."""
    for attempt in range(3):
        try:
            return ast.parse(source)
        except SystemError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _imports(path: Path, *, everywhere: bool) -> Iterator[tuple[str, int]]:
    """Absolute module names a file imports, with their line: at module level, or
    ``everywhere`` (inside functions, under ``TYPE_CHECKING``)."""
    tree = _parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree) if everywhere else tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


def _edges(*, everywhere: bool) -> dict[str, set[tuple[str, str]]]:
    """``{package: {(imported package, "file:line"), ...}}`` between hud's top-level packages."""
    edges: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        package = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for name, line in _imports(path, everywhere=everywhere):
            parts = name.split(".")
            if parts[0] == "hud" and len(parts) > 1 and parts[1] != package:
                edges[package].add((parts[1], f"{path.relative_to(ROOT.parent)}:{line}"))
    return edges


def _module_level_edges() -> dict[str, set[tuple[str, str]]]:
    return _edges(everywhere=False)


def _all_edges() -> dict[str, set[tuple[str, str]]]:
    return _edges(everywhere=True)


def _cycles(edges: dict[str, set[tuple[str, str]]]) -> dict[str, list[str]]:
    """Packages that reach themselves, each with the imports that lead back into the cycle."""
    graph = {pkg: {target for target, _ in targets} for pkg, targets in edges.items()}

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        stack = list(graph.get(start, ()))
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(graph.get(node, ()))
        return seen

    cyclic = {pkg for pkg in graph if pkg in reachable(pkg)}
    return {
        pkg: sorted(w for t, w in edges[pkg] if t in cyclic and pkg in reachable(t))
        for pkg in sorted(cyclic)
    }


def test_no_import_cycles_between_packages() -> None:
    cycles = _cycles(_module_level_edges())
    assert not cycles, f"packages in an import cycle: {cycles}"


def test_protocol_is_pure() -> None:
    edges = _module_level_edges()
    assert {target for target, _ in edges.get("protocol", set())} == set()


def test_capabilities_are_pure_descriptors() -> None:
    """`hud.capabilities` sits below both sides (servers in environment, clients in clients):
    it imports no other hud package, not even inside a function."""
    for path in (ROOT / "capabilities").rglob("*.py"):
        for name, _ in _imports(path, everywhere=True):
            parts = name.split(".")
            assert parts[0] != "hud" or parts[1] == "capabilities", f"{path}: imports {name}"


#: The layers of design.md, lowest first: a package imports only from lower ranks (counting
#: imports inside functions). A new top-level package or module must be placed here.
RANKS = {
    "protocol": 0,
    "version": 0,
    "settings": 0,
    "types": 1,
    "capabilities": 1,
    "transport": 1,
    "telemetry": 2,
    "environment": 3,
    "clients": 4,
    "graders": 5,
    "eval": 6,
    "agents": 7,
    "integrations": 8,
    "platform": 9,
    "cli": 10,
    "__init__": 11,
    "__main__": 11,
}


def test_no_cycles_counting_imports_inside_functions() -> None:
    cycles = _cycles(_all_edges())
    assert not cycles, f"packages in an import cycle: {cycles}"


def test_lower_layers_never_import_higher_ones() -> None:
    packages = {p.relative_to(ROOT).parts[0].removesuffix(".py") for p in ROOT.rglob("*.py")}
    unplaced = sorted(packages - RANKS.keys() - {"py"})
    assert not unplaced, f"place these packages in RANKS (design.md's layers): {unplaced}"
    upward = sorted(
        f"{pkg} -> {target} ({where})"
        for pkg, targets in _all_edges().items()
        for target, where in targets
        if RANKS[target] >= RANKS[pkg] and target != pkg
    )
    assert not upward, "imports from a higher (or the same) layer: " + "; ".join(upward)
