"""The package's layers point inward and its modules import no cycle.

Every ``import`` in ``sesim`` (module level or inside a function; not those under ``if
TYPE_CHECKING:``, which never run) is read from the source, and each module is given a layer:

=====  ==================================================================================
rank   modules
=====  ==================================================================================
0      base: ``ranges``, ``safeload``, ``runtime``, ``speedups``, ``memory``
1      ``ops``: pure tensor functions
2      ``nets``, ``losses``, ``data``, ``checkpoint``; the package root (the loss's public facade)
3      ``config``: the option sections
4      components built from options: ``factory``, ``methods``, ``metrics``, ``viz`` (drawing only),
       ``snapshots``, ``layerwise``, ``tiled``, ``distributed``
5      the loop and the inference path: ``train``, ``translate``, ``translate_exemplar``, ``run``,
       ``evaluate``, ``export``
6      the application: ``cli``, ``demo``, ``sweep``, ``explain``, ``view``
=====  ==================================================================================

A module may import its own layer or lower ones, never a higher one, and no set of modules may
import each other in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sesim"

LAYERS: dict[str, int] = {
    "sesim.ranges": 0, "sesim.safeload": 0, "sesim.runtime": 0, "sesim.speedups": 0, "sesim.memory": 0,
    "sesim.ops": 1,
    "sesim.nets": 2, "sesim.losses": 2, "sesim.data": 2, "sesim.checkpoint": 2, "sesim": 2,
    "sesim.config": 3,
    "sesim.factory": 4, "sesim.methods": 4, "sesim.metrics": 4, "sesim.viz": 4, "sesim.snapshots": 4,
    "sesim.layerwise": 4, "sesim.tiled": 4, "sesim.distributed": 4,
    "sesim.train": 5, "sesim.translate": 5, "sesim.translate_exemplar": 5, "sesim.run": 5, "sesim.evaluate": 5,
    "sesim.export": 5,
    "sesim.cli": 6, "sesim.__main__": 6, "sesim.demo": 6, "sesim.sweep": 6, "sesim.explain": 6, "sesim.view": 6,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """The rank of the longest prefix of ``module`` in :data:`LAYERS`."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise AssertionError(f"{module} has no layer: add it to LAYERS in tests/test_layers.py")


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, child.end_lineno + 1))
    return lines


def imports(path: Path, modules: set[str]) -> set[str]:
    """The ``sesim`` modules that ``path`` imports (a package's ``__init__`` for ``from pkg import name``)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    out: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "sesim")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "sesim":
                continue
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in modules else target)
    out.discard(me)
    return out


def graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in files}
    return {module_name(p): {m for m in imports(p, modules) if m in modules} for p in files}


def test_every_import_points_inward():
    outward = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
               for m, targets in graph().items() for t in sorted(targets) if layer(t) > layer(m)]
    assert not outward, "\n".join(outward)


def test_no_import_cycle():
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_checker_sees_what_it_must():
    """The walk itself: a relative import inside a function counts, one under TYPE_CHECKING does not."""
    g = graph()
    assert "sesim.config" not in g["sesim.data.unpaired"]
    assert "sesim.nets.vgg" in g["sesim.config"]  # the lazy import of the old-config migration
    assert "sesim.translate" in g["sesim.evaluate"]  # imported inside a function
