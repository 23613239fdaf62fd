"""train/op_build.py: torch's build lock of a DeepSpeed op, left by a process killed as it built the op
(every later DeepSpeed run waited for it in silence), removed where a dead process of ours left it;
another's waited for, said, and refused after a limit."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from align_lab.train import op_build
from align_lab.value_checks import ConfigError


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_lock_left_by_a_dead_process_of_ours_is_removed_with_a_warning(tmp_path, caplog):
    (tmp_path / "lock").touch()
    (tmp_path / f"{op_build.NOTE}{_dead_pid()}").touch()
    note = tmp_path / f"{op_build.NOTE}1"
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        op_build.noted(tmp_path, note)
    assert not (tmp_path / "lock").exists() and note.exists()
    assert [p.name for p in tmp_path.glob(f"{op_build.NOTE}*")] == [note.name]
    assert "left by a build of the op that was killed; removed" in caplog.text


def test_a_lock_with_a_live_process_of_ours_or_none_is_waited_for_said_and_refused(
    tmp_path, caplog, monkeypatch
):
    (tmp_path / "lock").touch()
    (tmp_path / f"{op_build.NOTE}{_dead_pid()}").touch()
    (tmp_path / f"{op_build.NOTE}{os.getpid()}").touch()  # this process: building it now
    now = [0.0]

    def clock():
        now[0] += 7.0
        return now[0]

    monkeypatch.setattr(op_build.time, "sleep", lambda s: None)
    with caplog.at_level(logging.WARNING, logger="align_lab"), pytest.raises(ConfigError) as refused:
        op_build.noted(tmp_path, tmp_path / "mine", clock=clock)
    assert (tmp_path / "lock").exists() and not (tmp_path / "mine").exists()
    assert caplog.text.count("waits for") == 1 and "removed" not in caplog.text
    assert str(refused.value).startswith(f"{tmp_path / 'lock'}: DeepSpeed's op build has waited")
    for note in tmp_path.glob(f"{op_build.NOTE}*"):
        note.unlink()  # no note of ours: another program's build, waited for as well
    with pytest.raises(ConfigError):
        op_build.noted(tmp_path, tmp_path / "mine", say=False, clock=clock)
    assert (tmp_path / "lock").exists()


def test_no_lock_is_nothing_to_wait_for_and_the_note_goes_with_the_block(tmp_path, monkeypatch):
    monkeypatch.setattr(op_build, "build_folder", lambda name: tmp_path / name)
    with op_build.op_build("some_op"):
        assert [p.name for p in (tmp_path / "some_op").iterdir()] == [f"{op_build.NOTE}{os.getpid()}"]
    assert list((tmp_path / "some_op").iterdir()) == []


def test_a_load_that_takes_long_says_the_op_is_being_compiled(tmp_path, monkeypatch, caplog):
    """Eighteenth hunt: a venv switch made torch compile the op again, ~35 s with no line."""
    import time

    monkeypatch.setattr(op_build, "build_folder", lambda name: tmp_path / name)
    monkeypatch.setattr(op_build, "BUILD_SAID_S", 0.05)
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        with op_build.op_build("quick"):
            pass
        time.sleep(0.2)
        assert "compiling" not in caplog.text
        with op_build.op_build("slow"):
            time.sleep(0.5)
        assert f"DeepSpeed: compiling its op slow in {tmp_path / 'slow'}" in caplog.text
        with op_build.op_build("rank1", say=False):
            time.sleep(0.3)
        assert "rank1" not in caplog.text
