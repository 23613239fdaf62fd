"""scripts/gpu_smoke.sh empties its WORK folder first: naming a folder of the user's removed what it held,
with no word (seventh hunt of 2026-12-04, s1). It now empties only a folder it made, or an empty one."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import ROOT


def smoke(work) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORK": str(work), "DEVICE": "cpu", "ACCEPT": "0", "PYTHON": "false"}  # runs nothing
    script = str(ROOT / "scripts" / "gpu_smoke.sh")
    return subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=60)


def test_a_work_folder_of_the_users_is_refused_and_kept(tmp_path):
    (tmp_path / "notes.txt").write_text("my notes")
    result = smoke(tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"gpu_smoke.sh: WORK={tmp_path} holds files this script did not write; name a new or empty folder\n"
    )
    assert (tmp_path / "notes.txt").read_text() == "my notes"


def test_its_own_folder_is_emptied_and_marked(tmp_path):
    work = tmp_path / "smoke"
    smoke(work)  # PYTHON=false: every run fails at once
    (work / "old.log").write_text("an earlier smoke run's")
    smoke(work)
    assert (work / ".gpu_smoke").exists() and not (work / "old.log").exists()
