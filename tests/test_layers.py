"""The engine's modules depend on each other in one direction, and its two public faces are leaves.

The graph is built from the source (``ast``), not from what happens to be
imported at run time, so every import counts: at module level, inside a
function (a lazy import is still a dependency; it only hides the circle from
the interpreter) and under ``if TYPE_CHECKING:``.  Type-only imports count
because a circle of types is a circle of meaning: two modules that can only be
understood together are one module in two files, and the next runtime import
between them turns into an import-order bug.

One exemption, documented where it is made (``TYPE_ONLY``): ``fuzzer.spec``'s
records annotate the callables they carry with the Protocols of
``fuzzer.api`` (a handler receives a ``Device``), and those Protocols hand out
the records (``World.policy`` is a ``Policy``).  That mutual reference is the
plugin contract itself; breaking it would mean one module holding both the
records and the Protocols, or annotations loosened to ``Any``, both worse than a
``TYPE_CHECKING`` import.  The exemption holds only while every import behind
that edge is type-only, and the test says so when it is no longer needed.

``fuzzer/__init__.py`` (the public re-export plugins import) and
``fuzzer/harness.py`` (the surface a live target drives) sit on top: no engine
module imports them, and ``from fuzzer import X`` inside the engine names
modules only (``fuzzer.version`` holds ``__version__`` for that reason).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "fuzzer"

#: (importer, imported) -> why this type-only edge may close a circle.  Honoured only
#: while every import behind the edge sits under ``if TYPE_CHECKING:``.
TYPE_ONLY = {
    ("fuzzer.spec", "fuzzer.api"): "records annotate their callables with the Protocols of what those "
                                   "callables receive; the Protocols hand out the records",
}
#: Modules nothing inside the engine may import: the public package and the harness.
LEAVES = ("fuzzer", "fuzzer.harness")


class Edge(NamedTuple):
    """One import statement from ``source`` that needs ``target`` (both dotted module names)."""

    source: str
    target: str
    line: int
    type_only: bool
    #: what the statement imports from a package rather than a module (``from fuzzer import __version__``)
    names: tuple[str, ...] = ()

    def where(self, root: Path) -> str:
        path = module_path(root, self.source)
        mark = ", TYPE_CHECKING" if self.type_only else ""
        return f"{path.relative_to(root.parent)}:{self.line}{mark}"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package at ``root`` (``fuzzer/__init__.py`` is ``fuzzer``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def module_path(root: Path, name: str) -> Path:
    return module_names(root)[name]


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    out.update(id(n) for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return out


def imports(root: Path) -> list[Edge]:
    """Every import inside the package at ``root`` of one of its own modules, wherever it stands."""
    modules = module_names(root)
    package = root.name

    def owner(name: str) -> str | None:
        """The package's module that ``name`` (dotted) lives in: itself, or the longest prefix that is one."""
        while name:
            if name in modules:
                return name
            name = name.rpartition(".")[0]
        return None

    edges = []
    for source, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        typed = _type_checking_blocks(tree)
        here = source if path.name == "__init__.py" else source.rpartition(".")[0]
        for node in ast.walk(tree):
            type_only = id(node) in typed
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == package:
                        edges.append(Edge(source, owner(alias.name) or alias.name, node.lineno, type_only))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                if module.split(".")[0] != package:
                    continue
                plain = []
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    if sub in modules:  # ``from fuzzer import corpus``: the module corpus
                        edges.append(Edge(source, sub, node.lineno, type_only))
                    else:
                        plain.append(alias.name)
                if plain:
                    edges.append(Edge(source, owner(module) or module, node.lineno, type_only,
                                      tuple(plain) if owner(module) == package else ()))
    return [e for e in edges if e.source != e.target]


def graph(edges: list[Edge]) -> dict[str, dict[str, list[Edge]]]:
    """source -> target -> the imports making that dependency, minus the honoured ``TYPE_ONLY`` edges."""
    out: dict[str, dict[str, list[Edge]]] = {}
    for e in edges:
        out.setdefault(e.source, {}).setdefault(e.target, []).append(e)
    for (source, target) in TYPE_ONLY:
        behind = out.get(source, {}).get(target, [])
        if behind and all(e.type_only for e in behind):
            del out[source][target]
    return out


def cycles(g: dict[str, dict[str, list[Edge]]]) -> list[list[Edge]]:
    """One circle (as its edges) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the engine has tens of modules, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return [_circle(g, comp) for comp in components]


def _circle(g: dict[str, dict[str, list[Edge]]], comp: list[str]) -> list[Edge]:
    """A shortest circle through the component's first module (breadth-first, inside the component)."""
    start, inside = comp[0], set(comp)
    came: dict[str, Edge] = {}
    todo = [start]
    while todo:
        nxt = []
        for v in todo:
            for w, behind in sorted(g.get(v, {}).items()):
                if w not in inside or w in came:
                    continue
                came[w] = behind[0]
                if w == start:
                    path = []
                    at = start
                    while True:
                        edge = came[at]
                        path.append(edge)
                        at = edge.source
                        if at == start:
                            return path[::-1]
                nxt.append(w)
        todo = nxt
    raise AssertionError(f"no circle in component {comp}")  # pragma: no cover


