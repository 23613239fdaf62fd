"""A SIGTERM that reaches the processes of a data-parallel run (hardware.processes=2) as a scheduler sends
it: to every process of the run (scancel, a preemption: the process group), or to one rank alone (an agent
killing one process). Eleventh hunt: either killed rank 1 at once, and rank 0 ended in a 25-27-frame
traceback (gloo's "Connection closed by peer", ProcessExitedException), no resume line. Now every rank
finishes the step under way, rank 0 checkpoints it, and the run ends in one line naming the resume
command, which completes the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SMALL, full_but, signal_from_outside

WHO = (
    "ALIGN_LAB_TEST_SIGNAL"  # "group": the run's process group; "rank1": rank 1 alone; "kill": SIGKILL to it
)
MARK = "ALIGN_LAB_TEST_SIGNAL_MARK"  # a file made once: the signal is sent once, at step 2's scoring


def signalling_reward(prompts: list[str], responses: list[str]) -> list[float]:
    """Scores a response by its length; at step 2 (its second call on rank 1), sends SIGTERM as WHO says."""
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else 0
    calls = signalling_reward.__dict__.setdefault("calls", [0])
    calls[0] += 1
    if rank == 1 and calls[0] == 2 and os.environ.get(MARK) and not Path(os.environ[MARK]).exists():
        Path(os.environ[MARK]).touch()
        if os.environ.get(WHO) == "group":
            signal_from_outside("TERM", -os.getpgrp())
        elif os.environ.get(WHO) == "kill0":
            os.kill(os.getppid(), signal.SIGKILL)  # rank 0, which spawned this rank
        elif os.environ.get(WHO) == "hang":  # rank 0 gets SIGTERM twice as this rank's reward hangs
            time.sleep(3)  # rank 0 waits in the step's collective for this rank by now
            os.kill(os.getppid(), signal.SIGTERM)
            time.sleep(3)  # rank 0 waits in the step's collective for this rank by now
            os.kill(os.getppid(), signal.SIGTERM)
            time.sleep(600)
        elif os.environ.get(WHO) == "kill":  # from another process, as the OOM killer: a reward's own
            subprocess.run(["kill", "-KILL", str(os.getpid())])  # os.kill of its run is said as its exit
        else:
            signal_from_outside("TERM")
    return [float(len(r)) for r in responses]


@pytest.mark.parametrize("who", full_but(["group", "rank1", "kill", "kill0", "hang"], {"group", "kill0"}))
def test_a_sigterm_to_the_run_or_to_rank_1_stops_it_at_the_step_end_in_one_line(tmp_path, cache_dir, who):
    """And (twelfth hunt) rank 1 killed by SIGKILL (the OOM killer), which no process can wait for: rank 0
    says so in one line, and the run resumes from its last checkpoint. And (fourteenth hunt) a second
    SIGTERM while rank 0 waits in a collective for a rank whose reward hangs stops the run now, as the
    first one's line promises (it did nothing: only SIGKILL ended the run)."""
    run_dir = tmp_path / "run"
    args = [
        *[a for a in SMALL if not a.startswith("reward.")],
        "train.steps=4",
        "train.checkpoint_every=100",
        "reward=function",
        f"reward.path={__name__}:signalling_reward",
        "hardware.processes=2",
        "rollout.seed_per_sample=true",
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, WHO: who, MARK: str(tmp_path / "sent"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "align_lab", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        start_new_session=True,  # its own process group, as a job's
    )
    assert (tmp_path / "sent").exists()
    if who == "kill0":  # twelfth hunt: rank 1 lived on, and printed gloo's traceback to the terminal
        assert done.returncode == -signal.SIGKILL and "Traceback" not in done.stderr, done.stderr[-3000:]
        return
    name = "SIGKILL" if who == "kill" else "SIGTERM"
    assert done.returncode == 128 + getattr(signal, name), done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = [x for x in done.stderr.splitlines() if x.startswith("align_lab:")][-1]
    step = 0 if who in ("kill", "hang") else 2  # stopped mid-step 2: its last checkpoint is the start's
    assert last.startswith(f"align_lab: interrupted by {name}; resume from step {step} with: "), last
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    if who == "hang":  # seventeenth hunt: rank 0 in the collective said nothing of the first SIGTERM
        waiting = (
            "align_lab: SIGTERM: the run stops once the step under way is done and checkpointed (SIGTERM"
        )
        assert done.stderr.count(waiting) == 1, done.stderr[-3000:]
    again = subprocess.run(
        ["bash", "-c", last.split(" with: ", 1)[1]], capture_output=True, text=True, env=env, timeout=600
    )
    assert again.returncode == 0, again.stderr[-3000:]
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # nothing twice, nothing lost


AT_START = {  # who gets which signal as the ranks start: the run's exit code and the signal its line names
    "rank0": (signal.SIGTERM, "SIGTERM"),
    "rank1": (signal.SIGTERM, "SIGTERM"),
    "rank1_kill": (signal.SIGKILL, "SIGKILL"),
    "group": (signal.SIGTERM, "SIGTERM"),
    "group_int": (signal.SIGINT, "SIGINT"),  # a terminal's Ctrl-C
}


def _spawned_rank(pid: int) -> int | None:
    """The pid of a process `pid` spawned (multiprocessing's spawn: rank 1), if there is one yet."""
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if entry.name.isdigit() and int(stat[1]) == pid and b"spawn" in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except (OSError, IndexError, ValueError):
            continue
    return None


@pytest.mark.parametrize("who", full_but(list(AT_START), {"rank1", "group_int"}))
def test_a_signal_as_the_ranks_start_stops_the_run_in_one_line_not_after_the_rendezvous_timeout(
    tmp_path, cache_dir, who
):
    """Sixteenth hunt: a SIGTERM as rank 0 waited for rank 1 to join killed rank 1 (the watcher's stop),
    and rank 0 waited out the rendezvous' 15 minutes, saying nothing. Seventeenth hunt: so did SIGTERM or
    SIGKILL to rank 1 alone and SIGTERM to the run's process group as rank 1 started, and Ctrl-C there
    (the process group's SIGINT) printed rank 1's 20-line KeyboardInterrupt first."""
    run_dir, log = tmp_path / "run", tmp_path / "stderr"
    args = [
        *[a for a in SMALL if not a.startswith("reward.")],
        "train.steps=4",
        "reward=function",
        "reward.path=align_lab.rewards.function:word_count",
        "hardware.processes=2",
        "rollout.seed_per_sample=true",
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sent, name = AT_START[who]
    with log.open("w") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "align_lab", *args], cwd=ROOT, stderr=err, env=env, start_new_session=True
        )
        deadline, rank_1 = time.monotonic() + 600, None
        while rank_1 is None and run.poll() is None and time.monotonic() < deadline:
            rank_1 = _spawned_rank(run.pid)
            time.sleep(0.02)
        time.sleep(0.5)  # rank 1 is starting (importing torch), rank 0 waits for it to join
        if who.startswith("group"):
            os.killpg(run.pid, sent)
        else:
            os.kill(run.pid if who == "rank0" else rank_1, sent)
        try:
            code = run.wait(timeout=240)
        finally:
            os.killpg(run.pid, signal.SIGKILL) if run.poll() is None else None
    said = log.read_text()
    assert code == 128 + sent and "Traceback" not in said, said[-3000:]
    last = [x for x in said.splitlines() if x.startswith("align_lab:")][-1]
    assert last.startswith(f"align_lab: interrupted by {name}; resume from step 0 with: "), last


