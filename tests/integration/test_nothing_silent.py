"""Issue 59 item 3: nothing completes that did not do what its config says. Each case stops (or is
refused) in one line naming the key, through the real run entry on the toy world."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from align_lab.config import ConfigError
from align_lab.run.summary import RunStopped
from tests.conftest import compose, run_in_process


@pytest.mark.fast
def test_a_kto_threshold_above_every_sampled_reward_stops_in_one_line_naming_the_range(tmp_path, cache_dir):
    """toy_prefs' gold rewards are not 0/1, so only the sampled rewards tell (before: a 61-line
    traceback after the preferences stage)."""
    run_dir = tmp_path / "run"
    with pytest.raises(RunStopped) as e:
        run_in_process(["algo=kto", "reward=gold", "algo.desirable_threshold=100"], run_dir, cache_dir)
    message = str(e.value)
    assert message.startswith("error: algo.desirable_threshold=100.0: all ") and "\n" not in message
    assert "are at or below it, so KTO has nothing to contrast; choose a threshold in [" in message
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "traceback" not in summary


@pytest.mark.fast
@pytest.mark.parametrize("threshold", ["1", "-0.5"])
def test_a_kto_threshold_outside_a_verifiers_0_1_is_refused_at_admission(threshold):
    from align_lab.run.admission import spec_from_config
    from align_lab.run.cross_checks import check_run

    world = ["algo=kto", "task=toy_arith", "reward=verifier", "cache_dir=/nonexistent"]
    spec = spec_from_config(*compose([*world, f"algo.desirable_threshold={threshold}"]))
    with pytest.raises(
        ConfigError, match=rf"^algo.desirable_threshold={float(threshold)}: reward=verifier on "
    ):
        check_run(spec, here=False)
    check_run(spec_from_config(*compose([*world, "algo.desirable_threshold=0.5"])), here=False)


class Interrupt(BaseException):
    pass


@pytest.fixture(scope="module")
def stopped_at_step_2(tmp_path_factory, cache_dir):
    """A run of train.steps=4 that died after its step-2 checkpoint (tests/conftest.py SMALL checkpoints
    every step): a folder to resume."""
    from align_lab.tracking import JsonlTracker

    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    original = JsonlTracker.log

    def log_then_die(self, metrics, step):
        original(self, metrics, step)
        if step == 3:  # step 3's metrics are logged before its checkpoint: the last is step 2's
            raise Interrupt

    JsonlTracker.log = log_then_die
    try:
        with pytest.raises(Interrupt):
            run_in_process(["train.steps=4"], run_dir, cache_dir)
    finally:
        JsonlTracker.log = original
    return run_dir


def admit_resume(run_dir, cache_dir, *overrides):
    from align_lab.run.admission import admit_spec, spec_from_config
    from tests.conftest import SMALL

    cfg, names = compose([*SMALL, f"cache_dir={cache_dir}", *overrides])
    return admit_spec(spec_from_config(cfg, names), run_dir, here=False)


@pytest.mark.fast
def test_a_resume_with_train_steps_below_the_checkpoints_step_is_refused(stopped_at_step_2, cache_dir):
    from align_lab.train.checkpoint_io import checkpoint_step

    ckpt = stopped_at_step_2 / "checkpoints"
    assert checkpoint_step(ckpt) == 2
    with pytest.raises(
        ConfigError
    ) as e:  # before: "completed" with 2 steps trained and steps=1 in its config
        admit_resume(stopped_at_step_2, cache_dir, "train.steps=1")
    assert str(e.value) == (
        f"train.steps=1: the checkpoint in {ckpt} has trained 2 steps already; resume with train.steps >= 2, "
        "or choose another hydra.run.dir"
    )
    for steps in (2, 3):  # at or past the checkpoint: resumes
        admit_resume(stopped_at_step_2, cache_dir, f"train.steps={steps}")


@pytest.mark.fast
def test_a_resume_on_changed_training_code_is_refused_unless_resume_changed_code(
    stopped_at_step_2, cache_dir, monkeypatch
):
    import torch

    from align_lab.run import code_digest
    from align_lab.train.checkpoint_io import checkpoint_file

    ckpt = stopped_at_step_2 / "checkpoints"
    saved = torch.load(checkpoint_file(ckpt), weights_only=False)["identity"]["code"]
    assert saved == code_digest.training_code_digest()  # the checkpoint holds the code's digest
    admit_resume(stopped_at_step_2, cache_dir, "train.steps=4")  # the same code: resumes
    monkeypatch.setattr(code_digest, "training_code_digest", lambda: "0123456789abcdef")  # the code changed
    with pytest.raises(ConfigError) as e:
        admit_resume(stopped_at_step_2, cache_dir, "train.steps=4")
    assert str(e.value) == (
        f"resume_changed_code=false: the checkpoint in {ckpt} was trained by other training code (digest "
        f"{saved}, this code's 0123456789abcdef), and a resume would mix two versions of the code in one "
        "run; resume with the code it was trained by, set resume_changed_code=true to resume anyway (where "
        "this code builds its stages alike: checked next), or another run dir"
    )
    job = admit_resume(stopped_at_step_2, cache_dir, "train.steps=4", "resume_changed_code=true")
    assert job.run_dir == stopped_at_step_2  # the documented override: admitted


def test_the_training_code_digest_covers_the_loop_and_not_the_results():
    from align_lab.run.code_digest import PACKAGE, TRAINING_CODE

    assert (PACKAGE / "train" / "online.py").is_file() and "train" in TRAINING_CODE
    assert "results" not in TRAINING_CODE and "tracking" not in TRAINING_CODE


@pytest.fixture(scope="module")
def completed_at_2(tmp_path_factory, cache_dir):
    """A run of train.steps=2, completed (its checkpoint kept, as by default)."""
    run_dir = tmp_path_factory.mktemp("completed") / "run"
    assert run_in_process(["train.steps=2"], run_dir, cache_dir)["status"] == "completed"
    return run_dir


@pytest.mark.fast
@pytest.mark.parametrize("steps,unit", [(1, "step"), (3, "steps")])
def test_a_rerun_of_a_completed_run_with_other_train_steps_says_what_was_completed(
    completed_at_2, cache_dir, steps, unit
):
    """Before: one line saying the folder holds 'a completed run of another config', naming no key, and
    faults.md promised that a completed run could be extended with more train.steps."""
    with pytest.raises(ConfigError) as e:
        admit_resume(completed_at_2, cache_dir, f"train.steps={steps}")
    assert str(e.value) == (
        f"train.steps={steps}: hydra.run.dir={completed_at_2} holds this run completed at train.steps=2 "
        "(a completed run is not extended or cut); choose another hydra.run.dir to train it for "
        f"{steps} {unit}"
    )
    assert admit_resume(completed_at_2, cache_dir, "train.steps=2").completed  # the same: reported as it is


FLAKY_CALLS = {"n": 0, "fail_at": 0}


def flaky_reward(prompts, responses):
    """A user's reward whose call number `fail_at` raises (0: never)."""
    FLAKY_CALLS["n"] += 1
    if FLAKY_CALLS["n"] == FLAKY_CALLS["fail_at"]:
        raise ConnectionError("scorer\nunreachable")  # SCORER_LINE
    return [float(len(r.split())) for r in responses]


