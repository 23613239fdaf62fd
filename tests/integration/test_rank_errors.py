"""A data-parallel run (hardware.processes=2) whose user code fails on one rank or on every rank: a reward
raising on rank 1 alone (a judge's shard down; a NaN there goes the same way), or returning None on
every rank.
Thirteenth hunt: each ended in a 42-44-frame traceback (rank 1's printed, then rank 0's
ProcessRaisedException through Hydra), no resume line, where one process gives one line. Now rank 1
leaves its exception for rank 0 (train/launch.py), and the run ends as a one-process run does: one line
naming the reward and the resume command, summary.json failed with that line, the run resumable."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SMALL, full_but
from tests.integration.test_real_models import SMALL as REAL

PLACED_AT_IMPORT = (os.environ.get("RANK"), os.environ.get("WORLD_SIZE"))  # a module's top level reads them
HOW = "ALIGN_LAB_TEST_RANK_ERROR"  # "raise1", "exit3", "osexit1", "osexit0", "base2", "segv[_fh_off]" (rank 1
# alone, at its second call), "none" (every rank)


def failing_reward(prompts: list[str], responses: list[str]):
    """Scores a response by its length; fails as HOW says."""
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else 0
    calls = failing_reward.__dict__.setdefault("calls", [0])
    calls[0] += 1
    how = os.environ.get(HOW, "")
    if dist.is_initialized() and (os.environ.get("RANK"), os.environ.get("WORLD_SIZE")) != (str(rank), "2"):
        raise RuntimeError(f"RANK={os.environ.get('RANK')} on rank {rank}")  # as torchrun sets them
    if dist.is_initialized() and PLACED_AT_IMPORT != (str(rank), "2"):  # thirty-fourth hunt, case 38
        raise RuntimeError(f"RANK, WORLD_SIZE={PLACED_AT_IMPORT} as this module was imported on rank {rank}")
    if how == "none":
        return None
    if calls[0] == 2 and how == "closerange":  # every rank: its gloo sockets among them (38th hunt, 44)
        os.closerange(3, 4096)
    if calls[0] == 2 and how == "c_close":  # the same from C: nothing of Python's sees it
        for fd in range(3, 1024):
            ctypes.CDLL(None).close(fd)
    if calls[0] == 2 and how == "c_close_sockets":  # its sockets alone (39th hunt, case 42)
        for fd in os.listdir("/proc/self/fd"):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                ctypes.CDLL(None).close(int(fd))
    if rank == 1 and calls[0] == 2 and how == "raise1":
        raise RuntimeError("judge shard 1 unreachable")  # RAISE1_LINE
    if rank == 1 and calls[0] == 2 and how == "exit3":
        sys.exit(3)  # EXIT_LINE
    if rank == 1 and calls[0] == 2 and how.startswith("osexit"):
        os._exit(int(how[-1]))  # OS_EXIT_LINE
    if rank == 1 and calls[0] == 2 and how == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)  # SEGV_LINE: as a crash in native code ends a process
    if rank == 1 and calls[0] == 2 and how == "segv_fh_off":
        __import__("faulthandler").disable()  # the run keeps it on
        os.kill(os.getpid(), signal.SIGSEGV)  # SEGV_FH_LINE
    if rank == 1 and calls[0] == 2 and how == "base2":
        raise TwoArguments(1, "judge down")  # BASE_LINE
    return [float(len(r)) for r in responses]


class TwoArguments(BaseException):
    """A BaseException of the user's whose arguments do not rebuild it: it cannot travel between ranks."""

    def __init__(self, shard: int, why: str) -> None:
        super().__init__(f"shard {shard}: {why}")


