"""SIGTERM and SIGINT as a user meets them (docs/faults.md, "Interrupted"): a signal while training steps
run lets the step under way finish, checkpoints it whatever train.checkpoint_every says, and ends the
run interrupted with the exact resume command; a second signal stops it at once. No wrapper of user
code (an environment's step, a reward function) takes the run's own stop for an error of its own."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from align_lab.envs.base import EnvError, LastTurn, Step, run_step
from align_lab.rerun import shell_command
from align_lab.run.summary import RunStopped
from align_lab.train.checkpoint_io import checkpoint_step
from align_lab.train.preemption import Interrupted, Interruption
from tests.conftest import (
    FULL,
    ROOT,
    SMALL,
    as_in_a_terminal,
    full_but,
    run_cli,
    run_in_process,
    signal_from_outside,
)

ROWS = 16  # train.rollout_size of tests/conftest.py's SMALL: episodes a step
MARKER = "ALIGN_LAB_TEST_SIGNAL_FILE"  # while this file exists, the environment below signals once


def signal_once(name: str, times: int) -> None:
    """Sends this process `name` `times` times, once a run: the marker file is taken (a rerun of the
    same config, the resume, signals no more)."""
    marker = Path(os.environ.get(MARKER, "/nonexistent"))
    try:
        marker.unlink()
    except FileNotFoundError:
        return
    for _ in range(times):  # from another process, as a scheduler's or a user's (the run's own code's
        signal_from_outside(name)  # signal to itself is that code's end: user_signals.py)


class Signals:
    """A test environment: one tool call, then done; the first episode of step 2 (after `after`
    episodes) sends the process `signal` `times` times from its step, as a scheduler or Ctrl-C would
    while the environment is stepped."""

    multi_turn = True

    def __init__(self, signal="SIGTERM", times=1, after=ROWS, max_turns=2, step_timeout_s=30.0):
        self.signal, self.times, self.after = signal, times, after
        self.max_turns, self.step_timeout_s = max_turns, step_timeout_s
        self.started = 0

    def start(self, prompt):
        self.started += 1
        return SignalsEpisode(self if self.started == self.after + 1 else None)


class SignalsEpisode(LastTurn):
    def __init__(self, env):
        super().__init__()
        self.env = env

    def step(self, turn):
        self.turns.append(turn)
        if self.env is not None and len(self.turns) == 1:
            signal_once(self.env.signal, self.env.times)
        if len(self.turns) == 1:
            return Step(observation="1 + 1 =", reward=0.25, tool_call=True)
        return Step(done=True)


def env_overrides(*extra: str) -> list[str]:
    return ["algo=grpo", "task=toy_arith", "reward=gold", f"env._target_={__name__}.Signals", *extra]


def logged_steps(run_dir: Path) -> list[int]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [x["step"] for x in lines if "train/loss" in x]


@pytest.mark.fast
def test_a_signal_in_an_env_step_is_the_runs_interruption_not_an_env_error():
    class Episode(LastTurn):
        def step(self, turn):
            try:  # an environment that turns every failure of its own into an answer
                signal_from_outside("TERM")  # a scheduler's, as the step runs
                return Step(observation="unreachable")
            except Exception:
                return Step(observation="swallowed")

    # the step runs on a thread; the signal reaches the main thread, waiting for it (envs/base.py)
    with Interruption(), pytest.raises(Interrupted) as e:
        run_step("probe", Episode(), "turn", 1, 30.0)
    assert e.value.signal_name == "SIGTERM" and e.value.exit_code == 143  # 128 + 15
    assert not isinstance(e.value, EnvError | Exception)


@pytest.mark.fast
def test_while_steps_run_a_first_signal_waits_for_the_steps_end_and_a_second_stops_at_once():
    class Episode(LastTurn):
        def step(self, turn):
            signal_from_outside("TERM")
            return Step(observation="answered")

    with Interruption() as interruption:
        interruption.deferred = True  # Preemption.steps_begin()
        assert run_step("probe", Episode(), "turn", 1, 30.0).observation == "answered"
        assert interruption.requested == "SIGTERM"
        with pytest.raises(Interrupted):
            run_step("probe", Episode(), "turn", 1, 30.0)


def test_a_signal_in_an_env_step_checkpoints_the_step_whatever_checkpoint_every_says(
    tmp_path, cache_dir, monkeypatch
):
    """checkpoint_every=100 with 3 steps writes no periodic checkpoint: the one the resume starts from
    is the interruption's, of step 2 (the step the signal landed in, finished)."""
    (tmp_path / "marker").touch()
    monkeypatch.setenv(MARKER, str(tmp_path / "marker"))
    run_dir = tmp_path / "run"
    overrides = env_overrides("train.checkpoint_every=100")
    with pytest.raises(RunStopped) as e:
        run_in_process(overrides, run_dir, cache_dir)
    assert e.value.exit_code == 143  # 128 + SIGTERM's 15, as for any interruption
    assert str(e.value).startswith("interrupted by SIGTERM; resume from step 2 with: ")
    assert checkpoint_step(run_dir / "checkpoints") == 2 and logged_steps(run_dir) == [1, 2]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["error"] == str(e.value)
    # the rerun resumes from step 2: step 3 alone is trained and logged
    assert run_in_process(overrides, run_dir, cache_dir)["status"] == "completed"
    assert logged_steps(run_dir) == [1, 2, 3]


