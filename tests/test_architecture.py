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


def _all_edges() -> dict[str, set[tuple[str, str]]]:
    """Like `_module_level_edges`, counting imports anywhere (inside functions, under
    ``TYPE_CHECKING``)."""
    edges: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        package = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "hud" and len(parts) > 1 and parts[1] != package:
                    edges[package].add((parts[1], f"{path.relative_to(ROOT.parent)}:{node.lineno}"))
    return edges


def function_level_cycles() -> dict[tuple[str, str], list[str]]:
    """Package pairs importing each other, counting every import: ``{(a, b): [where...]}``
    (for information; see the test below for the pairs already kept apart)."""
    edges = _all_edges()
    out: dict[tuple[str, str], list[str]] = {}
    for a, targets in edges.items():
        for b, _ in targets:
            back = [w for t, w in edges.get(b, ()) if t == a]
            if back and a < b:
                there = sorted(w for t, w in targets if t == b)
                out[(a, b)] = there + back
    return out


def test_no_function_level_cycles_between_eval_types_telemetry_environment_integrations() -> None:
    kept_apart = {
        ("eval", "types"),
        ("eval", "telemetry"),
        ("environment", "types"),
        ("eval", "integrations"),
    }
    found = {pair: where for pair, where in function_level_cycles().items() if pair in kept_apart}
    assert not found, f"imports (some inside functions) that make a cycle: {found}"