KEY = f"reward.path={__name__}:failing_reward"
LINES = Path(__file__).read_text().splitlines()
EXIT_LINE, BASE_LINE, OS_EXIT_LINE, SEGV_LINE, SEGV_FH_LINE, RAISE1_LINE, VERIFIER1_LINE = (
    next(i for i, x in enumerate(LINES, 1) if f"# {mark}" in x)
    for mark in (
        "EXIT_LINE",
        "BASE_LINE",
        "OS_EXIT_LINE",
        "SEGV_LINE:",
        "SEGV_FH_LINE",
        "RAISE1_LINE",
        "VERIFIER1_LINE",
    )
)
EXPECTED = {
    "raise1": f"{KEY}: raised RuntimeError: judge shard 1 unreachable at {__file__}:{RAISE1_LINE}",
    "none": f"{KEY}: returned NoneType, not a list of ",
    # fourteenth hunt: named align_lab's launch.py, where rank 0 raised it again; then tracebacks
    "exit3": f"{__file__}:{EXIT_LINE} called sys.exit(3) during the run",
    # twenty-second hunt, case 40: os._exit in the user's code is said where it was called, as sys.exit is
    # (was "rank 1 of 2 exited with code 1 during the run, leaving no error (os._exit in code of the ...")
    "osexit1": f"{__file__}:{OS_EXIT_LINE} called os._exit(1) during the run",
    "osexit0": f"{__file__}:{OS_EXIT_LINE} called os._exit(0) during the run",
    # sixteenth hunt's notes: "interrupted by SIGSEGV", as if a user had sent it; then "rank 1 of 2 crashed
    # with SIGSEGV during the run, leaving no error (a fault in native code ...)": now the key and the line
    "segv": f"rank 1 of 2: {KEY}: the process crashed (Segmentation fault) in this call, at {__file__}:"
    f"{SEGV_LINE}",
    # thirty-third hunt, case 48: faulthandler turned off in the call, then the crash: "killed ... SIGKILL
    # (the system's out-of-memory killer, ...)"
    "segv_fh_off": (
        f"rank 1 of 2: {KEY}: the process crashed (Segmentation fault) in this call, at "
        f"{__file__}:{SEGV_FH_LINE}"
    ),
    # fifteenth hunt: rank 1's traceback twice, then "rank 1 of 2 exited with code 1 ..., leaving no error"
    "base2": f"{__file__}:{BASE_LINE} raised TwoArguments: shard 1: judge down (a BaseException, past every ",
}


