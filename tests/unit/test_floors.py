"""The package keeps the floors and limits of docs/design.md (section 9), read from its tables: a module
imports only from floors below its own, a subpackage with a surface (train/memory/) is asked only
through its __init__.py and imports little of its part, `rl/` imports only torch, only the parts marked
Hydra import Hydra or OmegaConf, the import graph has no cycle, and no function or file is longer than
the limits. The launchers' plugin package (hydra_plugins/align_lab_launcher/) sits above every floor: it
may import the package, the package never imports it, and the cycle and size limits hold for it too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.package_graph import (
    PACKAGE,
    PLUGINS,
    all_imports,
    find_cycle,
    import_graph,
    module_name,
    package_modules,
)

DESIGN = PACKAGE.parent / "docs" / "design.md"
# known exceptions to the size limits, each with its way out (the coordinator removes them)
OVER_LIMITS: set[str] = set()
# a loop's body reads as its numbered steps in one function (torchtune's recipes, CleanRL's update):
# split to fit the function limit, a step's lines landed in helpers that did not each do one thing
LOOP_BODIES = {"align_lab/train/online.py::train_online": 120}


def design_tables(text: str) -> tuple[dict[str, int], set[str], dict[str, int]]:
    """(floor of each part, the parts that may import Hydra, lines allowed per function and per file)
    from the tables of docs/design.md: rows "| `part` | floor | yes? | ... |" and "| limit | lines |"."""
    floors, hydra, limits = {}, set(), {}
    for line in text.splitlines():
        if m := re.match(r"\| `(\w+)` \| (\d+) \| *(yes)? *\|", line):
            floors[m[1]] = int(m[2])
            if m[3]:
                hydra.add(m[1])
        elif m := re.match(r"\| (function|file) \| (\d+) \|", line):
            limits[m[1]] = int(m[2])
    return floors, hydra, limits


def surface_table(text: str) -> dict[str, set[str]]:
    """Each subpackage with a surface and the modules of its part it may import, from docs/design.md's
    rows "| `part.sub` | `a`, `b` | ... |"."""
    rows = re.findall(r"^\| `(\w+\.\w+)` \| ([^|]*) \|", text, re.M)
    return {sub: set(re.findall(r"`(\w+)`", allowed)) for sub, allowed in rows}


FLOOR, HYDRA, LIMIT = design_tables(DESIGN.read_text())
SURFACES = surface_table(DESIGN.read_text())
MODULES = sorted(PACKAGE.rglob("*.py"))
PLUGIN_MODULES = sorted(PLUGINS.rglob("*.py"))
KNOWN = set(package_modules()) | set(package_modules(PLUGINS))


def part(module: str) -> str:
    """align_lab.train.online -> train; align_lab.cache -> cache."""
    return module.split(".")[1]


def long_functions(path: Path, limit: int) -> list[str]:
    """'name (n lines)' of each function of `path` longer than `limit` lines (def to last line)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                out.append(f"{node.name} ({n} lines)")
    return out


def test_the_design_page_has_the_tables():
    assert {"rl", "train", "study", "__main__"} <= set(FLOOR) and HYDRA and set(LIMIT) == {"function", "file"}


def test_every_part_of_the_package_has_a_floor():
    parts = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES} - {"__init__"}
    assert parts <= set(FLOOR), (
        f"give these a floor in docs/design.md section 9: {sorted(parts - set(FLOOR))}"
    )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    me = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if me == "__init__":
        return
    names = all_imports(path, KNOWN)
    mine = module_name(path)
    up = [
        m
        for m in sorted(names)
        if m.startswith("align_lab.") and m != mine and part(m) != me and FLOOR[part(m)] >= FLOOR[me]
    ]
    assert not up, f"{path.name} ({me}, floor {FLOOR[me]}) imports from its floor or above: {up}"
    if me == "rl":
        allowed = ("torch", "__future__", "align_lab", "math")
        foreign = sorted(m for m in names if m.split(".")[0] not in allowed)
        assert not foreign, f"rl/ imports only torch: {path.name} imports {foreign}"
    if me not in HYDRA:
        hydra = sorted(m for m in names if m.split(".")[0] in ("hydra", "omegaconf"))
        assert not hydra, f"{path.name} imports {hydra}: only {sorted(HYDRA)} may"