def test_a_reward_function_that_raises_is_one_line_naming_it_and_its_fix_resumes_the_run(tmp_path, cache_dir):
    """Issue 73: a 55-line traceback before. The line names reward.path and the exception, the first
    step's checkpoint stays, and the command it prints resumes the run once the function is fixed."""
    from align_lab.train.checkpoint_io import checkpoint_step

    run_dir, path = tmp_path / "run", f"{__name__}:flaky_reward"
    FLAKY_CALLS.update(n=0, fail_at=2)  # step 1 scores (call 1), step 2 fails
    with pytest.raises(RunStopped) as e:
        run_in_process(["reward=function", f"reward.path={path}"], run_dir, cache_dir)
    message = str(e.value)
    at = next(i for i, x in enumerate(open(__file__), 1) if "# SCORER_LINE" in x)  # 36th hunt, case 21
    head = f"error: reward.path={path}: raised ConnectionError: scorer unreachable at {__file__}:{at}"
    head += "; fix it, then resume"
    assert message.startswith(head + " from step 1 with: ") and "\n" not in message
    # fixing the module changes the digest a resume checks (run/inputs.py): the command allows it
    assert message.endswith(" resume_changed_inputs=true")
    assert checkpoint_step(run_dir / "checkpoints") == 1
    assert json.loads((run_dir / "summary.json").read_text())["error"] == message.removeprefix("error: ")
    FLAKY_CALLS.update(fail_at=0)  # fixed
    summary = run_in_process(["reward=function", f"reward.path={path}"], run_dir, cache_dir)
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert summary["status"] == "completed" and [s for s in steps if s <= 3] == [1, 2, 3]


def exiting_reward(prompts, responses):
    """A reward function that calls sys.exit(0) (a user's script habit) on its second call."""
    FLAKY_CALLS["n"] += 1
    if FLAKY_CALLS["n"] == 2:
        import sys

        sys.exit(0)
    return [float(len(r.split())) for r in responses]


STOPPING_REWARD = """
class UsersStop(BaseException):
    pass

CALLS = [0]

def score(prompts, responses):
    CALLS[0] += 1
    if CALLS[0] == 2:
        raise {raised}
    return [float(len(r.split())) for r in responses]
"""


