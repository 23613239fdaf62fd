"""The test suite's own fixtures (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import kill_what_names


def test_what_a_test_left_running_with_its_folder_in_its_arguments_is_killed(tmp_path):
    """A failed sweep test's jobs kept training for 20 min (CI of 768a3f1): those naming the test's
    folder (as a path or a key's value) are killed, and a folder that only begins alike is not its."""
    sleep = [sys.executable, "-c", "import time; time.sleep(300)"]  # its arguments kept as given
    named = [*sleep, str(tmp_path / "sweep" / ".submitit")]
    as_a_value = [*sleep, f"hydra.sweep.dir={tmp_path}/sweep"]
    other = [*sleep, f"{tmp_path}0/sweep"]
    started = [subprocess.Popen(args) for args in (named, as_a_value, other)]
    try:
        killed = kill_what_names(str(tmp_path))
        assert sorted(killed) == sorted(p.pid for p in started[:2])
        assert [p.wait(timeout=10) for p in started[:2]] == [-9, -9] and started[2].poll() is None
    finally:
        started[2].kill()
        started[2].wait()
