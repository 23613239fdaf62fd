"""vLLM's completions as the trainer's tensors (no vllm import: unit-testable without it)."""

from __future__ import annotations

import torch


def completion_tensors(completions, pad_token_id: int, greedy: bool) -> tuple:
    """vLLM's B completions as (response ids, mask (1 up to and including EOS), the sampled tokens'
    log-probs (0 for greedy rows: a certain choice)), each (B, T) right-padded."""
    tokens = [list(c.token_ids) for c in completions]  # (B,) lists
    width = max(1, max(len(t) for t in tokens))
    response_ids = torch.full((len(tokens), width), pad_token_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(tokens), width))  # (B, T)
    logprobs = torch.zeros((len(tokens), width))  # (B, T)
    for i, (t, c) in enumerate(zip(tokens, completions, strict=True)):
        response_ids[i, : len(t)] = torch.tensor(t, dtype=torch.long)
        mask[i, : len(t)] = 1.0
        if not greedy:
            logprobs[i, : len(t)] = torch.tensor(completion_logprobs(c.logprobs, t))
    return response_ids, mask, logprobs


def completion_logprobs(positions, token_ids: list[int]) -> list[float]:
    """The sampled token's log-prob at each position of a vLLM completion's `logprobs` (one
    {token id: Logprob} per position, asked for with SamplingParams(logprobs=0))."""
    return [position[token].logprob for position, token in zip(positions, token_ids, strict=True)]
