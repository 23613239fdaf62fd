"""Reward-model stage: a backbone + scalar head trained with the Bradley-Terry loss on preference pairs."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from align_lab.models.sequences import encode_prompts, encode_responses, sequence_scores
from align_lab.tasks.base import Pair
from align_lab.train.sft import batches


@dataclass
class RMConfig:
    epochs: int = 4
    lr: float = 2e-3
    batch_size: int = 64
    heldout_fraction: float = 0.1
    seed: int = 0


def score_texts(rm, tokenizer, prompts, responses, finished, max_prompt, max_response):
    """Reward-model scores of (prompt, response) texts, (B,)."""
    prompt_ids, prompt_attn = encode_prompts(tokenizer, prompts, max_prompt)
    response_ids, mask = encode_responses(tokenizer, responses, finished, max_response)
    return sequence_scores(rm, prompt_ids, prompt_attn, response_ids, mask)


def pair_margins(rm, tokenizer, pairs: list[Pair], max_prompt, max_response):
    """r(chosen) - r(rejected) for each pair, (N,)."""
    prompts = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    scores = score_texts(rm, tokenizer, prompts, responses, [True] * len(prompts), max_prompt, max_response)
    return scores[: len(pairs)] - scores[len(pairs) :]


def train_reward_model(
    rm, tokenizer, pairs: list[Pair], config: RMConfig, max_prompt, max_response, progress
):
    """Trains `rm` in place with -log sigmoid(r_w - r_l); returns held-out accuracies."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    n_heldout = max(1, int(len(pairs) * config.heldout_fraction))
    heldout, train = pairs[:n_heldout], pairs[n_heldout:]
    optimizer = torch.optim.AdamW(rm.parameters(), lr=config.lr)
    rm.train()
    for _ in range(config.epochs):
        for batch in batches(train, config.batch_size, rng):
            loss = -F.logsigmoid(pair_margins(rm, tokenizer, batch, max_prompt, max_response)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.3f}")
    rm.eval()
    with torch.no_grad():
        margins = pair_margins(rm, tokenizer, heldout, max_prompt, max_response)
    stats = {"rm/heldout_accuracy": (margins > 0).float().mean().item(), "rm/heldout_pairs": len(heldout)}
    if not any(math.isnan(p.gold_chosen) for p in heldout):  # dataset pairs have no gold reward
        gold_sign = torch.tensor([p.gold_chosen > p.gold_rejected for p in heldout])
        stats["rm/heldout_gold_accuracy"] = ((margins > 0) == gold_sign).float().mean().item()
    return stats
