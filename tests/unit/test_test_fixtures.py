"""The test suite's own fixtures (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, _guarded_init, kill_what_names


def test_what_a_test_left_running_with_its_folder_in_its_arguments_is_killed(tmp_path):
    """A failed sweep test's jobs kept training for 20 min (CI of 768a3f1): those naming the test's
    folder (as a path or a key's value) are killed, and a folder that only begins alike is not its."""
    sleep = [sys.executable, "-c", "import time; time.sleep(300)"]  # its arguments kept as given
    named = [*sleep, str(tmp_path / "sweep" / ".submitit")]
    as_a_value = [*sleep, f"hydra.sweep.dir={tmp_path}/sweep"]
    other = [*sleep, f"{tmp_path}0/sweep"]
    started = [subprocess.Popen(args) for args in (named, as_a_value, other)]
    try:  # each exec'd before the scan (a loaded machine's CI: one still the fork, not its own arguments)
        deadline = time.monotonic() + 30
        while not all(b"time.sleep(300)" in Path(f"/proc/{p.pid}/cmdline").read_bytes() for p in started):
            assert time.monotonic() < deadline, "the sleepers did not start"
            time.sleep(0.01)
        killed = kill_what_names(str(tmp_path))
        assert sorted(killed) == sorted(p.pid for p in started[:2])
        assert [p.wait(timeout=10) for p in started[:2]] == [-9, -9] and started[2].poll() is None
    finally:
        started[2].kill()
        started[2].wait()


def test_a_wandb_init_that_would_write_in_the_checkout_fails_its_test(tmp_path, monkeypatch):
    """A test's wandb.init with no dir, from the checkout, left ./wandb there (a later test's check then
    failed, not the test that wrote it); under the guard it fails where it is called, and one with a
    dir of its own passes through."""
    made = []
    guarded = _guarded_init(lambda *a, **k: made.append(k) or "run")
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    with pytest.raises(AssertionError, match=r"would write .*/wandb: give it dir="):
        guarded(mode="offline")
    assert guarded(dir=str(tmp_path), mode="offline") == "run"
    assert made == [{"dir": str(tmp_path), "mode": "offline"}]
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    assert guarded(mode="offline") == "run"
