"""The package layout stays acyclic: no two top-level packages import each other at load time."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "hud"


def _module_level_edges() -> dict[str, set[tuple[str, str]]]:
    edges: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        package = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "hud" and len(parts) > 1 and parts[1] != package:
                    edges[package].add((parts[1], str(path.relative_to(ROOT.parent))))
    return edges


def test_no_import_cycles_between_packages() -> None:
    edges = _module_level_edges()
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

    cycles = sorted(pkg for pkg in graph if pkg in reachable(pkg))
    assert not cycles, f"packages in an import cycle: {cycles}: {dict(edges)}"


def test_protocol_is_pure() -> None:
    edges = _module_level_edges()
    assert {target for target, _ in edges.get("protocol", set())} == set()


def test_capabilities_are_pure_descriptors() -> None:
    """`hud.capabilities` sits below both sides (servers in environment, clients in clients):
    it imports no other hud package, not even inside a function."""
    for path in (ROOT / "capabilities").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                assert parts[0] != "hud" or parts[1] == "capabilities", f"{path}: imports {name}"
