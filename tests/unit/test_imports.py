"""The import graph between align_lab's modules has no cycle, counting every import: top level, inside
functions, under `if TYPE_CHECKING:` (a cycle hidden in a function body is still a cycle in the design:
each module needs the other to be read)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "align_lab"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """align_lab/results/stats.py -> align_lab.results.stats; align_lab/rl/__init__.py -> align_lab.rl."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


def imported_modules(path: Path, known: set[str], package: Path = PACKAGE) -> set[str]:
    """The modules of `known` that `path` imports anywhere in its body. `from a.b import c` names the
    module a.b.c when that is a module, else a.b; relative imports are resolved against `path`."""
    here = module_name(path, package)
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x / from ..stats import y
                anchor = here.split(".") if is_package else here.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            subs = {f"{base}.{a.name}" for a in node.names} & known
            out |= subs or {base}
            if len(subs) < len(node.names):  # some names are attributes of base itself
                out.add(base)
    return {m for m in out if m in known and m != here}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package modules it imports."""
    modules = package_modules(package)
    return {name: imported_modules(path, set(modules), package) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a -> b -> ... -> a), or None; graphlib finds it."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as e:
        return list(e.args[1])
    return None


def test_the_import_graph_of_align_lab_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_check_sees_a_cycle_hidden_in_a_function(tmp_path):
    # a imports b at the top; b imports a inside a function, relatively: still a cycle
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .a import g\n    return g\n")
    (pkg / "c.py").write_text("from pkg.sub.a import x\n")
    graph = import_graph(pkg)
    assert graph["pkg.sub.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.sub.a"}
    assert graph["pkg.c"] == {"pkg.sub.a"}
    assert sorted(find_cycle(graph) or []) == ["pkg.sub.a", "pkg.sub.a", "pkg.sub.b"]


@pytest.mark.parametrize("line", ["import pkg.b", "from pkg import b", "from . import b", "from .b import f"])
def test_every_import_form_is_an_edge(tmp_path, line):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(line + "\n")
    (pkg / "b.py").write_text("def f():\n    pass\n")
    assert import_graph(pkg)["pkg.a"] == {"pkg.b"}
