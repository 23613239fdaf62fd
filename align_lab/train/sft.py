"""Supervised fine-tuning stage: a policy from demonstrations (token cross-entropy on responses)."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

import torch
from torch import Tensor

from align_lab.models.sequences import (
    encode_conversations,
    encode_prompts,
    encode_responses,
    response_logprobs,
)
from align_lab.rl import masked_sum
from align_lab.train.backend import check_finite_loss
from align_lab.train.micro import Term, accumulate
from align_lab.value_checks import check_lr


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


def encode_demonstrations(tokenizer, responses: list, max_tokens: int, render_observation=None):
    """(response_ids, mask, attend), (B, T) each, of demonstrations' responses: text responses as
    always (attend is the mask); with any conversation among them, every row by encode_conversations
    (observation tokens attended, not in the mask), observations rendered by `render_observation`."""
    if all(isinstance(r, str) for r in responses):
        ids, mask = encode_responses(tokenizer, responses, [True] * len(responses), max_tokens)
        return ids, mask, mask
    return encode_conversations(tokenizer, responses, render_observation or (lambda text: text), max_tokens)


def nll_term(
    model,
    tokenizer,
    pairs: list[tuple[str, str | list]],
    max_prompt: int,
    max_response: int,
    scale=1.0,
    backend=None,
    render_observation=None,
):
    """The mean token negative log-likelihood of the responses given the prompts, as a loss term
    (train/micro.py): a sum over rows divided by the whole batch's token count, so micro-batches
    backpropagate their own share. `backend`: its autocast around the forward. A response may be a
    conversation: the loss covers its policy tokens only, the forward attends its observations too."""
    prompt_ids, prompt_attn = encode_prompts(tokenizer, [p for p, _ in pairs], max_prompt)
    response_ids, mask, attend = encode_demonstrations(
        tokenizer, [r for _, r in pairs], max_response, render_observation
    )
    count = max(int(mask.sum()), 1)  # the whole batch's policy tokens

    def logprobs(prompt_ids, prompt_attn, response_ids, attend, mask):  # (b, T)
        with backend.autocast() if backend is not None else contextlib.nullcontext():
            return response_logprobs(model, prompt_ids, prompt_attn, response_ids, attend)[0]

    def loss(logprobs, rows):
        return -masked_sum(logprobs, rows[4]) / count, {}

    rows = (prompt_ids, prompt_attn, response_ids, attend, mask)
    return Term(logprobs, rows, loss, scale, separable=True)


def train_sft(
    model,
    tokenizer,
    demos,
    config: SFTConfig,
    max_prompt: int,
    max_response: int,
    progress,
    micro_batch_size: int | None = None,
    render_observation=None,
):
    """Trains `model` in place on (prompt, response) demonstrations; returns the final loss.
    `micro_batch_size` accumulates gradients over that many demonstrations at a time (same update).
    A response may be a conversation [(role, text), ...]: `max_response` then bounds the whole
    conversation, `render_observation` renders its env turns (tasks/view.py observation_renderer)."""
    torch.manual_seed(config.seed)
    rng, render = random.Random(config.seed), render_observation
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    model.train()
    loss = torch.tensor(float("nan"))
    step = 0
    for _ in range(config.epochs):
        for batch in batches(demos, config.batch_size, rng):
            optimizer.zero_grad()
            term = nll_term(model, tokenizer, batch, max_prompt, max_response, render_observation=render)
            [(loss, _)] = accumulate([term], Tensor.backward, micro_batch_size)
            step += 1
            check_finite_loss(loss.item(), "sft", step, "sft.lr")  # a NaN model is never cached
            optimizer.step()
            progress.set_postfix(loss=f"{loss.item():.3f}")
            progress.update(1)  # after the postfix: its log line shows this step's loss
    return loss.item()
