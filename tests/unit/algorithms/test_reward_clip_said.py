"""algorithms/reward_clip.py: a reward whose scores the clip flattens is said (twenty-seventh hunt, case 17:
a 0-100 judge score under reinforce_pp's default reward_clip=10 trained on nothing for 10 steps, its
progress line saying reward ~30, rc 0, no line)."""

from __future__ import annotations

import logging

import torch

from align_lab.algorithms.reward_clip import RewardClip


def test_a_clip_that_flattens_most_of_a_steps_scores_says_so_once_a_run(caplog):
    """Once a run: a one-process sweep's second run (its own algorithm, its own clip) says it too
    (twenty-eighth hunt, case 10: said once a process, the sweep's later runs said nothing)."""
    clip = RewardClip(reward_clip=10.0)
    with caplog.at_level(logging.WARNING, "align_lab"):
        assert clip(torch.tensor([1.0, -2.0, 11.0])).tolist() == [1.0, -2.0, 10.0]  # a third: no word
        assert caplog.records == []
        assert clip(torch.tensor([20.0, 40.0, 100.0, 5.0])).tolist() == [10.0, 10.0, 10.0, 5.0]
        clip(torch.tensor([30.0, 30.0]))  # said once a run
        RewardClip(reward_clip=10.0)(torch.tensor([20.0, 40.0, 100.0, 5.0]))  # the next run's
    said = (
        "warning: algo.reward_clip=10.0 clamps 75% of a step's scores (they lie in [5, 100]): their "
        "differences no longer reach the policy; scale the reward into the clip's range, or set "
        "algo.reward_clip=null"
    )
    assert [r.getMessage() for r in caplog.records] == [said, said]
