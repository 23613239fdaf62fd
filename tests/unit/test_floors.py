"""The import floors of shared/design.md hold: a module imports only from floors below its own, `rl/`
imports only torch, and only the entry point and config.py import Hydra or OmegaConf."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "align_lab"

# lower number = lower floor; an import must point strictly down (or stay inside its own package)
FLOOR = {
    "rl": 0,
    "checks": 0,
    "registry": 0,
    "tasks": 1,
    "tracking": 1,
    "algorithms": 1,
    "config": 1,
    "folder": 1,  # a run folder's lock and ownership (stdlib + checks), read by results/ and study/
    "cache": 2,
    "models": 3,
    "rewards": 4,
    "rollout": 4,
    "train": 5,
    "study": 6,
    "results": 2,
    "app": 7,
    "compare": 7,
    "__main__": 8,
}
ENTRY = {"app", "config"}  # the only importers of Hydra / OmegaConf


def part(module: str) -> str:
    """align_lab.train.online -> train; align_lab.cache -> cache."""
    return module.split(".")[1]


def imports(path: Path) -> list[str]:
    """Every module `path` imports, at top level or inside functions (relative ones resolved)."""
    tree = ast.parse(path.read_text())
    here = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from .stats import x
                base = here.split(".")[: -node.level]
                out.append(".".join([*base, node.module] if node.module else base))
            else:
                out.append(node.module)
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_floor():
    parts = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES} - {"__init__"}
    assert parts <= set(FLOOR), f"give these a floor in FLOOR: {sorted(parts - set(FLOOR))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    me = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if me == "__init__":
        return
    up = [
        m
        for m in imports(path)
        if m.startswith("align_lab.") and part(m) != me and FLOOR[part(m)] >= FLOOR[me]
    ]
    assert not up, f"{path.name} ({me}, floor {FLOOR[me]}) imports from its floor or above: {up}"
    if me == "rl":
        allowed = ("torch", "__future__", "align_lab", "math")
        foreign = [m for m in imports(path) if m.split(".")[0] not in allowed]
        assert not foreign, f"rl/ imports only torch: {path.name} imports {foreign}"
    if me not in ENTRY:
        hydra = [m for m in imports(path) if m.split(".")[0] in ("hydra", "omegaconf")]
        assert not hydra, f"{path.name} imports {hydra}: only app.py and config.py may"
