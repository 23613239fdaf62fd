"""What the online loop's progress line shows of a step (train/metrics.py step_postfix)."""

from __future__ import annotations

from align_lab.train.metrics import seconds, step_postfix


def test_a_phase_shows_seconds_or_below_a_second_milliseconds():
    assert [seconds(s) for s in (12.34, 1.0, 0.999, 0.0456, 0.0)] == ["12.3s", "1.0s", "999ms", "46ms", "0ms"]


def test_the_line_shows_reward_kl_and_the_phases_of_the_step():
    times = {"time/rollout_s": 3.21, "time/train_s": 0.012}
    assert step_postfix({"train/reward": 0.5, "train/kl": 0.01234}, times) == {
        "reward": "0.500",
        "kl": "0.012",
        "rollout": "3.2s",
        "update": "12ms",
    }


def test_without_a_kl_term_the_line_shows_the_last_evaluations_kl_never_zero():
    """Issue 73: sdpo (kl_coef 0) showed `kl 0.000` at every step while its policy was 21 nats from the
    reference: an algorithm without a KL term logs no train/kl, so the line shows the latest eval/kl."""
    assert step_postfix({"train/reward": 1.0}, {})["kl"] == "-"  # before the first evaluation
    assert step_postfix({"train/reward": 1.0}, {}, (50, 21.25))["kl"] == "21.250 (eval@50)"
    assert step_postfix({"train/reward": 1.0, "train/kl": 0.5}, {}, (50, 21.25))["kl"] == "0.500"
