"""Reward-model stage: a backbone + scalar head trained with the Bradley-Terry loss on preference pairs."""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from align_lab.models.scores import score_texts
from align_lab.tasks.base import Pair
from align_lab.train.backend import check_finite_loss
from align_lab.train.micro import Term, accumulate
from align_lab.train.micro import forward as micro_forward
from align_lab.train.sft import batches

if TYPE_CHECKING:
    from align_lab.rewards import LearnedRM


def pair_margins(rm, tokenizer, pairs: list[Pair], max_prompt, max_response):
    """r(chosen) - r(rejected) for each pair, (N,)."""
    prompts = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    scores = score_texts(rm, tokenizer, prompts, responses, [True] * len(prompts), max_prompt, max_response)
    return scores[: len(pairs)] - scores[len(pairs) :]


def bradley_terry(rm, tokenizer, batch: list[Pair], max_prompt, max_response) -> Term:
    """The Bradley-Terry loss -log sigmoid(r_w - r_l) of a batch of pairs, as a loss term (train/micro.py)."""

    def margins(pairs):  # (n,)
        return pair_margins(rm, tokenizer, pairs, max_prompt, max_response)

    return Term(margins, (batch,), lambda margins, rows: (-F.logsigmoid(margins).mean(), {}))


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
    n_heldout, _ = config.split_sizes(len(pairs))
    heldout, train = pairs[:n_heldout], pairs[n_heldout:]
    optimizer = torch.optim.AdamW(rm.parameters(), lr=config.lr)
    rm.train()
    step = 0
    for _ in range(config.epochs):
        for batch in batches(train, config.batch_size, rng):
            optimizer.zero_grad()
            term = bradley_terry(rm, tokenizer, batch, max_prompt, max_response)
            [(loss, _)] = accumulate([term], torch.Tensor.backward, micro_batch_size)
            step += 1
            check_finite_loss(loss.item(), "reward model", step, "reward.lr")  # never cached
            optimizer.step()
            progress.set_postfix(loss=f"{loss.item():.3f}")
            progress.update(1)  # after the postfix: its log line shows this step's loss
    rm.eval()
    margins = micro_forward(
        bradley_terry(rm, tokenizer, heldout, max_prompt, max_response).forward, (heldout,), micro_batch_size
    )
    stats = {"rm/heldout_accuracy": (margins > 0).float().mean().item(), "rm/heldout_pairs": len(heldout)}
    if not any(math.isnan(p.gold_chosen) for p in heldout):  # dataset pairs have no gold reward
        gold_sign = torch.tensor([p.gold_chosen > p.gold_rejected for p in heldout])
        stats["rm/heldout_gold_accuracy"] = ((margins > 0) == gold_sign).float().mean().item()
    return stats
