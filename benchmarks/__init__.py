"""The benchmark suite: `python -m benchmarks list`, `python -m benchmarks run NAME [--smoke] [args]`.

Each benchmark is a module here with NEEDS, SMOKE and main(argv) (benchmarks/harness.py); `suite()`
finds them by reading the modules, without importing them (and so torch)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Benchmark:
    name: str
    what: str  # the docstring's first line
    needs: tuple[str, ...]  # beyond the test environment: "trl", "smollm2", "cuda", "vllm"
    smoke: tuple[str, ...]  # the arguments of a run of seconds


def read(path: Path) -> Benchmark | None:
    """The benchmark that module `path` declares (module-level NEEDS and SMOKE), or None."""
    tree = ast.parse(path.read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("NEEDS", "SMOKE"):
                try:
                    found[name] = tuple(ast.literal_eval(node.value))
                except ValueError:
                    raise ValueError(f"{path.name}: {name} must be a literal tuple of strings") from None
    if "NEEDS" not in found:
        return None
    what = (ast.get_docstring(tree) or "").strip().splitlines()[0]
    return Benchmark(path.stem, what, found["NEEDS"], found.get("SMOKE", ()))


def suite() -> dict[str, Benchmark]:
    """Every benchmark, by name."""
    found = (read(p) for p in sorted(HERE.glob("*.py")) if not p.name.startswith("_"))
    return {b.name: b for b in found if b is not None}
