"""A SIGTERM to a running benchmark (a scheduler's, `timeout`'s) ended its process at once and left its
`python -m align_lab` run training, orphaned, and the run's temporary folder for ever, with no line (the
seventh hunt of 2026-12-04, b17); Ctrl-C was a 13-line KeyboardInterrupt traceback (b16). Now either
stops the run, removes its folder and says so in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_sigterm_stops_the_benchmarks_run_and_removes_its_folder(tmp_path):
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    command = [sys.executable, "-m", "benchmarks", "run", "default_run", "--tiny", "--steps", "40"]
    bench = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (runs := children(bench.pid)) and time.monotonic() < deadline and bench.poll() is None:
        time.sleep(0.2)
    assert runs, "the benchmark started no run"
    time.sleep(1.0)  # inside the run
    bench.send_signal(signal.SIGTERM)
    out, err = bench.communicate(timeout=120)
    assert bench.returncode == 143, err[-2000:]
    assert err.splitlines()[-1] == "benchmarks: default_run: stopped by SIGTERM; no result written"
    assert "Traceback" not in err
    for pid in runs:  # the run ended with it (reaped: no such process)
        assert not Path(f"/proc/{pid}").exists(), f"run {pid} still there"
    assert not [p for p in (tmp_path / "tmp").iterdir() if p.name.startswith("align_lab_default_")]