def describe(circle: list[Edge], root: Path) -> str:
    """``a -> b (fuzzer/a.py:12) -> a (fuzzer/b.py:30, TYPE_CHECKING)``: the circle and each import's place."""
    return circle[0].source + "".join(f" -> {e.target} ({e.where(root)})" for e in circle)


def leaf_breaches(edges: list[Edge], root: Path, leaves: tuple[str, ...] = LEAVES) -> Iterator[str]:
    """Engine imports of the public package's names (or of the package itself) or of another leaf."""
    package = root.name
    for e in edges:
        if e.source in leaves:
            continue
        if e.target == package:
            what = f"from {package} import {', '.join(e.names)}" if e.names else f"import {package}"
            yield f"{e.where(root)}: {what} (the public package: import from the module that defines it)"
        elif e.target in leaves:
            yield f"{e.where(root)}: imports {e.target}, which only plugins and live targets may import"


# ----------------------------------------------------------------------------- the engine


def test_the_engine_has_no_import_cycle() -> None:
    found = cycles(graph(imports(ENGINE)))
    assert not found, "import circles in fuzzer/:\n" + "\n".join(describe(c, ENGINE) for c in found)


def test_the_type_only_exemptions_are_type_only_and_still_needed() -> None:
    """An exempted edge must exist (else drop the exemption) and be ``TYPE_CHECKING``-only (else it is a real circle)."""
    edges = imports(ENGINE)
    for (source, target), why in TYPE_ONLY.items():
        behind = [e for e in edges if (e.source, e.target) == (source, target)]
        assert behind, f"{source} no longer imports {target}: remove its TYPE_ONLY exemption ({why})"
        runtime = [e.where(ENGINE) for e in behind if not e.type_only]
        assert not runtime, f"{source} imports {target} at run time ({', '.join(runtime)}); only type-only imports are exempt"
        assert any((e.source, e.target) == (target, source) for e in edges), (
            f"{target} no longer imports {source}: remove the TYPE_ONLY exemption ({why})")


def test_the_public_package_and_the_harness_are_leaves() -> None:
    breaches = list(leaf_breaches(imports(ENGINE), ENGINE))
    assert breaches == [], "\n".join(breaches)


def test_the_graph_sees_the_engine_as_it_is() -> None:
    """The parser finds the imports the engine is known to have, of every kind, and no template text."""
    edges = {(e.source, e.target, e.type_only) for e in imports(ENGINE)}
    assert ("fuzzer.campaign", "fuzzer.minimize", False) in edges  # module level
    assert ("fuzzer.machine", "fuzzer.host", False) in edges  # inside a function (state_machine)
    assert ("fuzzer.replay", "fuzzer.registry", True) in edges  # under TYPE_CHECKING
    assert ("fuzzer", "fuzzer.fwctl", False) in edges  # ``from fuzzer import fwctl`` is the module
    # export.py's pytest template says "from fuzzer import host" inside a string: not an import
    assert ("fuzzer.export", "fuzzer.host", False) not in edges


# ----------------------------------------------------------------------------- the checker itself


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_a_planted_circle_is_reported_with_every_import_that_makes_it(tmp_path: Path) -> None:
    """A lazy import one way and a TYPE_CHECKING import back: a circle, printed import by import."""
    root = _package(tmp_path, {
        "__init__.py": 'VERSION = "1"\n',
        "a.py": "def f() -> None:\n    from pkg import b\n",
        "b.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg.a import f\n",
        "c.py": "from . import a\nimport pkg.b\n",
    })
    edges = {(e.source, e.target, e.type_only) for e in imports(root)}
    assert edges == {("pkg.a", "pkg.b", False), ("pkg.b", "pkg.a", True), ("pkg.c", "pkg.a", False),
                     ("pkg.c", "pkg.b", False)}
    found = cycles(graph(imports(root)))
    assert [describe(c, root) for c in found] == [
        "pkg.a -> pkg.b (pkg/a.py:2) -> pkg.a (pkg/b.py:4, TYPE_CHECKING)"
    ]


def test_a_planted_import_of_the_public_package_or_the_harness_is_reported(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "__init__.py": 'VERSION = "1"\n',
        "harness.py": "from pkg import a\n",
        "a.py": "def version() -> str:\n    from pkg import VERSION, b\n    return VERSION\n",
        "b.py": "import pkg.harness\n",
        "d.py": "import pkg\n",
    })
    assert list(leaf_breaches(imports(root), root, ("pkg", "pkg.harness"))) == [
        "pkg/a.py:2: from pkg import VERSION (the public package: import from the module that defines it)",
        "pkg/b.py:1: imports pkg.harness, which only plugins and live targets may import",
        "pkg/d.py:1: import pkg (the public package: import from the module that defines it)",
    ]