@pytest.mark.parametrize("how", full_but(list(EXPECTED), {"none", "segv"}))
def test_a_rewards_error_on_one_rank_or_all_is_one_line_and_the_run_resumable(tmp_path, cache_dir, how):
    run_dir = tmp_path / "run"
    args = [
        *[a for a in SMALL if not a.startswith("reward.")],
        "train.steps=3",
        "reward=function",
        f"reward.path={__name__}:failing_reward",
        "hardware.processes=2",
        "rollout.seed_per_sample=true",
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, HOW: how, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "align_lab", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    # as one process ends on an error of the user's code (a sys.exit there: 1)
    assert done.returncode == (1 if how in ("exit3", "base2", "osexit0", "osexit1") else 2), done.stderr[
        -3000:
    ]
    assert "Traceback" not in done.stderr and "[rank" not in done.stderr, done.stderr[-3000:]
    last = [x for x in done.stderr.splitlines() if x.startswith("align_lab:")][-1]
    assert last.startswith(f"align_lab: error: {EXPECTED[how]}"), last
    assert " resume from step " in last, last
    # a fix of the user's code changes a file the resume checks: the command allows it (thirty-second hunt,
    # case 44: rank 1's crash said the plain command, which then refused the fixed reward)
    assert last.endswith(" resume_changed_inputs=true"), last
    summary = json.loads((run_dir / "summary.json").read_text())
    error = "TwoArguments: shard 1: judge down" if how == "base2" else EXPECTED[how]  # as on one process
    assert summary["status"] == "failed" and error in summary["error"], summary
    if how == "raise1":  # the shard is back: the same command, as the line says, completes the run
        env.pop(HOW)
        done = subprocess.run(
            [sys.executable, "-m", "align_lab", *args, "resume_changed_inputs=true"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("how", full_but(["closerange", "c_close", "c_close_sockets"], {"closerange"}))
def test_a_reward_that_closes_the_runs_descriptors_on_every_rank_is_kept_from_them_or_said(
    tmp_path, cache_dir, how
):
    """Thirty-eighth hunt, case 44: os.closerange(3, 4096) in a reward on both ranks: a traceback, gloo's
    abort in C twice, a guessed SIGKILL, rc 134 and summary.json left `running`. Now os.closerange passes
    over the run's descriptors (a warning says it) and the run completes; the same in C still ends in gloo's
    abort, said in one line of align_lab's, summary.json failed."""
    run_dir = tmp_path / "run"
    args = [*[a for a in SMALL if not a.startswith("reward.")], "train.steps=3", "reward=function", KEY]
    args += [
        "hardware.processes=2",
        "rollout.seed_per_sample=true",
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, HOW: how, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "align_lab", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert (run_dir / "summary.json").is_file(), done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "Traceback" not in done.stderr and " was killed " not in done.stderr, done.stderr[-3000:]
    if how == "closerange":
        assert done.returncode == 0 and summary["status"] == "completed", done.stderr[-3000:]
        assert f"warning: {KEY} tried to close the run's fd " in done.stderr, done.stderr[-3000:]
        assert f"rank 1 of 2: warning: {KEY} tried to close" in done.stderr, done.stderr[-3000:]  # case 40
        # rank 1's hang_watch pipe, opened as its job imported the reward, was closed: the run's messages to
        # it went to the number's next file, the terminal
        assert '{"where": ' not in done.stdout + done.stderr, done.stderr[-3000:]
        return
    [line] = [x for x in done.stderr.splitlines() if x.startswith("align_lab: error: ")]
    if how == "c_close_sockets":  # thirty-ninth hunt, case 42: gloo's abort, a 62-line dump, `running`
        assert line.startswith(f"align_lab: error: {KEY}: closed the run's fd "), line
        assert "(the ranks' connections)" in line and "Fatal Python error" not in done.stderr, line
    else:
        assert line.startswith(f"align_lab: error: {KEY}: closed the run's file descriptors (in C"), line
    assert summary["status"] == "failed" and summary["error"] in line, summary


def rank_1_verifier(response: str, answer, prompt: str) -> float:
    """A verifier of the user's that raises on rank 1 where HOW says so."""
    import torch.distributed as dist

    if os.environ.get(HOW) == "verifier1" and dist.is_initialized() and dist.get_rank() == 1:
        raise RuntimeError("grader shard 1 down")  # VERIFIER1_LINE
    return float(str(answer) in response)


@pytest.mark.parametrize(
    "verifier,reward",
    full_but(
        [("auto", "verifier"), (f"{__name__}:rank_1_verifier", "verifier"), ("auto", "learned_rm")],
        {(f"{__name__}:rank_1_verifier", "verifier"), ("auto", "learned_rm")},
    ),
    ids=["auto", "yours", "no_pairs"],
)
def test_your_own_data_runs_data_parallel_and_its_verifiers_error_is_one_line(
    tmp_path, cache_dir, hf_assets, verifier, reward
):
    """Fourteenth hunt: task=verifiable_data could not run on 2 processes at all (its verifier a closure
    that spawned ranks could not receive: a 25-frame pickling traceback before any step). And a reward
    model whose SFT samples gave no preference pair (a weak policy: every answer wrong) was a ValueError's
    traceback: one line naming the keys."""
    run_dir = tmp_path / "run"
    args = [
        *REAL,
        f"model.name_or_path={hf_assets.policy}",
        "model.max_prompt_tokens=48",
        "task=verifiable_data",
        f"task.path={ROOT / 'examples' / 'questions.jsonl'}",
        "task.prompt_column=question",
        "task.eval_rows=4",
        f"task.verifier={verifier}",
        f"reward={reward}",
        "algo=grpo",
        "algo.group_size=4",
        "train.steps=2",
        "train.rollout_size=8",  # two prompts a step: one a rank
        "train.minibatch_size=8",
        f"hardware.processes={1 if reward == 'learned_rm' else 2}",  # the stages' error: before any rank
        "rollout.seed_per_sample=true",
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, HOW: "verifier1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "align_lab", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert "Traceback" not in done.stderr and "[rank" not in done.stderr, done.stderr[-3000:]
    last = [x for x in done.stderr.splitlines() if x.startswith("align_lab:")][-1]
    if reward == "learned_rm":
        assert done.returncode == 2 and last.startswith(
            "align_lab: error: preferences: none of 256 draws "
        ), last
        return
    if verifier == "auto":
        assert done.returncode == 0, done.stderr[-3000:]
        return
    assert done.returncode == 2 and last.startswith(
        f"align_lab: error: task.verifier={verifier}: raised RuntimeError: grader shard 1 down at "
        f"{__file__}:{VERIFIER1_LINE}; fix it, then "
    ), last
