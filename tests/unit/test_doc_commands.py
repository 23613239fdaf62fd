"""Every `python -m align_lab...` command in the code blocks of README.md and docs/*.md parses as
written (issue 59 item 2: every example in the docs runs as written): the app's overrides compose with
Hydra (the first job of a sweep), as `python -m align_lab` composes them, and compare's arguments parse;
then each run command (a single run, or a sweep's first job) passes the run's admission
(run/admission.py: its spec built, the cross checks, its folder), as the app admits it: no compute.
tests/integration/test_doc_runs.py runs them at small sizes."""

from __future__ import annotations

import copy
import functools
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.unit.test_docs import PAGES, split

# a command of a code block: `python -m align_lab`, `.venv/bin/python -m align_lab.compare`, after `$ `
# or another command and `&&`
COMMAND = re.compile(r"^(?:\$ )?(?:.*&& )?(?:\.venv/bin/)?python3? -m (align_lab(?:\.\w+)*)(?=\s|$)(.*)$")
# what a reader fills in: `multirun/<date>`, `-m ... hardware=slurm_1gpu`, `train.micro_batch_size=M`, a
# shell variable (`--config-name $s` in a loop)
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.|=[A-Z]\b|\$")
APP_FLAGS = {"-m", "--multirun", "--help", "-h"}


def doc_commands(page: Path) -> list[tuple[str, list[str]]]:
    """(module, arguments) of each command of `page`'s code blocks, continuation lines joined and shell
    comments dropped; commands with a placeholder left out."""
    lines, found, i = split(page.read_text())[1], [], 0
    while i < len(lines):
        line = lines[i].strip()
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        m = COMMAND.match(line)
        if m and not PLACEHOLDER.search(m.group(2).split(" #")[0]):
            found.append((m.group(1), shlex.split(m.group(2), comments=True)))
    return found


