"""`auto` sizes an online update's micro-batches from its rows' tokens (train/token_budget.py): the real
online loop on an HF Llama, micro-batched in rollout order where its budget says so, trains the weights
a whole-minibatch run trains, and records the rows it ran."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from align_lab.algorithms.grpo import GRPO
from align_lab.train.common import TrainConfig
from align_lab.train.footprint import Dims
from align_lab.train.memory import record
from align_lab.train.online import train_online
from align_lab.train.token_budget import Budget
from tests.conftest import toy_context


def trained(tmp_path, micro_batch_size, budget: Budget | None = None):
    """GRPO's weights after 2 steps of 2 prompts x 4 in minibatches of 4 (shuffled: rows of both
    prompts), and the Context that trained them; `budget` replaces the plan's."""
    train = TrainConfig(steps=2, rollout_size=8, minibatch_size=4, eval_every=0, checkpoint_every=0,
                        eval_samples=1, micro_batch_size=micro_batch_size)  # fmt: skip
    ctx = toy_context(tmp_path, train, reference=True)
    if budget is not None:
        ctx = dataclasses.replace(ctx, memory=dataclasses.replace(ctx.memory, budget=budget))
    train_online(GRPO(lr=1e-3, group_size=4, kl_coef=0.1), ctx)
    return [p.detach().clone() for p in ctx.policy.parameters()], ctx


def test_token_budget_micro_batches_train_what_whole_minibatches_train(tmp_path):
    whole, planned = trained(tmp_path / "whole", None)
    assert planned.memory.budget is None and planned.realized == {}  # a set size: the loop never chooses
    auto, _ = trained(tmp_path / "plan", "auto")
    assert all(torch.equal(a, b) for a, b in zip(whole, auto, strict=True))  # tiny: whole, as they lie
    # a budget no whole minibatch fits: micro-batches of at most 3 rows, the minibatch in rollout order
    budget = Budget(Dims.of(planned.policy.config), micro=10**12, whole=0, factor=1.4, max_rows=3)
    micro, ctx = trained(tmp_path / "micro", "auto", budget)
    assert ctx.realized["sizes"] == {3} and ctx.realized["whole"] is False
    for a, b in zip(whole, micro, strict=True):  # the same update up to float rounding (Adam, 2 steps)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    summary = record(ctx.memory, ctx.realized)
    assert summary["train/micro_batch_size_resolved"] == 3
    assert summary["memory/predicted_peak_mb"] == pytest.approx(
        dataclasses.replace(ctx.memory.peak, train_row=ctx.realized["bytes"], train_rows=1).total / 2**20,
        abs=0.05,
    )