@pytest.mark.parametrize(
    "raised", ["UsersStop('custom base')", "GeneratorExit()"], ids=["users", "generator_exit"]
)
def test_a_base_exception_from_a_reward_function_is_one_line_on_the_command_line(
    tmp_path, cache_dir, raised, forked_cli
):
    """Issue 73 fifth hunt: a reward (or verifier, env step) raising GeneratorExit or a BaseException class
    of the user's gave a 17-40-frame traceback. Now one line naming where, exit code 1; summary.json keeps
    the traceback, the run its checkpoint to resume from. The command's own process (forked_cli: its
    module found from the folder it runs in, as python -m finds it), not how a process starts."""
    from tests.conftest import SMALL

    (tmp_path / "stopping_reward.py").write_text(STOPPING_REWARD.format(raised=raised))
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]  # reward=function takes only its path
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "reward=function"]
    result = forked_cli([*args, "reward.path=stopping_reward:score"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    name = "UsersStop: custom base" if "Users" in raised else "GeneratorExit"
    assert line.startswith(
        f"align_lab: error: {tmp_path / 'stopping_reward.py'}:10 raised {name} (a BaseException"
    )
    assert "during the run; resume from step 1 with: " in line and "Traceback" not in result.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


EXITING_REWARD = """
import os

CALLS = [0]

def score(prompts, responses):
    CALLS[0] += 1
    if CALLS[0] == 2:
        os._exit({code})
    return [float(len(r.split())) for r in responses]
"""


@pytest.mark.parametrize("code", [0, 3])
def test_a_reward_function_that_calls_os_exit_stops_the_run_in_one_line(
    code, tmp_path, cache_dir, forked_cli
):
    """Twenty-second hunt, case 40: a reward calling os._exit(0) ended the process at once: rc 0, no
    line, summary.json saying running. Now the run's one line names where, as for sys.exit."""
    from tests.conftest import SMALL

    (tmp_path / "exiting_reward.py").write_text(EXITING_REWARD.format(code=code))
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "reward=function"]
    result = forked_cli([*args, "reward.path=exiting_reward:score"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(f"align_lab: error: {tmp_path / 'exiting_reward.py'}:9 called os._exit({code}) ")
    assert "during the run; resume from step 1 with: " in line and "Traceback" not in result.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


@pytest.mark.fast
def test_a_reward_function_that_calls_sys_exit_stops_the_run_in_one_line_not_rc_0(tmp_path, cache_dir):
    """Issue 73 fourth hunt: reward.path=mod:fn calling sys.exit(0) ended the process with rc 0 and no
    line at all (summary.json: failed, SystemExit: 0). Now a one-line stop naming where, exit code 1."""
    run_dir, path = tmp_path / "run", f"{__name__}:exiting_reward"
    FLAKY_CALLS.update(n=0)
    with pytest.raises(RunStopped) as e:
        run_in_process(["reward=function", f"reward.path={path}"], run_dir, cache_dir)
    message = str(e.value)
    assert message.startswith(f"error: {__file__}:") and "\n" not in message
    assert " called sys.exit(0) during the run; resume from step 1 with: " in message
    assert e.value.exit_code == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == message and "traceback" not in summary


@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["terminal", "background"])
def test_a_keyboard_interrupt_raised_by_a_reward_is_named_where_not_read_as_sigint(
    tmp_path, cache_dir, sigint
):
    """Issue 73 seventh hunt: a reward raising KeyboardInterrupt (no signal sent) said `interrupted by
    SIGINT`, rc 130, summary interrupted; the run's SIGINT handler raises Interrupted, so a
    KeyboardInterrupt that reaches the run was raised by code. On the command line, where the run's
    process installs its handlers (a test worker's thread cannot); started from a terminal, and in the
    background (`cmd &`, nohup: SIGINT ignored, no handler of the run's), which still said SIGINT."""
    from tests.conftest import SMALL

    (tmp_path / "stopping_reward.py").write_text(STOPPING_REWARD.format(raised="KeyboardInterrupt"))
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "reward=function"]
    result = subprocess.run(
        [sys.executable, "-m", "align_lab", *args, "reward.path=stopping_reward:score"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(
        f"align_lab: error: {tmp_path / 'stopping_reward.py'}:10 raised KeyboardInterrupt (no SIGINT came) "
        "during the run; resume from step 1 with: "
    ), line
    assert "Traceback" not in result.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


@pytest.mark.parametrize(
    "algo", [["algo=dpo"], ["algo=kto", "algo.desirable_threshold=0.0"]], ids=["dpo", "kto"]
)
def test_a_pairwise_runs_progress_line_shows_the_latest_evaluations_kl(algo, tmp_path, cache_dir):
    """DPO reads no KL while it trains: its line showed loss and margin only, however far the policy
    went (issue 73: a KL on the line that means the policy's distance). Now `-` before the first
    evaluation, then that evaluation's KL marked with its step. Unpaired KTO has no margin: it showed
    `margin 0.000` at every step, a default shown as a measurement (hunt of 2026-12-04, c7)."""
    from tests.conftest import ROOT, SMALL, forked

    args = [*algo, *SMALL, f"cache_dir={cache_dir}", "train.steps=4", "train.eval_every=2"]
    result = forked()([*args, f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if "preference optimisation: " in line]
    step = {line.split("preference optimisation: ")[1].split("/")[0]: line for line in lines}
    assert all((", margin " in line) == (algo == ["algo=dpo"]) for line in step.values()), step
    assert step["1"].endswith("kl -"), step["1"]
    kl = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[1])  # step 2's row
    assert step["3"].endswith(f"kl {kl['eval/kl']:.3f} (eval@2)"), (step["3"], kl)


def constant_reward(prompts, responses):
    """Every response the same score: a group-normalised advantage of 0 everywhere."""
    return [1.0] * len(responses)


@pytest.mark.fast
def test_a_run_whose_rewards_gave_no_signal_ends_with_a_line_saying_the_policy_never_moved(
    tmp_path, cache_dir, caplog
):
    """Issue 73 fifth hunt: a reward function scoring every response the same (or 1e-45) trained nothing
    under GRPO (KL 0.000, gold = SFT's), rc 0 and no line."""
    import logging

    with caplog.at_level(logging.WARNING, logger="align_lab"):
        summary = run_in_process(
            ["algo=grpo", "reward=function", f"reward.path={__name__}:constant_reward"],
            tmp_path / "run",
            cache_dir,
        )
    assert summary["status"] == "completed" and summary["eval/kl"] == 0.0
    assert any(m.startswith("warning: the policy ended where SFT started") for m in caplog.messages)


def huge_reward(prompts, responses):
    """Scores finite in float32 whose group statistics are not: +-3e38 (1e20 x 0/1/2: their squares)."""
    return [HUGE["scale"] * (len(r) % 3 - HUGE["shift"]) for r in responses]


HUGE = {"scale": 3e38, "shift": 1}


@pytest.mark.fast
@pytest.mark.parametrize(
    "algo,scale,shift,shown",
    [("grpo", 3e38, 1, "3e+38"), ("grpo", 1e20, 0, "2e+20"), ("rloo", 1e20, 0, "2e+20")],
)
def test_scores_whose_advantages_overflow_name_the_reward_not_the_learning_rate(
    tmp_path, cache_dir, algo, scale, shift, shown
):
    """Issue 73 fifth and sixth hunts: scores of +-3e38 (finite in float32) overflowed in GRPO's
    normalisation and read `policy optimisation diverged ... lower algo.lr`; 1e20 gave GRPO advantages of
    0 (nothing trained) and RLOO `diverged ... lower algo.lr`."""
    HUGE.update(scale=scale, shift=shift)
    with pytest.raises(RunStopped) as e:
        run_in_process(
            [f"algo={algo}", "reward=function", f"reward.path={__name__}:huge_reward"],
            tmp_path / "run",
            cache_dir,
        )
    # thirty-seventh hunt, case 17: was `reward: the step's scores reach ...; scale the reward down`, a key
    # never typed and no resume command, where a score past float32's range had both
    said = str(e.value)
    head = f"error: reward.path={__name__}:huge_reward: score "
    assert said.startswith(head) and f" is {shown}, past 1e+18, where a group's advantages overflow " in said
    assert "(their squares pass its range): scale it down; fix it, then resume from step 0 with: " in said


@pytest.mark.fast
def test_a_combined_weight_within_its_bound_whose_scores_pass_it_names_the_weight(tmp_path, cache_dir):
    """Thirty-second hunt, case 66: `reward.components.rm.weight=1e18` passes admission's |w| <= 1e18, then
    its weighted scores (1e18 x ~2) stopped the run with `reward: the step's scores reach 1.97e+18 ...;
    scale the reward down`, naming no key; a weight is a config key, which a resume keeps (a new run)."""
    with pytest.raises(RunStopped) as e:
        run_in_process(
            ["reward=combined", "~reward.components.rm", "reward.components.brevity.weight=1e18"],
            tmp_path / "run",
            cache_dir,
        )
    said = str(e.value)
    assert said.startswith("error: reward.components: response "), said
    assert "'s weighted score brevity.weight=1e+18 x " in said and ", past 1e+18, where a group's " in said
    assert said.endswith(
        "; scale the weights down, and run it again (a new run: a resume keeps the run's config)"
    )


@pytest.mark.fast
def test_a_resume_whose_metrics_file_was_deleted_says_its_first_rows_are_lost(
    stopped_at_step_2, tmp_path, cache_dir, caplog
):
    """Issue 73 fifth hunt: metrics.jsonl deleted between a stop and the resume: the run resumed and
    completed, its metrics starting at step 3, and no line said the first steps' rows were gone."""
    import logging
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(stopped_at_step_2, run_dir)
    (run_dir / "metrics.jsonl").unlink()
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        admit_resume(run_dir, cache_dir, "train.steps=4")
    assert (
        f"align_lab: warning: {run_dir / 'metrics.jsonl'} is gone: the rows of steps 1-2 are lost; the run "
        "resumes from step 2 and logs from step 3, so its curves start there"
    ) in caplog.messages


@pytest.mark.fast
def test_a_resume_whose_summary_was_deleted_says_its_earlier_wall_time_is_lost(
    stopped_at_step_2, tmp_path, cache_dir, caplog
):
    """Issue 73 seventh hunt: summary.json deleted between a stop and the resume (align_lab's hint for a
    torn one is to move it away): resumed with rc 0 and no line, time/total_s counting the last segment
    only."""
    import logging
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(stopped_at_step_2, run_dir)
    (run_dir / "summary.json").unlink()
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        admit_resume(run_dir, cache_dir, "train.steps=4")
    assert (
        f"align_lab: warning: {run_dir / 'summary.json'} is gone: the wall time of the run's earlier "
        "segments is lost, so its time/total_s counts from this resume"
    ) in caplog.messages


@pytest.mark.fast
@pytest.mark.parametrize("kept_lines, held", [(0, "holds no rows"), (1, "ends at step 1")])
def test_a_resume_whose_metrics_file_was_emptied_or_cut_says_which_rows_are_lost(
    stopped_at_step_2, tmp_path, cache_dir, caplog, kept_lines, held
):
    """Issue 73 sixth hunt: metrics.jsonl emptied (`: > metrics.jsonl`) between a stop and the resume: the
    run resumed with rc 0 and no line, its metrics starting at step 3 (a deleted file was said)."""
    import logging
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(stopped_at_step_2, run_dir)
    metrics = run_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("".join(lines[:kept_lines]))
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        admit_resume(run_dir, cache_dir, "train.steps=4")
    first_lost = kept_lines + 1
    assert (
        f"align_lab: warning: {metrics} {held}: the rows of steps {first_lost}-2 are lost; the run resumes "
        "from step 2 and logs from step 3, so its curves miss those steps"
    ) in caplog.messages


SLOW_REWARD = """
import time
CALLS = [0]
def score(prompts, responses):
    CALLS[0] += 1
    if CALLS[0] == 2:
        time.sleep(4)
    return [float(len(r.split())) for r in responses]
"""


def test_a_reward_function_past_reward_timeout_s_stops_in_one_line_and_a_longer_bound_resumes_it(
    tmp_path, cache_dir, forked_cli
):
    """Twenty-sixth hunt, case 12: a reward that never returned left the run with no line for good (until
    two SIGTERMs): reward=function had no bound. Past reward.timeout_s the run stops in one line naming
    where the call was stopped; its command with a longer bound resumes it (no input changed)."""
    from tests.conftest import SMALL

    (tmp_path / "slow.py").write_text(SLOW_REWARD)
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "reward=function"]
    result = forked_cli([*args, "reward.path=slow:score", "reward.timeout_s=1"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(
        "align_lab: error: reward.path=slow:score: no answer in reward.timeout_s=1 s, stopped at "
        f"{tmp_path / 'slow.py'}:7 (raise reward.timeout_s if it needs longer); fix it, then resume from "
    ), line
    # "fix it": its command allows the fixed module, as a raise's does (thirty-second hunt, case 76: the
    # plain command refused the fix it asked for); a longer bound resumes it too
    assert line.endswith(" resume_changed_inputs=true") and "Traceback" not in result.stderr, line
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
    command = line.split(" with: ", 1)[1]
    (tmp_path / "slow.py").write_text(SLOW_REWARD.replace("time.sleep(4)", "pass"))  # fixed
    resumed = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


SCALED_REWARD = """SCALE = {scale}


def score(prompts, responses):
    return [SCALE * len(r) / 10 for r in responses]
"""


def test_the_sweeps_command_typed_again_with_its_reward_edited_starts_no_run_on_the_edit(
    tmp_path, cache_dir, forked_cli
):
    """Twenty-seventh hunt, case 16: a sweep's command typed again (the line an interrupted or failed sweep
    prints) with its reward module edited: the runs that had not started trained on the edit, the
    completed one on the module as it was, rc 0, no line. Now the run that would start afresh is refused
    in one line naming the module, before anything is built; resume_changed_inputs=true runs it, warned."""
    from tests.conftest import SMALL

    module = tmp_path / "scaled.py"
    module.write_text(SCALED_REWARD.format(scale=1.0))
    sweep = tmp_path / "sweep"
    small = [a for a in SMALL if not a.startswith("reward.") and a != "train.steps=3"]
    args = [*small, "train.steps=1", f"cache_dir={cache_dir}", "reward=function", "reward.path=scaled:score"]
    first = forked_cli(["-m", "seed=0", *args, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    module.write_text(SCALED_REWARD.format(scale=-100.0))
    again = forked_cli(["-m", "seed=0,1", *args, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert again.returncode != 0 and not (sweep / "1_reinforce_pp_seed1" / "metrics.jsonl").exists()
    assert (
        f"reward.path: {module} (sha256 " in again.stderr
        and "when 0_reinforce_pp_seed0 read it" in again.stderr
    )
    assert "set resume_changed_inputs=true to run it on the file as it is now" in again.stderr, again.stderr
    allowed = forked_cli(
        ["-m", "seed=0,1", *args, "resume_changed_inputs=true", f"hydra.sweep.dir={sweep}"], cwd=tmp_path
    )
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    # said as the sweep admits its runs, before launching them (Hydra's log, on stdout)
    assert "this run trains on the file as it is now (resume_changed_inputs=true)" in allowed.stdout


STUCK_REWARD = """
import os
import re
CALLS = [0]
def score(prompts, responses):
    CALLS[0] += 1
    if CALLS[0] == 2 and not os.environ.get("UNSTUCK"):
        re.match(r"(a+)+$", "a" * 60 + "b")
    return [float(len(r.split())) for r in responses]
"""


def test_a_reward_stuck_in_c_past_its_bound_is_one_line_and_its_command_resumes_it(tmp_path, cache_dir):
    """Twenty-eighth hunt, case 3: a reward stuck in one C call holding Python's lock (a regex backtracking
    for ever) under reward.timeout_s ended with faulthandler's 25-line dump, no key, no resume command,
    summary.json `running`. Now one line naming the key, the bound, the user's line and the resume
    command, summary `failed`, rc 1; the command resumes the run once the call returns. Its own process
    (run_cli): the line comes from a process beside the run's, which ends with it."""
    from tests.conftest import SMALL, run_cli

    (tmp_path / "stuck.py").write_text(STUCK_REWARD)
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}", "reward=function"]
    result = run_cli([*args, "reward.path=stuck:score", "reward.timeout_s=1"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Timeout (" not in result.stderr and "Thread 0x" not in result.stderr, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert line.startswith(
        "align_lab: error: reward.path=stuck:score: no answer in reward.timeout_s=1 s, stuck at "
        f"{tmp_path / 'stuck.py'}:8 in a call that holds Python's lock (no signal reaches it) or that caught "
        "the timeout raised in it (except BaseException, or a bare except): the process "
        "was ended 1 s later (raise reward.timeout_s if it needs longer); fix it, then resume from step 1 "
        "with: "
    ), line
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == line.removeprefix("align_lab: error: ")
    command = line.split(" with: ", 1)[1]
    resumed = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "UNSTUCK": "1"},
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


@pytest.mark.fast
def test_a_reward_module_that_exits_as_it_is_imported_is_one_line_not_a_silent_exit(
    tmp_path, cache_dir, forked_cli
):
    """Twenty-eighth hunt, case 24: `sys.exit(3)` at the import of the reward module (a guard) ended the
    command with rc 3 and not one character of output, no run folder. Now one line naming the key, the
    module and its line, before any compute, rc 2."""
    from tests.conftest import SMALL

    (tmp_path / "guarded.py").write_text("import sys\nsys.exit(3)\n")
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={tmp_path / 'run'}", "reward=function"]
    result = forked_cli([*args, "reward.path=guarded:f"], cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f"align_lab: error: reward.path=guarded:f: importing guarded called sys.exit(3) at "
        f"{tmp_path / 'guarded.py'}:2; a module the run imports must not end the process as it is imported"
    ], result.stderr[-3000:]


def test_a_reward_stuck_in_c_on_rank_1_is_the_runs_one_line_naming_the_bound(tmp_path, cache_dir):
    """Twenty-eighth hunt, case 30: under hardware=cpu_ddp a reward stuck in C on rank 1 printed rank 1's
    faulthandler dump, then rank 0's "rank 1 of 2 exited with code 1 ... (os._exit in code of the run's, or
    a crash in native code)": the wrong cause. Now the run's one line names the rank, the reward, the
    bound and the user's line, and resumes with the command it gives."""
    from tests.conftest import SMALL, run_cli

    (tmp_path / "stuck.py").write_text(
        STUCK_REWARD.replace("CALLS[0] == 2", "CALLS[0] == 2 and os.environ['RANK'] == '1'")
    )
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [
        *small,
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
        "reward=function",
        "hardware=cpu_ddp",
    ]
    result = run_cli([*args, "reward.path=stuck:score", "reward.timeout_s=1"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Timeout (" not in result.stderr and "Thread 0x" not in result.stderr, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if "error" in x]
    assert (
        line.startswith(
            "align_lab: error: rank 1 of 2: reward.path=stuck:score: no answer in reward.timeout_s=1 s, "
            f"stuck at {tmp_path / 'stuck.py'}:8 in a call that holds Python's lock"
        )
        and "; fix it, then resume from step 1 with: " in line
    ), line
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


SETTINGS_REWARD = """
import json
from pathlib import Path
def score(prompts, responses):
    scale = json.loads((Path(__file__).parent / "settings.json").read_text())["scale"]
    return [scale * len(r) / 10 for r in responses]
"""


def test_a_sweeps_run_started_after_a_file_its_rewards_code_opens_was_edited_is_refused(
    tmp_path, cache_dir, forked_cli
):
    """Twenty-eighth hunt, cases 28-29: a reward that reads a settings file of the user's at each call, the
    file edited between a sweep's runs: #1 trained on the other reward, rc 0, no line, and compare pooled
    both (summary.json recorded the module, not the file it opened). The file is now in each run's
    summary.json: the sweep's command typed again refuses the run that would start on the edit, and
    compare notes the two versions."""
    from tests.conftest import SMALL

    (tmp_path / "settings_reward.py").write_text(SETTINGS_REWARD)
    settings = tmp_path / "settings.json"
    settings.write_text('{"scale": 1.0}')
    sweep = tmp_path / "sweep"
    small = [a for a in SMALL if not a.startswith("reward.") and a != "train.steps=3"]
    args = [*small, "train.steps=1", f"cache_dir={cache_dir}", "reward=function"]
    args += ["reward.path=settings_reward:score", f"hydra.sweep.dir={sweep}"]
    assert forked_cli(["-m", "seed=0", *args], cwd=tmp_path).returncode == 0
    recorded = json.loads((sweep / "0_reinforce_pp_seed0" / "summary.json").read_text())["inputs"]
    assert recorded[f"file {settings}"]["file"] == str(settings), recorded
    settings.write_text('{"scale": -1.0}')
    again = forked_cli(["-m", "seed=0,1", *args], cwd=tmp_path)
    assert again.returncode != 0 and not (sweep / "1_reinforce_pp_seed1" / "metrics.jsonl").exists()
    assert f"a file your code opened: {settings} (sha256 " in again.stderr, again.stderr[-3000:]
    allowed = forked_cli(["-m", "seed=0,1", *args, "resume_changed_inputs=true"], cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    compare = forked_cli(
        [str(sweep), "--out", str(tmp_path / "cmp")], cwd=tmp_path, module="align_lab.compare"
    )
    assert (
        f"the runs read a file your code opened ({settings}) in 2 versions" in compare.stdout + compare.stderr
    )


def test_a_completed_runs_command_typed_again_after_its_reward_was_edited_says_so(
    tmp_path, cache_dir, forked_cli
):
    """Twenty-eighth hunt, case 34: a completed run's command typed again with its reward module (or a
    file it opens, or the data) edited since: "already completed; nothing to do", rc 0, no word that the
    results are of the old version. Now a warning line names the file and says so."""
    from tests.conftest import SMALL

    module = tmp_path / "scaled.py"
    module.write_text(SCALED_REWARD.format(scale=1.0))
    small = [a for a in SMALL if not a.startswith("reward.") and a != "train.steps=3"]
    args = [*small, "train.steps=1", f"cache_dir={cache_dir}", "reward=function", "reward.path=scaled:score"]
    args.append(f"hydra.run.dir={tmp_path / 'run'}")
    assert forked_cli(args, cwd=tmp_path).returncode == 0
    again = forked_cli(args, cwd=tmp_path)
    assert again.returncode == 0 and "changed since this run (" not in again.stderr
    module.write_text(SCALED_REWARD.format(scale=2.0))
    again = forked_cli(args, cwd=tmp_path)
    assert again.returncode == 0 and "this run was already completed" in again.stderr
    [line] = [x for x in again.stderr.splitlines() if "changed since this run (run) completed" in x]
    assert line.startswith(f"align_lab: warning: reward.path: {module} (sha256 ") and line.endswith(
        "its results are of the version it read; choose another hydra.run.dir to run on this one"
    ), line


@pytest.mark.fast
@pytest.mark.parametrize(  # tqdm's: 1.6 s of CPU, CI's tier (docs/testing.md)
    "name", ["signal", "random", "yaml", pytest.param("tqdm", marks=pytest.mark.slow)]
)
def test_a_reward_module_named_as_one_of_pythons_own_is_one_line_naming_it(tmp_path, name):
    """Twenty-eighth hunt, case 37: a reward module named signal or random in the folder the command runs
    from: a 13- or 24-line traceback through align_lab's and Hydra's imports (`module 'signal' has no
    attribute 'SIGUSR2'`), the file unnamed. Python finds it first (python -m puts that folder first on
    sys.path): one line naming it, rc 2. Its own process (run_cli): the forked commands' server has
    imported Python's own already."""
    from tests.conftest import run_cli

    (tmp_path / f"{name}.py").write_text(
        "def score(prompts, responses):\n    return [1.0] * len(responses)\n"
    )
    args = ["reward=function", f"reward.path={name}:score", "tracker=none"]
    result = run_cli(args, cwd=tmp_path)
    whose = "Python's own module" if name in sys.stdlib_module_names else "the installed module"
    lines = result.stderr.splitlines()  # an installed one: thirtieth hunt, case 3
    imported = (  # tqdm, which the progress line imports later, is refused before the build (53rd's session)
        f"align_lab: error: {tmp_path / f'{name}.py'}: named as {whose} {name}, which the "
        "command imports: Python found yours first (python -m puts the folder it runs in first on "
        "sys.path); rename it (and a key that names it, where one does)"
    )
    later = (
        f"align_lab: error: {tmp_path / f'{name}.py'}: named as the installed module {name} (",
        "), which align_lab or a library may import later: Python would find yours first (python -m puts "
        "the folder it runs in first on sys.path); rename it (and a key that names it, where one does)",
    )
    said = lines[-1] == imported if name != "tqdm" else lines[-1].startswith(later[0])
    assert result.returncode == 2 and said and (name != "tqdm" or lines[-1].endswith(later[1])), lines[-3:]
    # inside a run too (tqdm: the progress line's import), with no Hydra line before it (thirty-sixth hunt,
    # case 37: "Error executing job with overrides" came first)
    assert not [x for x in lines[:-1] if "Error executing job" in x], result.stderr[-3000:]
    # and its summary.json says that line, not the AttributeError it caused (thirty-seventh hunt's nits)
    for summary in tmp_path.glob("outputs/*/*/summary.json"):
        assert json.loads(summary.read_text())["error"] == lines[-1].removeprefix("align_lab: error: ")


def test_a_reward_module_stuck_in_c_as_it_is_imported_names_the_reward_keys(tmp_path):
    """Twenty-ninth hunt, case 10: a reward module stuck in C at import under reward.timeout_s: its line
    named `path=` and `timeout_s=5`, keys that do not exist (`timeout_s=30` was refused as unknown). The
    keys of the component being built are named whole."""
    from tests.conftest import run_cli

    (tmp_path / "stuck_import.py").write_text("import re\nre.match(r'(a+)+$', 'a' * 60 + 'b')\n")
    args = ["reward=function", "reward.path=stuck_import:f", "reward.timeout_s=1", "tracker=none"]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.splitlines()[-1] == (
        "align_lab: error: reward.path=stuck_import:f: importing stuck_import: no answer in "
        f"reward.timeout_s=1 s, stuck at {tmp_path / 'stuck_import.py'}:2 in a call that holds Python's lock "
        "(no signal reaches it) or that caught the timeout raised in it (except BaseException, or a bare "
        "except): the process was "
        "ended 1 s later (raise reward.timeout_s if it needs longer)"
    ), result.stderr[-3000:]


SETTINGS_AT_IMPORT = """
import json
from pathlib import Path
SCALE = json.loads((Path(__file__).parent / "settings.json").read_text())["scale"]
def score(prompts, responses):
    return [SCALE * len(r) / 10 for r in responses]
"""


def test_a_file_a_reward_module_opens_as_a_jobs_process_imports_it_is_recorded(tmp_path, cache_dir):
    """Twenty-ninth hunt, case 13: a verifier that read its settings file as it was imported, in a Slurm
    sweep: no run recorded the file (a job's process imports the user's modules as it unpickles its job,
    before the watch of what they open began), so #1 started on the edited file with no line. The job's
    launcher, unpickled first, starts the watch."""
    from tests.conftest import SMALL, run_cli

    (tmp_path / "settings_at_import.py").write_text(SETTINGS_AT_IMPORT)
    (tmp_path / "settings.json").write_text('{"scale": 1.0}')
    sweep = tmp_path / "sweep"
    small = [a for a in SMALL if not a.startswith("reward.") and a != "train.steps=3"]
    args = ["-m", "hardware=submitit_local", "seed=0", *small, "train.steps=1", f"cache_dir={cache_dir}"]
    args += ["reward=function", "reward.path=settings_at_import:score", f"hydra.sweep.dir={sweep}"]
    result = run_cli(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    inputs = json.loads(next(sweep.glob("0_*/summary.json")).read_text())["inputs"]
    assert f"file {tmp_path / 'settings.json'}" in inputs, inputs


STUCK_ENV = """
import re
from dataclasses import dataclass
from align_lab.envs.base import LastTurn, Step
from align_lab.tasks.guess_number import GuessNumber, feedback, secret
class StuckEpisode(LastTurn):
    def __init__(self, target):
        super().__init__()
        self.target = target
    def step(self, turn):
        self.turns.append(turn)
        if STUCK_IN == "step":
            re.match(r"(a+)+$", "a" * 60 + "b")
        return Step(reward=1.0, done=True)
    def close(self):
        if STUCK_IN == "close":
            re.match(r"(a+)+$", "a" * 60 + "b")
@dataclass
class StuckGame:
    multi_turn = True
    tasks = (GuessNumber,)
    max_turns: int = 2
    step_timeout_s: float = 1.0
    def start(self, prompt):
        if STUCK_IN == "start":
            re.match(r"(a+)+$", "a" * 60 + "b")
        return StuckEpisode(secret(prompt))
"""


@pytest.mark.parametrize("stuck_in, turn, line", [("step", 1, 14), ("start", 0, 27), ("close", 1, 18)])
def test_an_environments_step_stuck_in_c_is_one_line_naming_it(tmp_path, cache_dir, stuck_in, turn, line):
    """Twenty-ninth hunt, case 17: an environment's step stuck in C holding the GIL (a regex): its thread's
    timeout could never fire, no line for 200 s, summary.json `running`. Now the line a reward's stuck call
    gets, naming the environment, the turn, env.step_timeout_s and the user's line; summary `failed`."""
    from tests.conftest import SMALL, run_cli

    (tmp_path / "stuck_env.py").write_text(
        f"STUCK_IN = {stuck_in!r}\n" + STUCK_ENV
    )  # start, close: 30th, 12-13
    run_dir = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith(("reward.", "task.n_pairs"))]
    args = [*small, "algo=grpo", "task=guess_number", "reward=verifier", "env._target_=stuck_env.StuckGame"]
    result = run_cli([*args, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    [said] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    assert said.startswith(
        f"align_lab: error: env=StuckGame: turn {turn}: no answer in env.step_timeout_s=1 s, stuck at "
        f"{tmp_path / 'stuck_env.py'}:{line} in a call that holds Python's lock"
    ), said
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


def run_mid_run_edit(module: str, source: str, tmp_path, cache_dir, forked_cli):
    """A small run whose reward is `module` (its `source` written beside the run's folder), completed."""
    from tests.conftest import SMALL

    (tmp_path / f"{module}.py").write_text(source)
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={tmp_path / 'run'}", "reward=function"]
    result = forked_cli([*args, f"reward.path={module}:score"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


EDITED_IN_C = """
import subprocess
from pathlib import Path
import pandas as pd
CALLS = [0]
TABLE = Path(__file__).parent / "tables" / "w.parquet"
def score(prompts, responses):
    CALLS[0] += 1
    if CALLS[0] == 2:  # as another program rewrites it while the run goes on
        subprocess.run(["cp", "edited.parquet", str(TABLE)], cwd=Path(__file__).parent, check=True)
    scale = float(pd.read_parquet(TABLE)["v"][0])  # read in C++: no open the audit hook sees
    return [scale * len(r) / 10 for r in responses]
"""


def test_a_table_the_reward_reads_in_c_rewritten_while_the_run_goes_on_is_said(
    tmp_path, cache_dir, forked_cli
):
    """Thirty-seventh hunt, case 29: a parquet pyarrow reads (in C++), rewritten as a sweep's next run
    started: that run trained on the other table, no line, and compare pooled the two. A file beside the
    user's code that changes while a run goes on is said at the next checkpoint, from the step after the
    last one."""
    import pandas as pd

    (tmp_path / "tables").mkdir()
    pd.DataFrame({"v": [1.0]}).to_parquet(tmp_path / "tables" / "w.parquet")
    pd.DataFrame({"v": [-1.0]}).to_parquet(tmp_path / "edited.parquet")
    result = run_mid_run_edit("edited_in_c", EDITED_IN_C, tmp_path, cache_dir, forked_cli)
    [line] = [x for x in result.stderr.splitlines() if "files beside your code changed while" in x]
    assert line.startswith(
        "align_lab: warning: files beside your code changed while the run went on: "
        f"{tmp_path / 'tables' / 'w.parquet'} (changed); align_lab cannot tell whether your code reads them"
    ), line
    assert line.endswith("its steps from 2 on may train on other inputs (found at step 2's end)"), line


EDITED_MID_RUN = """
import json
import subprocess
from pathlib import Path
CALLS = [0]
HERE = Path(__file__).parent
def score(prompts, responses):
    CALLS[0] += 1
    if CALLS[0] == 2:  # as another program edits it while the run goes on
        subprocess.run(["cp", "edited.json", "settings.json"], cwd=HERE, check=True)
    scale = json.loads((HERE / "settings.json").read_text())["scale"]
    return [scale * len(r) / 10 for r in responses]
"""


def test_a_file_the_reward_opens_edited_while_the_run_goes_on_is_said(tmp_path, cache_dir, forked_cli):
    """Thirtieth hunt, case 7: a settings file the reward reads at each call, edited mid-run (no kill): the
    run trained on two rewards, rc 0, no line. Now a warning at the next checkpoint names the file."""
    (tmp_path / "settings.json").write_text('{"scale": 1.0}')
    (tmp_path / "edited.json").write_text('{"scale": -1.0}')
    result = run_mid_run_edit("edited_mid_run", EDITED_MID_RUN, tmp_path, cache_dir, forked_cli)
    [line] = [x for x in result.stderr.splitlines() if "changed while the run went on" in x]
    assert line.startswith(
        f"align_lab: warning: a file your code opened: {tmp_path / 'settings.json'} (sha256 "
    )
    # from the step after the last checkpoint, where it was found unchanged (thirty-fourth hunt, case 56:
    # "from here (step 6)", where step 5 had trained on it)
    assert line.endswith("its steps from 2 on may train on the new version (found at step 2's end)"), line
    # the run's record is the version its code read first (thirtieth hunt, case 11: the one read last, so a
    # sweep's next run on the edit and compare saw no change)
    recorded = json.loads((tmp_path / "run" / "summary.json").read_text())["inputs"]
    first = line.split("(sha256 ", 1)[1][:8]
    assert recorded[f"file {tmp_path / 'settings.json'}"]["sha256"].startswith(first), recorded


def test_a_failed_runs_app_log_ends_with_its_line(tmp_path, cache_dir, forked_cli):
    """Thirty-fourth hunt, case 52: a run whose reward raised said its line on the terminal only; its
    app.log ended at the last progress line, with no word of why it stopped or how to resume."""
    from tests.conftest import SMALL

    (tmp_path / "raising.py").write_text(
        "CALLS = [0]\n\n\ndef f(prompts, responses):\n    CALLS[0] += 1\n"
        "    if CALLS[0] == 2:\n        raise ValueError('boom')\n    return [1.0] * len(responses)\n"
    )
    small = [a for a in SMALL if not a.startswith("reward.")]
    args = [*small, f"cache_dir={cache_dir}", f"hydra.run.dir={tmp_path / 'run'}", "reward=function"]
    result = forked_cli([*args, "reward.path=raising:f"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    [line] = [x for x in result.stderr.splitlines() if x.startswith("align_lab: error: ")]
    last = (tmp_path / "run" / "app.log").read_text().splitlines()[-1]
    assert last.endswith(f"[ERROR] {line}"), last
