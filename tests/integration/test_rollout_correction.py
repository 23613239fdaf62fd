"""Rollout corrections in a run (issue 26 item 4): the toy world, 3 steps, the loop's engine log-probs."""

from __future__ import annotations

import pytest

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