SWALLOWED = []


def swallowing_reward(prompts: list[str], responses: list[str]) -> list[float]:
    """A reward function that turns every failure into a score of 0; on its second call (step 2) the
    process gets SIGINT twice (a user pressing Ctrl-C again): the second stops the run at once."""
    swallowing_reward.calls = getattr(swallowing_reward, "calls", 0) + 1
    try:
        if swallowing_reward.calls == 2:
            signal_from_outside("INT")
            signal_from_outside("INT")
        return [float(len(r)) for r in responses]
    except Exception:
        SWALLOWED.append(True)
        return [0.0] * len(responses)


def test_a_reward_function_that_catches_exception_does_not_swallow_the_runs_interruption(tmp_path, cache_dir):
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    swallowing_reward.calls = 0
    try:
        with pytest.raises(RunStopped) as e:
            run_in_process(
                ["reward=function", f"reward.path={__name__}:swallowing_reward"], tmp_path, cache_dir
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not SWALLOWED
    assert e.value.exit_code == 130  # 128 + SIGINT's 2
    # the second signal stopped step 2 where it was, in the reward's call, which the line names (thirty-
    # third hunt, case 67: a call that never returned went unsaid): the resume starts from step 1's checkpoint
    said = re.match(
        r"interrupted by SIGINT in a call of your code, at (.+):(\d+); resume from step 1 with: ",
        str(e.value),
    )
    assert said and said[1] == str(ROOT / "tests" / "conftest.py"), e.value
    assert checkpoint_step(tmp_path / "checkpoints") == 1
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "interrupted"


def deafening_reward(prompts, responses):
    """Sets SIGTERM and SIGINT to SIG_IGN at each call from its second (a library it calls might); at its
    third, a scheduler's SIGTERM comes after that, during the call."""
    deafening_reward.calls = getattr(deafening_reward, "calls", 0) + 1
    if deafening_reward.calls >= 2:
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # what the code set, as it reads it
        assert signal.signal(signal.SIGTERM, signal.SIG_IGN) == signal.SIG_IGN and previous is not None
    if deafening_reward.calls == 3:
        signal_from_outside("TERM")
    return [float(len(r)) for r in responses]


def test_a_reward_that_ignores_the_runs_signals_does_not_keep_them_from_the_run(tmp_path, cache_dir, caplog):
    """Seventeenth hunt: a reward that set SIGTERM to SIG_IGN made two SIGTERMs do nothing: the run trained
    on to its end (under a scheduler, the SIGKILL that follows loses every step since the last checkpoint),
    saying nothing. Put back after each call, a SIGTERM that came during one was still lost (thirty-fifth
    hunt, case 20): the run's handlers stay installed through the call, with a warning naming the reward."""
    import logging

    deafening_reward.calls = 0
    path = f"reward.path={__name__}:deafening_reward"
    with caplog.at_level(logging.WARNING, logger="align_lab"), pytest.raises(RunStopped) as e:
        run_in_process(["reward=function", path, "train.steps=4"], tmp_path, cache_dir)
    assert str(e.value).startswith("interrupted by SIGTERM; resume from step 3 with: "), e.value
    assert checkpoint_step(tmp_path / "checkpoints") == 3
    said = [m for m in caplog.messages if "handler of the run's" in m or "changed the run's" in m]
    assert said == [
        f"warning: {path} set a handler of the run's SIGTERM and SIGINT; the run keeps its own during each "
        "call (yours is not installed), so that a scheduler's SIGTERM stops the run at a step's end with its "
        "checkpoint"
    ], caplog.messages


@pytest.mark.parametrize(
    "name",
    full_but(["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1"], {"SIGTERM"}),
)
def test_a_signal_while_the_env_is_stepped_keeps_every_step_and_names_the_resume_command(
    name, tmp_path, cache_dir
):
    """As the user meets it: `python -m align_lab` with train.checkpoint_every larger than the run, the
    signal in step 2's environment call; the command the last line names resumes it from step 2.
    Seventeenth hunt: SIGHUP (a terminal closed) and SIGUSR1 killed the run, no line, no checkpoint."""
    (tmp_path / "marker").touch()
    run_dir = tmp_path / "run"
    args = [
        *[o for o in SMALL if not o.startswith("reward.")],  # reward=gold has no training
        *env_overrides(f"+env.signal={name}", "train.checkpoint_every=100"),
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, MARKER: str(tmp_path / "marker")}
    cmd = [sys.executable, "-m", "align_lab", *args]
    done = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600, preexec_fn=as_in_a_terminal
    )
    code = 128 + getattr(signal, name)  # 143 for SIGTERM, 130 for SIGINT
    assert done.returncode == code, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "env=" not in done.stderr
    lines = [x for x in done.stderr.splitlines() if x.startswith("align_lab:")]
    resume = shell_command("align_lab", *args, cwd=ROOT)  # in the folder it was typed in, from any
    assert lines[-1] == f"align_lab: interrupted by {name}; resume from step 2 with: {resume}"
    assert checkpoint_step(run_dir / "checkpoints") == 2 and logged_steps(run_dir) == [1, 2]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    again = subprocess.run(
        ["bash", "-c", lines[-1].split(" with: ", 1)[1]], cwd="/", capture_output=True, text=True, env=env
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert logged_steps(run_dir) == [1, 2, 3]  # step 3 alone trained again, nothing twice
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def job_folders(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())


def test_a_run_interrupted_in_a_sweep_stops_the_sweep_and_the_sweeps_command_resumes_it(tmp_path, cache_dir):
    """A sweep of two seeds in one process (hardware=cpu): SIGTERM in the first run's step 2 ends that
    run checkpointed and the sweep with it (the second run never starts, as under a scheduler's stop);
    the command the line names is the sweep's own, and resumes both."""
    (tmp_path / "marker").touch()
    sweep = tmp_path / "sweep"
    small = [o for o in SMALL if not o.startswith("reward.")]
    args = ["-m", "hardware=cpu", *small, *env_overrides("train.checkpoint_every=100"), "seed=0,1",
            f"cache_dir={cache_dir}", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    env = {**os.environ, MARKER: str(tmp_path / "marker")}
    done = subprocess.run(
        [sys.executable, "-m", "align_lab", *args], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert done.returncode == 143, done.stderr[-3000:]
    resume = shell_command("align_lab", *args, cwd=ROOT)  # as typed, the sweep folder named
    lines = [x for x in done.stderr.splitlines() if x.startswith("align_lab:")]
    assert lines[-1] == f"align_lab: interrupted by SIGTERM; resume from step 2 with: {resume}"
    first, *others = job_folders(sweep)
    assert checkpoint_step(first / "checkpoints") == 2 and not others  # the second run never started
    again = subprocess.run(["bash", "-c", resume], cwd="/", capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [logged_steps(p) for p in job_folders(sweep)] == [[1, 2, 3], [1, 2, 3]]


@FULL
def test_sigterm_between_a_sequential_studys_looks_is_one_line_and_its_command_resumes_it(
    tmp_path, cache_dir
):
    """SIGTERM once look 1 is recorded (the launcher composing and admitting wave 2, or, if it is that
    far, wave 2's first run): exit 143 and one line naming the study's own command, which finishes it."""
    from align_lab.results.plan_record import read_record

    sweep = tmp_path / "study"
    args = ["-m", "hardware=cpu", *SMALL, f"cache_dir={cache_dir}", "train.steps=2",
            "plan={start: 2, wave: 2, max_seeds: 4}", "study=x,y", "compare_by=study",
            'claims=["x > y on step"]', f"hydra.sweep.dir={sweep}"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "align_lab", *args], cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 600
    while not (read_record(sweep) or {}).get("looks"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err
    resume = shell_command("align_lab", *args, cwd=ROOT)
    last = [x for x in err.splitlines() if x.startswith("align_lab:")][-1]
    assert last in (
        f"align_lab: sequential study interrupted by SIGTERM; resume with: {resume}",
        f"align_lab: interrupted by SIGTERM; resume from step 1 with: {resume}",  # in wave 2's first run
    ), last
    again = subprocess.run(["bash", "-c", resume], cwd="/", capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    record = read_record(sweep)
    assert [look["seeds"] for look in record["looks"]] == [2, 4] and record["seeds_run"] == {"x": 4, "y": 4}


@pytest.mark.fast
def test_a_signal_in_the_launcher_itself_is_one_line_naming_the_sweeps_command(tmp_path, capsys):
    from align_lab.study.outcome import interruptible

    hydra = {"mode": "MULTIRUN", "job": {"config_name": "config"},
             "overrides": {"hydra": [], "task": ["seed=0,1"]},
             "runtime": {"cwd": str(tmp_path), "config_sources": []}}  # fmt: skip
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "multirun.yaml").write_text(json.dumps({"hydra": hydra}))  # JSON is YAML
    with pytest.raises(SystemExit) as e, interruptible(tmp_path / "sweep", "sequential study"):
        os.kill(os.getpid(), signal.SIGTERM)
    assert e.value.code == 143
    python = Path(sys.executable).absolute()
    command = f"cd {tmp_path} && {python} -m align_lab -m seed=0,1 hydra.sweep.dir={tmp_path / 'sweep'}"
    assert (
        capsys.readouterr().err
        == f"align_lab: sequential study interrupted by SIGTERM; resume with: {command}\n"
    )


@pytest.mark.parametrize("algo", ["algo=reinforce_pp", "algo=dpo"])  # the online loop, the pairwise loop
def test_a_run_interrupted_mid_run_resumes_to_the_metrics_of_an_uninterrupted_one(
    algo, tmp_path, cache_dir, monkeypatch
):
    """SIGTERM as step 2 is logged, with no periodic checkpoint (checkpoint_every=100): the run stops
    after step 2 with its checkpoint, and its resume logs exactly what the uninterrupted run logs."""
    from align_lab.tracking import JsonlTracker

    args = [algo, "seed=2", "train.steps=4", "train.checkpoint_every=100"]
    run_in_process(args, tmp_path / "straight", cache_dir)
    original = JsonlTracker.log

    def log_then_signal(self, metrics, step):
        original(self, metrics, step)
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(JsonlTracker, "log", log_then_signal)
    with pytest.raises(RunStopped, match="^interrupted by SIGTERM; resume from step 2 with: "):
        run_in_process(args, tmp_path / "resumed", cache_dir)
    monkeypatch.setattr(JsonlTracker, "log", original)
    assert run_in_process(args, tmp_path / "resumed", cache_dir)["status"] == "completed"

    def without_time(run_dir: Path) -> list[dict]:
        rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/", "memory/"))} for r in rows]

    assert without_time(tmp_path / "resumed") == without_time(tmp_path / "straight")


@pytest.mark.fast
@pytest.mark.parametrize("stop", [Interrupted("SIGTERM"), KeyboardInterrupt()])
def test_a_signal_during_a_sweeps_admission_puts_its_folder_back(tmp_path, monkeypatch, stop):
    """Admission restored the sweep folder on an Exception only: a SIGTERM or Ctrl-C while the jobs were
    admitted (a BaseException) left the new multirun.yaml over the earlier sweep's."""
    from omegaconf import OmegaConf

    from align_lab.study import admission

    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "multirun.yaml").write_text("the earlier sweep's")
    folder = admission.SweepFolder(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}}))
    (sweep_dir / "multirun.yaml").write_text("this sweep's")  # as Hydra's sweeper writes it after setup()

    def admit_job(*args):
        raise stop

    monkeypatch.setattr(admission, "admit_job", admit_job)
    with pytest.raises(type(stop)):
        admission.admit_sweep(None, None, [["seed=0"]], 0, False, folder)
    assert (sweep_dir / "multirun.yaml").read_text() == "the earlier sweep's"


@pytest.mark.fast
def test_a_signal_during_a_checkpoint_write_keeps_the_previous_one_and_the_rerun_resumes_from_it(
    tmp_path, cache_dir, monkeypatch
):
    """SIGTERM (a second one, or outside the steps: raised at once) while step 2's checkpoint is half
    written: step 1's stays the loadable checkpoint, no partial file remains, and the rerun trains steps
    2 and 3 from it (docs/faults.md, "Interruptions keep every step")."""
    import torch

    from align_lab.train import checkpoint_io

    save = checkpoint_io.torch.save

    def half_written(obj, path):
        if obj["step"] == 2:
            Path(path).write_bytes(b"PK\x03\x04 half a zip")  # what a write stopped midway leaves
            raise Interrupted("SIGTERM")
        save(obj, path)

    monkeypatch.setattr(checkpoint_io.torch, "save", half_written)
    run_dir, ckpt = tmp_path / "run", tmp_path / "run" / "checkpoints"
    with pytest.raises(RunStopped) as e:
        run_in_process([], run_dir, cache_dir)  # SMALL: 3 steps, a checkpoint each
    assert str(e.value).startswith("interrupted by SIGTERM; resume from step 1 with: ")
    assert sorted(p.name for p in ckpt.iterdir()) == ["last", "state-00000001.pt"]
    assert torch.load(checkpoint_io.checkpoint_file(ckpt), weights_only=False)["step"] == 1
    monkeypatch.setattr(checkpoint_io.torch, "save", save)
    assert run_in_process([], run_dir, cache_dir)["status"] == "completed"
    assert checkpoint_step(ckpt) == 3 and logged_steps(run_dir) == [1, 2, 3]


@pytest.mark.fast
def test_a_run_interrupted_before_its_first_checkpoint_counts_that_segment_in_its_wall_time(
    tmp_path, cache_dir, monkeypatch
):
    """Ctrl-C while the stages are built ('resume from step 0 with: ...'), then the command again: the
    rerun's time/total_s was its own segment alone (the interrupted one, a second here, was dropped as if
    the user had deleted the checkpoints to start again)."""
    from align_lab.run import execute as run_module

    def slow_then_interrupted(*args, **kwargs):
        time.sleep(1.0)
        raise Interrupted("SIGINT")

    run_dir = tmp_path / "run"
    monkeypatch.setattr(run_module, "build_run", slow_then_interrupted)
    with pytest.raises(RunStopped, match="^interrupted by SIGINT; resume from step 0 with: "):
        run_in_process([], run_dir, cache_dir)
    (first,) = json.loads((run_dir / "summary.json").read_text())["segments_s"]
    assert first >= 1.0
    monkeypatch.undo()
    summary = run_in_process([], run_dir, cache_dir)
    assert summary["status"] == "completed" and summary["time/segments"] == 2
    assert summary["segments_s"][0] == first
    assert summary["time/total_s"] == pytest.approx(sum(summary["segments_s"]), abs=0.5)


@pytest.mark.fast
def test_a_signal_while_a_sequential_studys_plan_is_checked_puts_its_folder_back(tmp_path, monkeypatch):
    """As for a sweep's admission: the plan's checks (which compose every arm's config) restored the
    sweep folder on an Exception only."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from align_lab.study import admission, waves

    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "multirun.yaml").write_text("the earlier sweep's")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
    launcher = SimpleNamespace(config=config, sweep_folder=admission.SweepFolder(config))
    (sweep_dir / "multirun.yaml").write_text("this sweep's")

    def checked_plan(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(waves, "_checked_plan", checked_plan)
    with pytest.raises(KeyboardInterrupt):
        waves.run_waves(launcher, [["algo=ppo"]], 0)
    assert (sweep_dir / "multirun.yaml").read_text() == "the earlier sweep's"


def test_a_reward_that_scores_in_a_forked_pool_ends_it_and_completes(tmp_path, cache_dir):
    """Tenth hunt: `with multiprocessing.get_context("fork").Pool(1)` in a reward hung the run at step 1
    (the pool's terminate() sends its worker SIGTERM, which the worker took as the run's own, printing a
    SIGTERM nobody sent, and went on). A forked process takes such a signal by default."""
    (tmp_path / "pool_reward10.py").write_text(
        "import multiprocessing\n\n\ndef one():\n    return 1.0\n\n\ndef score(prompts, responses):\n"
        "    with multiprocessing.get_context('fork').Pool(1) as pool:\n        w = pool.apply(one)\n"
        "    return [w * len(r) / 10 for r in responses]\n"
    )
    small = [o for o in SMALL if not o.startswith("reward.")]
    args = [*small, "train.steps=2", f"cache_dir={cache_dir}", f"hydra.run.dir={tmp_path / 'run'}"]
    args += ["reward=function", "reward.path=pool_reward10:score"]
    pythonpath = os.pathsep.join([str(tmp_path), str(ROOT)])
    result = run_cli(args, cwd=tmp_path, env={"PYTHONPATH": pythonpath}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SIGTERM" not in result.stderr


@pytest.mark.fast
def test_summary_json_says_completed_before_the_run_says_so(tmp_path, cache_dir):
    """Seventeenth hunt: a SIGTERM right after `... completed in 8 s: ...` (the run's handlers gone by then)
    left summary.json `running`, and compare counted the run as died. The lines now come once it is
    written."""
    import logging

    seen = []

    class Peek(logging.Handler):
        def emit(self, record):
            if " completed in " in record.getMessage():
                seen.append(json.loads((tmp_path / "summary.json").read_text())["status"])

    peek, logger = Peek(), logging.getLogger("align_lab")
    level = logger.level
    logger.addHandler(peek)
    logger.setLevel(logging.INFO)
    try:
        run_in_process(["train.steps=1"], tmp_path, cache_dir)
    finally:
        logger.removeHandler(peek)
        logger.setLevel(level)
    assert seen == ["completed"]


def _catches(pid: int, signum: int) -> bool:
    """Process `pid` has a handler of its own for `signum` (its SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


@pytest.mark.parametrize(
    "sent, after_s",
    [
        (signal.SIGINT, 0.5),
        (signal.SIGINT, 0.8),
        (signal.SIGINT, 1.1),
        (signal.SIGTERM, 0.4),
        (signal.SIGTERM, 1.1),
        (signal.SIGTERM, 2.9),
        (signal.SIGHUP, 3.0),
        (signal.SIGUSR1, 0.6),
    ],
)
def test_a_signal_as_the_command_starts_is_one_line(tmp_path, sent, after_s):
    """Seventeenth hunt: a Ctrl-C in the first 0.5-0.7 s (importing, Hydra composing the config, before the
    run's own handling) was a 46-86-line KeyboardInterrupt traceback, rc -2. Eighteenth: SIGTERM, SIGHUP and
    SIGUSR1 there, and in the hand-over from admission to the run (~3 s), killed the command with no line,
    leaving a folder with `.hydra/` or a `running` summary.json. Where it lands depends on the machine:
    whichever phase, one line, the signal's exit code, and no folder that says the run is running."""
    run = subprocess.Popen(
        [sys.executable, "-m", "align_lab", "tracker=none", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_a_terminal,
    )
    started = time.monotonic()
    # not before the command handles it: a signal that comes before the interpreter runs its first line
    # ends any program (SIGTERM's default action); on a loaded machine that start took past 0.4 s (-15)
    while not _catches(run.pid, sent) and run.poll() is None and time.monotonic() - started < 60:
        time.sleep(0.01)
    time.sleep(max(0.0, after_s - (time.monotonic() - started)))
    run.send_signal(sent)
    _, said = run.communicate(timeout=120)
    lines = [x for x in said.splitlines() if x.startswith("align_lab:")]
    assert run.returncode == 128 + sent and "Traceback" not in said and lines, said[-3000:]
    assert f"interrupted by {signal.Signals(sent).name}" in lines[-1], lines[-1]
    summary = tmp_path / "run" / "summary.json"
    if summary.exists():  # stopped in its steps' preparation: resumable, and said so
        assert json.loads(summary.read_text())["status"] == "interrupted", lines[-1]
    else:  # "before any compute": nothing left behind
        assert not (tmp_path / "run").exists(), (lines[-1], list((tmp_path / "run").rglob("*")))


SCALED = """
import os

CALLS = [0]

def score(prompts, responses):
    CALLS[0] += 1
    if CALLS[0] == 3:
        open(os.environ["SCALED_MARK"], "w").close()
    scale = float(os.environ.get("RESUME_SCALE50", "1"))
    return [scale * len(r) for r in responses]
"""


def test_the_resume_command_of_a_run_whose_code_read_a_variable_says_to_set_it(tmp_path, cache_dir):
    """Thirty-third hunt, case 50: a variable the reward reads, set inline (`RESUME_SCALE50=2 python -m
    align_lab ...`); a SIGTERM's resume command dropped it, and in a new shell the resume was refused over
    it. The command names it now, as bash checks it (its value is never printed: it may be a secret)."""
    (tmp_path / "scaled50.py").write_text(SCALED)
    mark, run_dir = tmp_path / "mark", tmp_path / "run"
    small = [a for a in SMALL if not a.startswith(("reward.", "train.steps="))]
    args = [*small, "train.steps=40", "reward=function", "reward.path=scaled50:score"]
    args += [f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "RESUME_SCALE50": "2", "SCALED_MARK": str(mark)}
    run = subprocess.Popen(
        [sys.executable, "-m", "align_lab", *args], cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env
    )
    while not mark.exists() and run.poll() is None:
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    stderr = run.communicate(timeout=300)[1]
    [line] = [x for x in stderr.splitlines() if x.startswith("align_lab: interrupted by SIGTERM; ")]
    command = line.split(" with: ", 1)[1]
    guard = 'RESUME_SCALE50="${RESUME_SCALE50?set it as when the run started: your code reads it}" '
    assert command.startswith(f"cd {tmp_path} && {guard}"), command
    unset = {k: v for k, v in os.environ.items() if k != "RESUME_SCALE50"} | {"SCALED_MARK": str(mark)}
    refused = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=unset, timeout=300)
    assert refused.returncode != 0 and "RESUME_SCALE50: set it as when the run started" in refused.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    resumed = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=300,
        env={**unset, "RESUME_SCALE50": "2"},
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_a_resumed_runs_progress_line_goes_on_with_the_last_evaluations_kl(tmp_path, cache_dir, caplog):
    """Hunt of 2026-12-04, k4: an algorithm without a KL term shows the latest evaluation's KL; resumed
    after the step-2 evaluation and checkpoint, its line said `kl -` until the next evaluation, where the
    uninterrupted run's says `kl <step 2's> (eval@2)`."""
    import logging

    from tests.conftest import dies_after_step_2, run_in_process

    run_dir, keys = tmp_path / "run", ["algo=grpo", "algo.kl_coef=0", "train.steps=4", "train.eval_every=2"]
    dies_after_step_2(lambda: run_in_process(keys, run_dir, cache_dir))
    kl = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[1])["eval/kl"]  # step 2's row
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="align_lab"):
        run_in_process(keys, run_dir, cache_dir)
    [line] = [r.getMessage() for r in caplog.records if "policy optimisation: 3/4" in r.getMessage()]
    assert f"kl {kl:.3f} (eval@2)" in line, line
