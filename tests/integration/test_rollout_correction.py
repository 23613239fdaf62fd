"""Rollout corrections in a run (issue 26 item 4): the toy world, 3 steps, the loop's engine log-probs."""

from __future__ import annotations

import json
import re

import pytest

from align_lab.run.summary import RunStopped
from align_lab.tracking import read_metrics
from tests.conftest import run_in_process

WEIGHTS = ("train/is_weight_mean", "train/is_weight_max", "train/is_masked_frac")


def test_no_correction_logs_no_weights(tmp_path, cache_dir):
    run_in_process(["algo=grpo"], tmp_path, cache_dir)
    assert not any(k in row for row in read_metrics(tmp_path / "metrics.jsonl") for k in WEIGHTS)


@pytest.mark.parametrize(
    "overrides",
    [
        ["algo=grpo", "algo.rollout_correction=tis"],
        ["algo=ppo", "algo.rollout_correction=seq_mask", "algo.correction_low=0.5"],
    ],
    ids=["grpo-tis", "ppo-seq_mask"],
)
def test_float32_rollouts_weigh_every_token_one(overrides, tmp_path, cache_dir):
    # the engine samples the trainer's float32 weights: every ratio is 1 up to rounding (~1e-5)
    run_in_process(overrides, tmp_path, cache_dir)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert row["train/is_weight_mean"] == pytest.approx(1.0, abs=1e-4), row
        assert row["train/is_masked_frac"] == 0.0, row


@pytest.mark.parametrize(
    "overrides,masked",
    [
        (["algo=grpo", "algo.rollout_correction=tis"], False),
        # bf16 moves token ratios by ~0.3% (max ~1.008 measured): a band of +-0.2% rejects some
        (
            ["algo=reinforce_pp", "algo.rollout_correction=token_mask"]
            + ["algo.correction_low=0.998", "algo.correction_high=1.002", "algo.masked_in_denominator=false"],
            True,
        ),
    ],
    ids=["grpo-tis", "reinforce_pp-token_mask"],
)
def test_bfloat16_rollouts_move_the_weights_off_one(overrides, masked, tmp_path, cache_dir):
    run_in_process([*overrides, "rollout.dtype=bfloat16"], tmp_path, cache_dir)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert row["rollout/mismatch_kl"] > 1e-6, row
        if masked:  # kept tokens weigh 1; some are rejected
            assert row["train/is_weight_mean"] == 1.0 and 0.0 < row["train/is_masked_frac"] < 1.0, row
        else:  # weights off 1 (their mean stays ~1: E_rollout[pi / pi_rollout] = 1), never rejected
            assert 1.001 < row["train/is_weight_max"] <= 2.0 and row["train/is_masked_frac"] == 0.0, row


# ---- issue 36 item 5: a correction that trains nothing is not silent


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "algo.correction_high=0.5",
            "algo.correction.high=0.5: must be > 1 or null with algo.correction.mode=token_mask",
        ),
        (
            "algo.correction_low=2.0",
            "algo.correction.low=2.0: must be < 1 or null with algo.correction.mode=token_mask",
        ),
        (
            "algo.reject=[token_k3] algo.reject_high=[-0.1]",
            "algo.correction.reject_high=[-0.1]: must be > 0 or null each",
        ),
        (
            "algo.correction.reject=[token_k4]",
            "algo.correction.reject=['token_k4']: must be <scope>_<statistic>",
        ),
        ("algo.correction.max_rejected_steps=-1", "algo.correction.max_rejected_steps=-1: must be >= 0"),
    ],
)
def test_bounds_that_reject_an_on_policy_token_are_refused_before_compute(
    override, message, tmp_path, cache_dir
):
    overrides = ["algo=grpo", "algo.rollout_correction=token_mask", *override.split()]
    with pytest.raises(Exception, match=re.escape(message)) as error:
        run_in_process(overrides, tmp_path, cache_dir)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_a_run_whose_steps_reject_every_token_stops_in_one_line(tmp_path, cache_dir):
    # bf16 rollouts move (almost) every token's log-ratio x off 0 by ~1e-3, k2 = x^2 / 2 ~ 5e-7; seq_max_k2
    # <= 1e-12 rejects a sequence with one such token: every token of steps 1 and 2 is rejected, and the
    # run stops naming the keys (a bound of exactly 0 is refused: issue 59)
    overrides = [
        "algo=grpo",
        "rollout.dtype=bfloat16",
        "algo.reject=[seq_max_k2]",
        "algo.reject_high=[1e-12]",
    ]
    with pytest.raises(RunStopped, match="algo.correction.max_rejected_steps=0 \\(now 2\\)") as error:
        run_in_process([*overrides, "algo.max_rejected_steps=2", "train.steps=4"], tmp_path, cache_dir)
    assert "\n" not in str(error.value) and "steps 1-2 rejected every response token" in str(error.value)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1] and rows[0]["train/is_masked_frac"] == 1.0  # the metric
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "trains nothing" in summary["error"]
