"""The code's shape: modules share only public names, and no modules import each other in a circle.

Both checks read the source with `ast` (nothing is imported), counting every
import, also those inside functions: a lazy import still ties two modules.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "neurosim"
SCRIPTS = ("analysis", "benchmarks")   # scripts use the package like anyone else: its public names only

# Known cases, each left to the work that removes it; delete an entry when its case is gone.
ALLOWED_PRIVATE_IMPORTS: set[str] = set()
ALLOWED_IMPORTS_IN_CIRCLES: set[tuple[str, str]] = set()


def module_files(base: Path, folders: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under these folders of `base`."""
    out = {}
    for folder in folders:
        for path in sorted((base / folder).rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def scan(name: str, path: Path, known: dict[str, Path]) -> tuple[set[str], set[str]]:
    """The known modules that module `name` imports, and the private names it takes from other modules
    ('importer -> module._name')."""
    tree = ast.parse(path.read_text(), str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    imported, private = set(), set()
    bound: dict[str, str] = {}   # local name -> the module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imported.add(alias.name)
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:   # `import a.b` binds `a`
                    bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                if f"{source}.{alias.name}" in known:   # a submodule
                    imported.add(f"{source}.{alias.name}")
                    bound[alias.asname or alias.name] = f"{source}.{alias.name}"
                else:
                    imported.add(source)
                    if _private(alias.name) and source != name and source in known:
                        private.add(f"{name} -> {source}.{alias.name}")
    for node in ast.walk(tree):   # module._name, also through packages: neurosim.dse.evaluate._MODELS
        if isinstance(node, ast.Attribute) and _private(node.attr):
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                target = ".".join([bound[value.id], *reversed(chain)])
                if target in known and target != name:
                    private.add(f"{name} -> {target}.{node.attr}")
    return {m for m in imported if m in known and m != name}, private


def import_graph(known: dict[str, Path]) -> dict[str, set[str]]:
    return {name: scan(name, path, known)[0] for name, path in known.items()}


def circles(graph: dict[str, set[str]], allowed: set[tuple[str, str]] = frozenset()) -> list[str]:
    """One shortest circle ('a -> b -> a') per group of modules that import each other, allowed edges left out."""
    edges = {a: {b for b in bs if (a, b) not in allowed} for a, bs in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack, on_stack, groups = [], set(), []

    def visit(v: str) -> None:   # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    out = []
    for group in groups:
        start = min(group)
        came_from, queue = {start: None}, deque([start])
        while queue:   # breadth first, back to start: the shortest circle through it
            v = queue.popleft()
            if start in edges[v]:
                path = [v]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])
                out.append(" -> ".join([*reversed(path), start]))
                break
            for w in sorted(edges[v] & group):
                if w not in came_from:
                    came_from[w] = v
                    queue.append(w)
    return sorted(out)


def test_no_module_imports_another_modules_private_names():
    known = module_files(REPO, (PACKAGE, *SCRIPTS))
    found = set().union(*(scan(name, path, known)[1] for name, path in known.items()))
    assert sorted(found - ALLOWED_PRIVATE_IMPORTS) == []


def test_no_module_imports_a_circle():
    graph = import_graph(module_files(REPO, (PACKAGE,)))
    assert "neurosim.dse.spec" in graph["neurosim.dse.evaluate"]   # the graph sees imports at all
    assert circles(graph, ALLOWED_IMPORTS_IN_CIRCLES) == []


def test_the_checks_find_a_planted_circle_and_private_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n_hidden = 1\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import _hidden\n    return _hidden\n")
    (pkg / "c.py").write_text("import pkg.sub.b\nimport pkg.a as a\n\nx = a._hidden\ny = pkg.sub.b._f\n")
    known = module_files(tmp_path, ("pkg",))
    graph = import_graph(known)
    assert circles(graph) == ["pkg.a -> pkg.sub.b -> pkg.a"]
    assert circles(graph, {("pkg.sub.b", "pkg.a")}) == []
    assert scan("pkg.sub.b", known["pkg.sub.b"], known)[1] == {"pkg.sub.b -> pkg.a._hidden"}
    assert scan("pkg.c", known["pkg.c"], known)[1] == {"pkg.c -> pkg.a._hidden", "pkg.c -> pkg.sub.b._f"}