def app_overrides(args: list[str]) -> tuple[Path | None, str, list[str]]:
    """(--config-dir, config name, the first job's overrides) of `python -m align_lab <args>`."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    config_dir, name, rest, args = None, "config", [], list(args)
    while args:
        a = args.pop(0)
        if a == "--config-dir":
            config_dir = ROOT / args.pop(0)
        elif a == "--config-name":
            name = args.pop(0)
        elif a == "--cfg":
            args.pop(0)  # job | hydra | all
        elif a not in APP_FLAGS:
            rest.append(a)
    parsed = OverridesParser.create().parse_overrides(rest)
    first = [batch[0] for batch in BasicSweeper.split_arguments(parsed, None) if batch]
    return config_dir, name, first[0] if first else []


COMMANDS = [(page, module, args) for page in PAGES for module, args in doc_commands(page)]


def test_the_docs_have_commands_to_check() -> None:
    modules = {module for _, module, _ in COMMANDS}
    assert {"align_lab", "align_lab.compare"} <= modules and len(COMMANDS) > 50


@functools.cache
def hydra_composed(args: tuple[str, ...]):
    """The config (with its hydra node) of the first job of `python -m align_lab <args>`, as Hydra composes
    it: once per command and test process (both tests below compose the docs' run commands; a command
    that does not compose raises each time)."""
    from hydra import compose, initialize_config_dir

    config_dir, name, overrides = app_overrides(list(args))
    if config_dir is not None:  # searched before conf/, as --config-dir does
        overrides = [*overrides, f"hydra.searchpath=[file://{ROOT / 'conf'}]"]
    with initialize_config_dir(config_dir=str(config_dir or ROOT / "conf"), version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=True)


def command_problem(module: str, args: list[str]) -> str | None:
    """Why `python -m <module> <args>` does not parse (one line), or None."""
    from align_lab.compare import parse_args

    try:
        if module == "align_lab":
            hydra_composed(tuple(args))
        elif module == "align_lab.compare":
            parse_args(args)
        elif module == "align_lab.study":
            if args[:1] not in (["status"], ["resume"]):
                return f"{args[:1]}: the subcommand is status or resume"
        else:
            return "no such module to check"
    except (Exception, SystemExit) as e:  # argparse's usage error is a SystemExit
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


def page_modules(page: Path) -> dict[str, str]:
    """The Python files a page writes out for its commands: code blocks that open with `# <name>.py`
    (docs/environments.md's my_envs.py), by file name."""
    blocks = page.read_text().split("```")[1::2]
    found = {}
    for block in blocks:
        lines = block.split("\n")
        if lines[0].strip() == "python" and len(lines) > 1:
            m = re.fullmatch(r"# (\w+\.py)", lines[1].strip())
            if m:
                found[m.group(1)] = "\n".join(lines[1:])
    return found


# what a machine without the network, vLLM or a GPU cannot check: a refusal for it is a skip, with its line
NOT_HERE = re.compile(r"is not installed|needs network|no CUDA device")


def distinct_runs() -> list[tuple[Path, list[str]]]:
    """Each distinct run command once (README.md repeats how_it_works.md's), under the first page that
    shows it; --help and --cfg print and run nothing."""
    first = {}
    for page, module, args in COMMANDS:
        if module == "align_lab" and not {"--help", "-h", "--cfg"} & set(args):
            first.setdefault(tuple(args), page)
    return [(page, list(args)) for args, page in first.items()]


RUNS = [pytest.param(page, args, id=f"{page.name}:{' '.join(args)[:60]}") for page, args in distinct_runs()]


def composed(args: list[str]):
    """(config without its hydra node, the hydra node) of the first job of `python -m align_lab <args>`,
    its mode as the app sets it (RUN unless -m or the config's hydra.mode says MULTIRUN)."""
    from hydra.types import RunMode
    from omegaconf import open_dict

    cfg = copy.deepcopy(hydra_composed(tuple(args)))  # admission may change it
    hydra_node = cfg.hydra
    with open_dict(cfg):
        del cfg["hydra"]
        if {"-m", "--multirun"} & set(args):
            hydra_node.mode = RunMode.MULTIRUN
        elif hydra_node.mode is None:
            hydra_node.mode = RunMode.RUN
    return cfg, hydra_node


@pytest.mark.fast
@pytest.mark.parametrize("page,args", RUNS)
def test_every_docs_run_command_is_admitted(page: Path, args: list[str], tmp_path, monkeypatch) -> None:
    from align_lab.config import ConfigError
    from align_lab.run.admission import admit

    for name, code in page_modules(page).items():  # `python -m align_lab` imports from where it runs
        (tmp_path / name).write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg, hydra_node = composed(args)
    try:
        admit(cfg, hydra_node, tmp_path / "run", here=False)
    except ConfigError as e:
        if NOT_HERE.search(str(e)):
            pytest.skip(f"needs what this machine lacks: {e}")
        where = f"{page.relative_to(ROOT)}: python -m align_lab {shlex.join(args)}"
        raise AssertionError(f"{where}: {e}") from None


@pytest.mark.fast
def test_every_docs_command_parses_as_written() -> None:
    bad = [
        f"{page.relative_to(ROOT)}: python -m {module} {shlex.join(args)}: {problem}"
        for page, module, args in COMMANDS
        if (problem := command_problem(module, args)) is not None
    ]
    assert bad == []


def test_a_command_with_an_unknown_key_or_a_bad_compare_flag_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```bash\n"
        "python -m align_lab -m algo=ppo,dpo seed=0,1 \\\n  train.stepz=3   # a typo\n"
        "python -m align_lab.compare multirun/<date>        # a placeholder: left out\n"
        ".venv/bin/python -m align_lab.compare runs --byy algo\n"
        "```\n"
    )
    (app, app_args), (compare, compare_args) = doc_commands(page)
    assert (app, compare) == ("align_lab", "align_lab.compare")
    assert app_overrides(app_args) == (None, "config", ["algo=ppo", "seed=0", "train.stepz=3"])
    assert compare_args == ["runs", "--byy", "algo"]
    assert "Could not override 'train.stepz'" in command_problem(app, app_args)
    assert command_problem(compare, compare_args) == "SystemExit: 2"  # argparse's usage line, on stderr
    assert command_problem("align_lab", ["-m", "algo=ppo,dpo", "seed=0,1"]) is None
