"""The folder a command runs in, removed as it runs or before it starts, and settings of its process the
libraries cannot work under (hunt of 2026-12-04, env/cwd: c22, c23, c73, c40, c92): one line, or the run
going on, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

REMOVED = """
import os, sys
from pathlib import Path
from align_lab.user_code import working_folder, working_folder_removed
from align_lab.user_shadows import shadowing
from align_lab.user_folders import folders_in_values
from align_lab.run.summary import stopped  # torch, imported before (a removed folder: MKL cannot load it)
here = sys.argv[1]
os.chdir(here)
os.rmdir(here)
print(working_folder_removed(), working_folder() == here)
print(folders_in_values(["data/w.parquet", sys.argv[2]]) == [sys.argv[2]])
print(shadowing())
print(stopped(FileNotFoundError(2, "No such file or directory"), Path(sys.argv[2]) / "checkpoints"))
"""


def test_a_working_folder_removed_as_the_run_goes_is_read_as_its_path_or_said_in_one_line(tmp_path):
    """c23: the checkpoint's look at the folders the user's values name called os.getcwd() (75 lines, rc 1):
    now the run goes on; c22: a library's own os.getcwd() (torch's, as transformers imported a model: 121
    lines) is one line saying so, with the way to resume; c73: the same import path of shadowing()."""
    here, run = tmp_path / "here", tmp_path / "run"
    here.mkdir(), (run / "checkpoints").mkdir(parents=True)
    env = {**os.environ, "PWD": str(here), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", REMOVED, str(here), str(run)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines[:3] == ["True True", "True", "None"], done.stderr[-3000:]
    assert lines[3].startswith(
        f"error: the folder the command runs in ({here}) was removed while it ran; make it again (mkdir -p "
        f"{here}), then resume from step "
    ), lines[3]


def test_a_command_typed_in_a_removed_folder_is_one_line_before_anything(tmp_path):
    """c73: a shell left in a folder removed since: three chained tracebacks, 70 lines, rc 1."""
    here = tmp_path / "gone"
    here.mkdir()
    script = f'cd "{here}" && rmdir "{here}" && exec "{sys.executable}" -m align_lab train.steps=1'
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"align_lab: error: the folder you run in ({here}) no longer exists (removed after the shell entered "
        "it); cd into an existing folder and run the command again"
    ], done.stderr[-3000:]


def test_settings_the_libraries_cannot_work_under_are_one_line_before_anything(tmp_path):
    """Hunt of 2026-12-04 (c40, c92): `TORCH_LOGS=bogus` was torch's ValueError as it was imported (65
    lines), `PYTHONOPTIMIZE=2` transformers' (109 lines, after the run folder was made)."""
    for env, said in (
        (
            {"TORCH_LOGS": "bogus"},
            "TORCH_LOGS=bogus: torch refuses it (Invalid log settings: bogus, must be ",
        ),
        ({"PYTHONOPTIMIZE": "2"}, "PYTHONOPTIMIZE=2 (python -OO) strips the docstrings transformers reads"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "align_lab", "train.steps=1"],
            cwd=tmp_path,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        lines = done.stderr.splitlines()
        assert (
            done.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"align_lab: error: {said}")
        ), lines
    assert not any(tmp_path.iterdir())  # no run folder
