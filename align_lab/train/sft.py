"""Supervised fine-tuning stage: a policy from demonstrations (token cross-entropy on responses)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from align_lab.models.sequences import encode_prompts, encode_responses, response_logprobs
from align_lab.rl import masked_sum


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


def _token_nll(model, tokenizer, pairs, max_prompt: int, max_response: int) -> tuple[torch.Tensor, int]:
    """Sum of the responses' token negative log-likelihoods given the prompts, and their token count."""
    prompt_ids, prompt_attn = encode_prompts(tokenizer, [p for p, _ in pairs], max_prompt)
    response_ids, mask = encode_responses(tokenizer, [r for _, r in pairs], [True] * len(pairs), max_response)
    logprobs, _ = response_logprobs(model, prompt_ids, prompt_attn, response_ids, mask)  # (B, T)
    return -masked_sum(logprobs, mask), int(mask.sum())


def nll(model, tokenizer, pairs: list[tuple[str, str]], max_prompt: int, max_response: int):
    """Mean token negative log-likelihood of the responses given the prompts."""
    total, count = _token_nll(model, tokenizer, pairs, max_prompt, max_response)
    return total / max(count, 1)


def nll_backward(model, tokenizer, pairs, max_prompt, max_response, micro_batch_size: int, scale, update):
    """nll() backpropagated (times `scale`) micro-batch by micro-batch through `update`; returns its
    value. Each micro-batch's sum is divided by the whole batch's token count, so the gradients add up
    to the whole batch's."""
    chunks = [pairs[i : i + micro_batch_size] for i in range(0, len(pairs), micro_batch_size)]
    _, mask = encode_responses(tokenizer, [r for _, r in pairs], [True] * len(pairs), max_response)
    count = max(int(mask.sum()), 1)  # (B, T) mask of the whole batch: its token count
    value = torch.zeros(())
    for chunk in chunks:
        total, _ = _token_nll(model, tokenizer, chunk, max_prompt, max_response)
        update.backward(scale * total / count)
        value = value + total.detach() / count
    return value


class _Plain:
    """backward() of a plain torch optimiser step, for nll_backward in the SFT stage."""

    @staticmethod
    def backward(loss: torch.Tensor) -> None:
        loss.backward()


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
    for _ in range(config.epochs):
        for batch in batches(demos, config.batch_size, rng):
            optimizer.zero_grad()
            if micro_batch_size is None:
                loss = nll(model, tokenizer, batch, max_prompt, max_response)
                loss.backward()
            else:
                loss = nll_backward(
                    model, tokenizer, batch, max_prompt, max_response, micro_batch_size, 1.0, _Plain
                )
            optimizer.step()
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.3f}")
    return loss.item()
