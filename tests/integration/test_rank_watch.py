"""A rank killed while rank 0 waits for it where no collective fails: DeepSpeed builds its process groups
by waiting on the meeting point's store, and rank 0 sat there 30 minutes after kill -9 of rank 1, saying
nothing (seventeenth hunt, case 38). Rank 0's watch over its ranks ends the run in one line now."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SMALL, full_but
from tests.integration.test_rank_signals import _spawned_rank

OP = b"deepspeed_shm_comm"  # DeepSpeed's CPU comm op, loaded as deepspeed.init_distributed runs


def _has_loaded(pid: int, library: bytes) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_bytes()
    except OSError:
        return False


@pytest.mark.parametrize(
    "who, sent",
    full_but(
        [("rank1", signal.SIGKILL), ("group", signal.SIGTERM), ("rank1", signal.SIGTERM)],
        {("rank1", signal.SIGKILL)},
    ),
)
def test_rank_1_killed_as_deepspeed_builds_its_groups_ends_the_run_in_one_line(
    tmp_path, cache_dir, who, sent
):
    """And (eighteenth hunt, case 34) a SIGTERM to the run's process group, or to rank 1 alone, then: no
    line for minutes, rank 0 deaf to its own signal in that wait."""
    run_dir, log = tmp_path / "run", tmp_path / "stderr"
    args = [
        *SMALL,
        "hardware.processes=2",
        "hardware.backend=deepspeed",
        "rollout.seed_per_sample=true",
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    with log.open("w") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "align_lab", *args], cwd=ROOT, stderr=err, start_new_session=True
        )
        deadline, rank_1 = time.monotonic() + 600, None
        while run.poll() is None and time.monotonic() < deadline:
            rank_1 = rank_1 or _spawned_rank(run.pid)
            if rank_1 is not None and _has_loaded(rank_1, OP):  # joined, in DeepSpeed's init
                os.killpg(run.pid, sent) if who == "group" else os.kill(rank_1, sent)
                break
            time.sleep(0.01)
        try:
            code = run.wait(timeout=180)
        finally:
            os.killpg(run.pid, signal.SIGKILL) if run.poll() is None else None
    said = log.read_text()
    assert code == 128 + sent and "Traceback" not in said, said[-3000:]
    last = [x for x in said.splitlines() if x.startswith("align_lab:")][-1]
    assert last.startswith(
        f"align_lab: interrupted by {signal.Signals(sent).name}; resume from step 0 with: "
    ), last
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
