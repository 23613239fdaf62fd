"""train.stop_at (align_lab/train/stop_at.py): its keys' one-line refusals, at the config and at admission,
the record of a stop, and the resume rule for a checkpoint that holds one."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from align_lab.config import ConfigError
from align_lab.train.stop_at import StopAt, check_schedule, describe, stop_record
from tests.conftest import compose

PASS1 = StopAt("eval/pass@1", 0.5)


def test_off_by_default_and_on_with_a_metric():
    assert not StopAt().on and str(StopAt()) == "off"
    assert PASS1.on and str(PASS1) == "eval/pass@1 >= 0.5"


@pytest.mark.parametrize(
    "metric,value,message",
    [
        (None, 0.5, "stop_at.value=0.5: must be null while stop_at.metric is null (off)"),
        ("train/loss", 0.5, "stop_at.metric=train/loss: must be an eval/ key, logged at each evaluation"),
        ("eval/pass@1", None, "stop_at.value=null: must be a number: the threshold of eval/pass@1"),
        # pass@k is a rate: [0, 1]; eval/kl a divergence: [0, inf] (results/ranges.py)
        ("eval/pass@1", 1.5, "stop_at.value=1.5: must be in [0, 1], eval/pass@1's range"),
        ("eval/kl", -0.1, "stop_at.value=-0.1: must be in [0, inf], eval/kl's range"),
    ],
)
def test_a_bad_threshold_is_one_line(metric, value, message):
    with pytest.raises(ValueError) as e:
        StopAt(metric, value)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_reward_is_unbounded_and_a_rate_may_sit_on_its_bounds():
    StopAt("eval/gold_reward", -5.0)
    StopAt("eval/pass@1", 0.0)
    StopAt("eval/pass@1", 1.0)


@pytest.mark.parametrize("eval_every,steps", [(0, 10), (10, 10), (12, 10)])
def test_a_threshold_with_no_evaluation_before_the_last_step_is_refused(eval_every, steps):
    with pytest.raises(ValueError) as e:
        check_schedule(PASS1, eval_every, steps)
    assert str(e.value) == (
        f"stop_at.metric=eval/pass@1: needs an evaluation before the last step, and eval_every={eval_every} "
        f"evaluates only at the end of steps={steps}; set it to 1..{steps - 1}"
    )


def test_a_schedule_with_an_evaluation_before_the_end_or_no_threshold_passes():
    check_schedule(PASS1, 5, 10)
    check_schedule(StopAt(), 0, 10)


def test_the_record_says_why_the_run_stopped():
    metrics = {"counters/generated_tokens": 300, "counters/reward_queries": 32, "train/loss": 0.1}
    record = stop_record(PASS1, {"eval/pass@1": 0.75}, 4, 10, metrics)
    assert record == {
        "reason": "stop_at",
        "metric": "eval/pass@1",
        "threshold": 0.5,
        "value": 0.75,
        "step": 4,
        "steps": 10,
        "generated_tokens": 300,
        "reward_queries": 32,
    }
    assert describe(record) == "stopped at step 4 of 10 (train.stop_at: eval/pass@1 = 0.75 >= 0.5)"


@pytest.mark.parametrize(
    "evaluation,done",
    [
        ({"eval/pass@1": 0.49}, 4),  # below
        ({"eval/pass@1": math.nan}, 4),  # NaN reaches nothing
        ({"eval/kl": 1.0}, 4),  # the metric absent from this evaluation
        ({"eval/pass@1": 0.9}, 10),  # the last step: the run ends there anyway, no early stop
    ],
)
def test_no_record_below_the_threshold_or_at_the_last_step(evaluation, done):
    assert stop_record(PASS1, evaluation, done, 10, {}) == {}
    assert stop_record(StopAt(), evaluation, done, 10, {}) == {}


def test_reaching_is_at_or_above():
    assert stop_record(PASS1, {"eval/pass@1": 0.5}, 4, 10, {})["value"] == 0.5


def spec(*overrides: str):
    from align_lab.run.admission import spec_from_config

    return spec_from_config(*compose(["cache_dir=/nonexistent", *overrides]))


STOP = ["train.steps=10", "train.eval_every=5", "train.eval_samples=4"]
ARITH = ["task=toy_arith", "reward=verifier", "algo=grpo"]


def test_the_command_line_keys_are_refused_in_one_line_naming_the_train_key():
    with pytest.raises(ConfigError) as e:
        spec(*STOP, "train.stop_at.metric=eval/pass@1", "train.stop_at.value=2")
    assert str(e.value) == "train.stop_at.value=2.0: must be in [0, 1], eval/pass@1's range"
    with pytest.raises(ConfigError) as e:
        spec(
            "train.steps=10",
            "train.eval_every=0",
            "train.stop_at.metric=eval/pass@1",
            "train.stop_at.value=0.5",
        )
    assert str(e.value) == (
        "train.stop_at.metric=eval/pass@1: needs an evaluation before the last step, and "
        "train.eval_every=0 evaluates only at the end of train.steps=10; set it to 1..9"
    )


@pytest.mark.parametrize(
    "world,metric",
    [
        ([], "eval/pass@1"),  # toy_prefs has no verifier: no pass@k
        (ARITH, "eval/pass@8"),  # train.eval_samples=4: pass@1, @2, @4 (rl.pass_ks)
        (ARITH, "eval/gold_reward_sft"),  # the reference's: training does not move it
        (ARITH, "eval/win_rate_vs_reference"),  # toy_arith has no reference responses
        (ARITH, "eval/gold_rewrd"),  # a typo
    ],
)
def test_a_metric_the_run_does_not_log_at_evaluation_is_refused_at_admission(world, metric):
    from align_lab.run.cross_checks import check_run

    s = spec(*world, *STOP, f"train.stop_at.metric={metric}", "train.stop_at.value=0.5")
    with pytest.raises(ConfigError) as e:
        check_run(s, here=False)
    message = str(e.value)
    assert message.startswith(
        f"train.stop_at.metric={metric}: this run does not log it at evaluation; it logs "
    )
    assert "eval/kl" in message and "\n" not in message


@pytest.mark.parametrize("metric", ["eval/pass@1", "eval/pass@4", "eval/gold_reward", "eval/win_rate_vs_sft"])
def test_a_metric_every_evaluation_logs_is_admitted(metric):
    from align_lab.run.cross_checks import check_run

    check_run(spec(*ARITH, *STOP, f"train.stop_at.metric={metric}", "train.stop_at.value=0.5"), here=False)


def test_a_checkpoint_that_holds_a_stop_resumes_only_with_its_threshold():
    from align_lab.run.folder_checks import check_stopped

    ckpt = Path("run/checkpoints")
    record = stop_record(PASS1, {"eval/pass@1": 0.75}, 4, 10, {})
    check_stopped(record, PASS1, ckpt)  # the same threshold: the resume finishes it
    check_stopped({}, StopAt("eval/pass@1", 0.9), ckpt)  # no stop yet: any threshold
    with pytest.raises(ConfigError) as e:
        check_stopped(record, StopAt("eval/pass@1", 0.9), ckpt)
    assert str(e.value) == (
        "train.stop_at=eval/pass@1 >= 0.9: the checkpoint in run/checkpoints stopped at step 4 of 10 "
        "(train.stop_at: eval/pass@1 = 0.75 >= 0.5): the run has ended; resume with "
        "train.stop_at.metric=eval/pass@1 train.stop_at.value=0.5 to finish it, or choose another "
        "hydra.run.dir"
    )


def test_a_threshold_never_reached_is_said_as_the_run_ends():
    """Third hunt of 2026-12-04, n31: how_it_works.md's stop_at command trained all 150 steps (0.231 at the
    end, under its threshold), and nothing said the threshold was never reached."""
    from align_lab.train.stop_at import StopAt, unreached

    stop = StopAt(metric="eval/pass@1", value=0.5)
    assert unreached(stop, {"eval/pass@1": 0.2312}, 150) == [
        "  train.stop_at: eval/pass@1 >= 0.5 not reached (the last evaluation: 0.231); it trained all 150 "
        "steps"
    ]
    assert unreached(stop, {"stopped": {"step": 4}}, 150) == []  # reached: the result line says where
    assert unreached(StopAt(), {}, 150) == []  # off
