"""The run folder removed while the run goes on (`rm -rf`, a cleanup script): a 58-122-line traceback (the
app.log handler's FileNotFoundError from a log line, then summary.json's), rc 1 (eighteenth hunt, case 13).
Now one line that says what happened, and exit code 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, SMALL


@pytest.mark.parametrize("when", ["sft: 3/", "predicted peak memory", "policy optimisation: 1/"])
def test_a_run_folder_removed_under_the_run_is_one_line(tmp_path, when):
    run_dir, log = tmp_path / "run", tmp_path / "stderr"
    args = [*SMALL, "train.steps=6", f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}"]
    with log.open("w") as err:
        run = subprocess.Popen([sys.executable, "-m", "align_lab", *args], cwd=ROOT, stderr=err)
        deadline = time.monotonic() + 600
        while when not in log.read_text() and run.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        while run_dir.exists():  # as `rm -rf` again: a file the run wrote meanwhile keeps the folder
            shutil.rmtree(run_dir, ignore_errors=True)
        code = run.wait(timeout=600)
    said = log.read_text()
    assert code == 2 and "Traceback" not in said, said[-3000:]
    last = [x for x in said.splitlines() if x.startswith("align_lab:")][-1]
    assert last.startswith(f"align_lab: error: the run folder {run_dir} was removed while the run went on"), (
        last
    )
