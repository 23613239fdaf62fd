"""Every `python -m align_lab...` command in the code blocks of README.md and docs/*.md parses as
written (issue 59 item 2: every example in the docs runs as written): the app's overrides compose with
Hydra (the first job of a sweep), as `python -m align_lab` composes them, and compare's arguments parse.
Nothing is run: tests/integration/test_multi_turn.py runs docs/environments.md's own example."""

from __future__ import annotations

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


def command_problem(module: str, args: list[str]) -> str | None:
    """Why `python -m <module> <args>` does not parse (one line), or None."""
    from hydra import compose, initialize_config_dir

    from align_lab.compare import parse_args

    try:
        if module == "align_lab":
            config_dir, name, overrides = app_overrides(args)
            if config_dir is not None:  # searched before conf/, as --config-dir does
                overrides = [*overrides, f"hydra.searchpath=[file://{ROOT / 'conf'}]"]
            primary = ROOT / "conf" if config_dir is None else config_dir
            with initialize_config_dir(config_dir=str(primary), version_base="1.3"):
                compose(name, overrides=overrides, return_hydra_config=True)
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