def surface_breaches(module: str, names: set[str], surfaces: dict[str, set[str]]) -> list[str]:
    """The imports of `module` that pass a surface: a subpackage's inside from outside it, or from inside
    it a module of its part that the table does not name."""
    bad = []
    for sub, allowed in surfaces.items():
        package = f"align_lab.{sub}"
        inside = module == package or module.startswith(package + ".")
        parent = package.rsplit(".", 1)[0]
        for m in sorted(names):
            if not inside and m.startswith(package + "."):
                bad.append(f"{module} imports {m}: ask {package} (its __init__.py)")
            mine = m == package or m.startswith(package + ".")
            if inside and m.startswith(parent + ".") and not mine and m.split(".")[2] not in allowed:
                bad.append(f"{module} ({package}) imports {m}: of {parent} only {sorted(allowed)}")
    return bad


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_surface_is_passed_only_through_its_init(path):
    assert surface_breaches(module_name(path), all_imports(path, KNOWN), SURFACES) == []


def test_the_surface_check_sees_a_way_around_and_a_way_up():
    surfaces = surface_table("| `train.memory` | `micro`, `distributed` | the memory model |\n")
    assert surfaces == {"train.memory": {"micro", "distributed"}}
    around = {"align_lab.train.memory", "align_lab.train.memory.planner"}
    up = {"align_lab.train.micro", "align_lab.train.memory.footprint", "align_lab.train.online"}
    assert surface_breaches("align_lab.run.stages", around, surfaces) == [
        "align_lab.run.stages imports align_lab.train.memory.planner: ask align_lab.train.memory "
        "(its __init__.py)"
    ]
    assert surface_breaches("align_lab.train.memory.planner", up, surfaces) == [
        "align_lab.train.memory.planner (align_lab.train.memory) imports align_lab.train.online: of "
        "align_lab.train only ['distributed', 'micro']"
    ]


def test_the_import_graph_of_align_lab_and_its_launchers_has_no_cycle():
    graph = import_graph()
    assert any(m.startswith("hydra_plugins.align_lab_launcher.") for m in graph)  # both are read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_package_never_imports_its_launchers(path):
    names = all_imports(path, KNOWN)
    assert not [m for m in names if m.startswith("hydra_plugins.align_lab_launcher")], path.name


