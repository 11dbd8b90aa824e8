"""The package's layers (docs/development.md): no import circles between modules or between
sub-packages, imports inside functions included; ``models`` imports no other sub-package but
the lower layer; nothing inside the package reaches a sibling through the root package. Read
from the source with ``ast``: nothing is imported."""

from __future__ import annotations

import ast
from collections import defaultdict

from helpers import ROOT

PACKAGE = ROOT / "inception"
LOWER = {"errors", "_imports", "precisions", "progress", "preprocessing"}  # below models


def _modules() -> dict[str, object]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(modules) -> dict[str, set[str]]:
    """module -> the package modules it imports (anywhere in its body)."""
    edges = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            edges[name].update(t for t in targets if t in modules and t != name)
    return edges


def _cycles(edges) -> list[set[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def _folder(module: str) -> str:
    return module.split(".")[1] if "." in module else "<root>"


def test_no_import_circles_between_modules_or_sub_packages():
    edges = _imports(_modules())
    assert _cycles(edges) == []
    folders = defaultdict(set)
    for a, targets in edges.items():
        for b in targets:
            if _folder(a) != _folder(b) and "." in a:
                folders[_folder(a)].add(_folder(b))
    assert _cycles(folders) == [], dict(folders)
    assert folders["models"] <= LOWER, folders["models"]  # models/ is a leaf above LOWER


def test_nothing_reaches_a_sibling_through_the_root_package():
    edges = _imports(_modules())
    through_root = {a for a, targets in edges.items() if "inception" in targets}
    assert through_root <= {"inception.cli"}, through_root  # the CLI reads __version__ only