HANGING = """
import os, time
MARK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imported")
if os.path.exists(MARK):  # the second import: rank 1's, as it receives the run
    time.sleep(10**6)
open(MARK, "w").close()


def score(prompts, responses):
    return [float(len(r)) for r in responses]
"""


def test_a_rank_whose_import_hangs_is_named_while_rank_0_waits_and_a_sigterm_stops_the_run(
    tmp_path, cache_dir
):
    """Seventeenth hunt: a reward module whose import hung on rank 1 alone was 15 minutes of silence, then a
    60-line DistStoreError, no resume line. Rank 0 now names the rank it waits for, and stops on a signal."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "rw_hangs.py").write_text(HANGING)
    run_dir, log = tmp_path / "run", tmp_path / "stderr"
    args = [
        *[a for a in SMALL if not a.startswith("reward.")],
        "reward=function",
        "reward.path=rw_hangs:score",
        "hardware.processes=2",
        "rollout.seed_per_sample=true",
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "PYTHONPATH": f"{mine}{os.pathsep}{ROOT}"}
    with log.open("w") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "align_lab", *args], cwd=ROOT, stderr=err, env=env, start_new_session=True
        )
        deadline = time.monotonic() + 300
        while (
            "not yet in the run" not in log.read_text() and run.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        run.send_signal(signal.SIGTERM)
        try:
            code = run.wait(timeout=120)
        finally:
            os.killpg(run.pid, signal.SIGKILL) if run.poll() is None else None
    said = log.read_text()
    assert "warning: rank 1 of 2 not yet in the run after 30 s: alive, still starting" in said, said[-3000:]
    assert code == 128 + signal.SIGTERM and "Traceback" not in said, said[-3000:]
    last = [x for x in said.splitlines() if x.startswith("align_lab:")][-1]
    assert last.startswith("align_lab: interrupted by SIGTERM; resume from step 0 with: "), last
