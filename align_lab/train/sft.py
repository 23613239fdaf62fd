"""Supervised fine-tuning stage: a policy from demonstrations (token cross-entropy on responses)."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

import torch
from torch import Tensor

from align_lab.checks import check_lr
from align_lab.models.sequences import encode_prompts, encode_responses, response_logprobs
from align_lab.rl import masked_sum
from align_lab.train.backend import check_finite_loss
from align_lab.train.micro import Term, accumulate


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
        check_lr("lr", self.lr)
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: must be >= 1")


def batches(items: list, batch_size: int, rng: random.Random):
    """Shuffled minibatches of a list (last one may be smaller)."""
    order = list(range(len(items)))
    rng.shuffle(order)
    for i in range(0, len(order), batch_size):
        yield [items[j] for j in order[i : i + batch_size]]


def nll_term(
    model,
    tokenizer,
    pairs: list[tuple[str, str]],
    max_prompt: int,
    max_response: int,
    scale=1.0,
    backend=None,
):
    """The mean token negative log-likelihood of the responses given the prompts, as a loss term
    (train/micro.py): a sum over rows divided by the whole batch's token count, so micro-batches
    backpropagate their own share. `backend`: its autocast around the forward."""
    prompt_ids, prompt_attn = encode_prompts(tokenizer, [p for p, _ in pairs], max_prompt)
    response_ids, mask = encode_responses(tokenizer, [r for _, r in pairs], [True] * len(pairs), max_response)
    count = max(int(mask.sum()), 1)  # the whole batch's response tokens

    def logprobs(*rows):  # (b, T)
        with backend.autocast() if backend is not None else contextlib.nullcontext():
            return response_logprobs(model, *rows)[0]

    def loss(logprobs, rows):
        return -masked_sum(logprobs, rows[3]) / count, {}

    return Term(logprobs, (prompt_ids, prompt_attn, response_ids, mask), loss, scale, separable=True)


def train_sft(
    model,
    tokenizer,
    demos,
    config: SFTConfig,
    max_prompt: int,
    max_response: int,
    progress,
    micro_batch_size: int | None = None,
):
    """Trains `model` in place on (prompt, response) demonstrations; returns the final loss.
    `micro_batch_size` accumulates gradients over that many demonstrations at a time (same update)."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    model.train()
    loss = torch.tensor(float("nan"))
    step = 0
    for _ in range(config.epochs):
        for batch in batches(demos, config.batch_size, rng):
            optimizer.zero_grad()
            term = nll_term(model, tokenizer, batch, max_prompt, max_response)
            [(loss, _)] = accumulate([term], Tensor.backward, micro_batch_size)
            step += 1
            check_finite_loss(loss.item(), "sft", step, "sft.lr")  # a NaN model is never cached
            optimizer.step()
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.3f}")
    return loss.item()
