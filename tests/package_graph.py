"""The import graph of a package, read with ast: every import counts (top level, inside functions, under
`if TYPE_CHECKING:`), across align_lab and hydra_plugins/ (the launchers). Shared by
tests/unit/test_imports.py and tests/unit/test_floors.py."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "align_lab"
# the launchers' plugin package: Hydra imports it by its folder name, hydra_plugins.align_lab_launcher
PLUGINS = PACKAGE.parent / "hydra_plugins"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """align_lab/results/stats.py -> align_lab.results.stats; align_lab/rl/__init__.py -> align_lab.rl."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


def all_imports(path: Path, known: set[str], package: Path = PACKAGE) -> set[str]:
    """Every module `path` imports anywhere in its body, foreign ones included. `from a.b import c` names
    the module a.b.c when that is one of `known`, else a.b; relative imports are resolved against `path`."""
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
    return out


def imported_modules(path: Path, known: set[str], package: Path = PACKAGE) -> set[str]:
    """The modules of `known` that `path` imports anywhere in its body."""
    here = module_name(path, package)
    return {m for m in all_imports(path, known, package) if m in known and m != here}


def import_graph(*packages: Path) -> dict[str, set[str]]:
    """module -> the modules of `packages` (default: align_lab and its launchers' plugins) it imports."""
    packages = packages or (PACKAGE, PLUGINS)
    modules = {name: (path, p) for p in packages for name, path in package_modules(p).items()}
    known = set(modules)
    return {name: imported_modules(path, known, p) for name, (path, p) in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a -> b -> ... -> a), or None; graphlib finds it."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as e:
        return list(e.args[1])
    return None