@pytest.mark.parametrize("path", MODULES + PLUGIN_MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_function_or_file_is_over_the_limits(path):
    name = str(path.relative_to(PACKAGE.parent))
    if name in OVER_LIMITS:
        return
    lines = len(path.read_text().splitlines())
    assert lines <= LIMIT["file"], f"{path.name}: {lines} lines, over {LIMIT['file']} (docs/design.md)"
    allowed = {key.split("::")[1]: n for key, n in LOOP_BODIES.items() if key.split("::")[0] == name}
    over = [f for f in long_functions(path, LIMIT["function"]) if not within(f, allowed)]
    assert over == []


def within(found: str, allowed: dict[str, int]) -> bool:
    """Whether long_functions' 'name (n lines)' is within the name's allowance in LOOP_BODIES."""
    name, lines = found.split(" (")
    return int(lines.split()[0]) <= allowed.get(name, 0)


def test_the_limits_see_a_long_function_and_the_tables_parse(tmp_path):
    source = tmp_path / "m.py"
    body = "".join(f"    x{i} = {i}\n" for i in range(60))  # def + 60 lines = 61 lines
    source.write_text(f"def short():\n    pass\n\n\nasync def long():\n{body}")
    assert long_functions(source, 60) == ["long (61 lines)"] and long_functions(source, 61) == []
    page = "| `rl` | 0 | | math |\n| `config` | 1 | yes | build |\n| function | 60 |\n| file | 320 |\n"
    assert design_tables(page) == ({"rl": 0, "config": 1}, {"config"}, {"function": 60, "file": 320})


# Issue 71: the online loop is closed to a new algorithm family, which reads named signals and declares
# a source (docs/design.md "Adding an algorithm family"); the contract between them has ceilings, so it
# cannot widen silently. Before (8aea48d): 21 Rollout fields, 13 LoopNeeds switches, 16 OnlineAlgorithm
# members, train/online.py 248 and train/learner.py 287 lines.
CONTRACT_CEILINGS = {"Rollout fields": 13, "LoopNeeds switches": 7, "OnlineAlgorithm members": 13}
LOOP_FILES = {"align_lab/train/online.py": 200, "align_lab/train/learner.py": 200}


def contract_sizes() -> dict[str, int]:
    """The loop contract's widths: Rollout's fields beside its one signals mapping, LoopNeeds' switches,
    OnlineAlgorithm's members (its annotated attributes and its methods)."""
    from dataclasses import fields

    from align_lab.algorithms.base import LoopNeeds, OnlineAlgorithm, Rollout

    rollout = [f.name for f in fields(Rollout)]
    assert "signals" in rollout  # what a loss reads beside the log-probs: one mapping, by name
    methods = {k for k in vars(OnlineAlgorithm) if not k.startswith("_")}
    members = methods | set(OnlineAlgorithm.__annotations__)
    return {
        "Rollout fields": len(rollout) - 1,
        "LoopNeeds switches": len(fields(LoopNeeds)),
        "OnlineAlgorithm members": len(members),
    }


def test_the_loop_contract_stays_under_its_ceilings():
    sizes = contract_sizes()
    over = {name: n for name, n in sizes.items() if n > CONTRACT_CEILINGS[name]}
    why = "a family reads a signal and declares a source; it adds no field or switch"
    assert over == {}, f"{over}: over {CONTRACT_CEILINGS}; {why}"


@pytest.mark.parametrize("name", sorted(LOOP_FILES))
def test_the_loop_files_stay_short(name):
    lines = len((PACKAGE.parent / name).read_text().splitlines())
    assert lines <= LOOP_FILES[name], f"{name}: {lines} lines, over {LOOP_FILES[name]}"


# Issue 71 part 3: the Learner owns what it runs (train/learner.py, built with the run's Models and its
# engine); the Context holds the loop's services. Before (b32048a): 28 Context fields, 11 align_lab calls
# from `python -m align_lab` (app.main) down to an algorithm's loss, 8 of them from train_online down.
CONTEXT_FIELDS = 20
# app.main -> app.run_admitted -> run/execute.run -> then the loop's: train_online -> Learner.step ->
# micro.accumulate -> Learner.loss -> the algorithm's loss (docs/design.md "The call path")
ABOVE_THE_LOOP, LOOP_TO_LOSS = 3, 5


def test_the_context_holds_the_loops_services_only():
    from dataclasses import fields

    from align_lab.train.context import Context, Models

    names = [f.name for f in fields(Context)]
    assert "models" in names and {"policy", "reference", "critic", "teacher"}.isdisjoint(names)
    assert {f.name for f in fields(Models)} >= {"policy", "reference", "critic", "teacher"}
    assert len(names) <= CONTEXT_FIELDS, f"Context: {len(names)} fields, over {CONTEXT_FIELDS}: {names}"


def test_an_algorithms_loss_sits_five_calls_below_the_loop(tmp_path):
    import traceback

    from align_lab.algorithms.grpo import GRPO
    from align_lab.train.common import TrainConfig
    from align_lab.train.online import train_online
    from tests.conftest import toy_context

    stacks = []

    class Spy(GRPO):  # GRPO's loss, its call stack kept
        def loss(self, batch, logprobs, values):
            stacks.append(traceback.extract_stack())
            return super().loss(batch, logprobs, values)

    train = TrainConfig(steps=1, rollout_size=8, minibatch_size=8, eval_every=0, checkpoint_every=0,
                        eval_samples=1)  # fmt: skip
    train_online(Spy(lr=1e-3, group_size=4, kl_coef=0.0), toy_context(tmp_path, train))
    names = [f.name for f in stacks[0]]
    path = names[len(names) - 1 - names[::-1].index("train_online") :]  # train_online .. Spy.loss
    assert len(path) <= LOOP_TO_LOSS, f"{' -> '.join(path)}: over {LOOP_TO_LOSS} calls"
    assert ABOVE_THE_LOOP + LOOP_TO_LOSS <= 8  # issue 71's ceiling from `python -m align_lab`


def calls_in(path: Path, function: str) -> set[str]:
    """The names `function` of `path` calls directly (f(...) and obj.f(...))."""
    node = next(n for n in ast.walk(ast.parse(path.read_text())) if getattr(n, "name", None) == function)
    called = (c.func for c in ast.walk(node) if isinstance(c, ast.Call))
    return {f.id if isinstance(f, ast.Name) else getattr(f, "attr", "") for f in called}


def test_the_loop_sits_three_calls_below_the_command():
    # python -m align_lab: app.main -> app.run_admitted -> run/execute.py run -> the loop (train_online)
    assert "run_admitted" in calls_in(PACKAGE / "app.py", "main")
    assert "run" in calls_in(PACKAGE / "app.py", "run_admitted")
    assert "loop" in calls_in(PACKAGE / "run" / "execute.py", "run")  # build_run's train_online
