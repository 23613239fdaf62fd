"""Supervised fine-tuning stage: a policy from demonstrations (token cross-entropy on responses)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from align_lab.models.sequences import encode_prompts, encode_responses, response_logits
from align_lab.rl import logprobs_from_logits, masked_mean


@dataclass
class SFTConfig:
    """Hyperparameters of the SFT stage (they are part of its cache key)."""

    epochs: int = 6
    lr: float = 3e-3
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs}: must be >= 1")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr}: must be > 0")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: must be >= 1")


def batches(items: list, batch_size: int, rng: random.Random):
    """Shuffled minibatches of a list (last one may be smaller)."""
    order = list(range(len(items)))
    rng.shuffle(order)
    for i in range(0, len(order), batch_size):
        yield [items[j] for j in order[i : i + batch_size]]


def nll(model, tokenizer, pairs: list[tuple[str, str]], max_prompt: int, max_response: int):
    """Mean token negative log-likelihood of the responses given the prompts."""
    prompt_ids, prompt_attn = encode_prompts(tokenizer, [p for p, _ in pairs], max_prompt)
    response_ids, mask = encode_responses(tokenizer, [r for _, r in pairs], [True] * len(pairs), max_response)
    logits = response_logits(model, prompt_ids, prompt_attn, response_ids, mask)
    return -masked_mean(logprobs_from_logits(logits, response_ids), mask)


def train_sft(model, tokenizer, demos, config: SFTConfig, max_prompt: int, max_response: int, progress):
    """Trains `model` in place on (prompt, response) demonstrations; returns the final loss."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(config.epochs):
        for batch in batches(demos, config.batch_size, rng):
            loss = nll(model, tokenizer, batch, max_prompt, max_response)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.3f}")
    return loss.item()
