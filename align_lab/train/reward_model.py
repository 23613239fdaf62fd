"""Reward-model stage: a backbone + scalar head trained with the Bradley-Terry loss on preference pairs."""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from align_lab.models.sequences import score_texts
from align_lab.tasks.base import Pair
from align_lab.train.sft import batches

if TYPE_CHECKING:
    from align_lab.rewards import LearnedRM


def pair_margins(rm, tokenizer, pairs: list[Pair], max_prompt, max_response):
    """r(chosen) - r(rejected) for each pair, (N,)."""
    prompts = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    scores = score_texts(rm, tokenizer, prompts, responses, [True] * len(prompts), max_prompt, max_response)
    return scores[: len(pairs)] - scores[len(pairs) :]


def _step_margins(rm, tokenizer, batch, max_prompt, max_response, micro_batch_size: int | None):
    """The Bradley-Terry loss of a batch, backpropagated into `rm`; returns its value. With
    `micro_batch_size` pairs at a time: the loss's gradient with respect to each pair's margin is taken
    on detached margins, then each micro-batch is run with a graph against it (same gradient)."""
    if micro_batch_size is None:
        loss = -F.logsigmoid(pair_margins(rm, tokenizer, batch, max_prompt, max_response)).mean()
        loss.backward()
        return loss
    chunks = [batch[i : i + micro_batch_size] for i in range(0, len(batch), micro_batch_size)]
    with torch.no_grad():
        margins = torch.cat(
            [pair_margins(rm, tokenizer, c, max_prompt, max_response) for c in chunks]
        )  # (N,)
    margins.requires_grad_()
    loss = -F.logsigmoid(margins).mean()
    (grad,) = torch.autograd.grad(loss, margins)  # (N,)
    for i, chunk in enumerate(chunks):
        part = grad[i * micro_batch_size : i * micro_batch_size + len(chunk)]  # (c,)
        (pair_margins(rm, tokenizer, chunk, max_prompt, max_response) * part).sum().backward()
    return loss.detach()


def train_reward_model(
    rm,
    tokenizer,
    pairs: list[Pair],
    config: LearnedRM,
    max_prompt,
    max_response,
    progress,
    micro_batch_size: int | None = None,
):
    """Trains `rm` in place with -log sigmoid(r_w - r_l); returns held-out accuracies.
    `micro_batch_size` accumulates gradients over that many pairs at a time (same update)."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    n_heldout = max(1, int(len(pairs) * config.heldout_fraction))
    heldout, train = pairs[:n_heldout], pairs[n_heldout:]
    optimizer = torch.optim.AdamW(rm.parameters(), lr=config.lr)
    rm.train()
    for _ in range(config.epochs):
        for batch in batches(train, config.batch_size, rng):
            optimizer.zero_grad()
            loss = _step_margins(rm, tokenizer, batch, max_prompt, max_response, micro_batch_size)
            optimizer.step()
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.3f}")
    rm.eval()
    size = micro_batch_size or len(heldout)
    with torch.no_grad():
        chunks = [heldout[i : i + size] for i in range(0, len(heldout), size)]
        margins = torch.cat([pair_margins(rm, tokenizer, c, max_prompt, max_response) for c in chunks])
    stats = {"rm/heldout_accuracy": (margins > 0).float().mean().item(), "rm/heldout_pairs": len(heldout)}
    if not any(math.isnan(p.gold_chosen) for p in heldout):  # dataset pairs have no gold reward
        gold_sign = torch.tensor([p.gold_chosen > p.gold_rejected for p in heldout])
        stats["rm/heldout_gold_accuracy"] = ((margins > 0) == gold_sign).float().mean().item()
    return stats
