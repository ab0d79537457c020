"""No import circle in ``nas/``: every import (top-level, inside functions, under TYPE_CHECKING) counts.

A circle hidden behind a lazy import still means two modules need each other, i.e. a concept with no
single home; this scan finds them all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "nas"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(package: Path = PACKAGE) -> nx.DiGraph:
    """Module -> module it imports (the submodule where ``from pkg import name`` names one)."""
    files = {module_name(p): p for p in package.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in targets:
                while target and target not in files:  # `import nas.x.y.z` of an attribute: its module
                    target = target.rpartition(".")[0]
                # a module's own ancestors are already importing when it runs: not an edge
                if target and target != name and not name.startswith(target + "."):
                    graph.add_edge(name, target)
    return graph


def test_the_scan_finds_a_circle_through_a_lazy_import(tmp_path):
    pkg = tmp_path / "nas"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from nas.a._x import f\n")
    (pkg / "a" / "_x.py").write_text("def f():\n    from nas.b import g\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from nas.a import f\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        cycles = list(nx.simple_cycles(import_graph(pkg)))
    finally:
        ROOT = saved
    assert sorted(map(sorted, cycles)) == [["nas.a", "nas.a._x", "nas.b"]]


def test_no_import_circle_in_nas():
    cycles = sorted(sorted(c) for c in nx.simple_cycles(import_graph()))
    assert cycles == [], "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)
