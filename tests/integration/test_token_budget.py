"""`auto` sizes an online update's micro-batches from its rows' tokens (train/memory/token_budget.py):
the real online loop on an HF Llama, micro-batched in rollout order where its budget says so, trains the
weights a whole-minibatch run trains, and records the rows it ran."""

from __future__ import annotations

import dataclasses
from unittest import mock

import pytest
import torch

from align_lab.algorithms.grpo import GRPO
from align_lab.train import learner
from align_lab.train.common import TrainConfig
from align_lab.train.memory.footprint import Dims
from align_lab.train.memory.planner import record
from align_lab.train.memory.token_budget import Budget, new_prompts
from align_lab.train.online import train_online
from tests.conftest import toy_context

online_accumulate = learner.accumulate  # Learner.step calls it (train/learner.py)


def trained(tmp_path, micro_batch_size, budget: Budget | None = None, minibatch: int = 4, spy=None):
    """GRPO's weights after 2 steps of 2 prompts x 4 in minibatches of `minibatch` (4: shuffled rows of
    both prompts), and the Context that trained them; `budget` replaces the plan's; `spy` is told each
    update's accumulate (its terms and size)."""
    train = TrainConfig(steps=2, rollout_size=8, minibatch_size=minibatch, eval_every=0, checkpoint_every=0,
                        eval_samples=1, micro_batch_size=micro_batch_size)  # fmt: skip
    ctx = toy_context(tmp_path, train, reference=True)
    if budget is not None:
        ctx = dataclasses.replace(ctx, memory=dataclasses.replace(ctx.memory, budget=budget))
    with mock.patch.object(learner, "accumulate", spy or learner.accumulate):
        train_online(GRPO(lr=1e-3, group_size=4, kl_coef=0.1), ctx)
    return [p.detach().clone() for p in ctx.models.policy.parameters()], ctx


def test_token_budget_micro_batches_train_what_whole_minibatches_train(tmp_path):
    whole, planned = trained(tmp_path / "whole", None)
    # a set size: priced
    assert not planned.memory.budget.chooses and planned.ledger.realized["sizes"] == {None}
    auto, _ = trained(tmp_path / "plan", "auto")
    assert all(torch.equal(a, b) for a, b in zip(whole, auto, strict=True))  # tiny: whole, as they lie
    # a budget no whole minibatch fits: micro-batches of at most 3 rows, the minibatch in rollout order
    budget = Budget(Dims.of(planned.models.policy.config), micro=10**12, whole=0, factor=1.4, max_rows=3)
    ran = []

    def spy(terms, backward, size):
        prompt_ids, prompt_attn = terms[0].rows[:2]  # the policy term's rows
        distinct = len(torch.unique(prompt_ids, dim=0))
        ran.append((size, sum(new_prompts(prompt_ids, prompt_attn)), distinct))
        return online_accumulate(terms, backward, size)

    micro, ctx = trained(tmp_path / "micro", "auto", budget, spy=spy)
    assert [size for size, _, _ in ran] == [3, 3, 3, 3]  # 2 steps x 2 minibatches of 4 rows
    # in rollout order: a group's rows lie together, so each prompt starts once
    assert all(starts == distinct for _, starts, distinct in ran), ran
    assert ctx.ledger.realized["sizes"] == {3} and set(ctx.ledger.realized) == {"micro", "sizes"}
    for a, b in zip(whole, micro, strict=True):  # the same update up to float rounding (Adam, 2 steps)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    summary = record(ctx.memory, ctx.ledger.realized)
    assert summary["train/micro_batch_size_resolved"] == 3
    expected = dataclasses.replace(ctx.memory.peak, train_row=ctx.ledger.realized["micro"], train_rows=1)
    assert summary["memory/predicted_peak_mb"] == pytest.approx(expected.total / 2**20, abs=0.05)


def test_step_3s_graph_is_kept_for_the_first_update_where_its_rows_fit_whole(tmp_path):
    sizes = []

    def spy(terms, backward, size):
        sizes.append(size)
        return online_accumulate(terms, backward, size)

    _, ctx = trained(tmp_path, "auto", minibatch=8, spy=spy)  # one minibatch: step 3's rows
    assert sizes == [None, None] and set(ctx.ledger.realized) == {"kept", "sizes"}
