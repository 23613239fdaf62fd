"""A step whose rows are the task's demonstrations, not samples (GKD's seq_kd=false, TRL's default: the
off-policy steps train on the dataset's completions). Nothing is generated: each of the step's prompts
gets its own demonstrations, the g-th row of its group the g-th of them (cycling), so a step is a pure
function of its prompts and a resumed or stale step builds the same rows."""

from __future__ import annotations

import torch

from align_lab.models.sequences import encode_prompts, encode_responses
from align_lab.rollout.base import Samples


def demonstrations_by_prompt(task) -> dict[str, list[str]]:
    """The task's demonstrations (as the policy reads them: PolicyView renders the prompts) by prompt, in
    the task's order; a conversation demonstration is left out (it needs a multi-turn env)."""
    by_prompt: dict[str, list[str]] = {}
    for prompt, response in task.demonstrations():
        if isinstance(response, str):
            by_prompt.setdefault(prompt, []).append(response)
    return by_prompt


def missing_demonstrations(task) -> list[str]:
    """The training prompts with no single-response demonstration (run/teacher.py refuses them)."""
    have = demonstrations_by_prompt(task)
    return [p for p in task.prompts("train") if p not in have]


def demonstrated(
    task, tokenizer, prompts: list[str], n: int, max_tokens: int, max_prompt_tokens: int
) -> Samples:
    """Samples whose rows are `n` demonstrations of each prompt (contiguous, as sampled groups are),
    each finished with EOS and cut at `max_tokens`; log-probs 0 (no engine drew them)."""
    by_prompt = demonstrations_by_prompt(task)
    responses = [by_prompt[p][g % len(by_prompt[p])] for p in prompts for g in range(n)]
    ids, attn = encode_prompts(tokenizer, prompts, max_prompt_tokens)  # (B/n, P)
    finished = [True] * len(responses)
    response_ids, mask = encode_responses(tokenizer, responses, finished, max_tokens)  # (B, T)
    rows = [p for p in prompts for _ in range(n)]
    logprobs = torch.zeros_like(mask)
    return Samples(
        rows,
        ids.repeat_interleave(n, 0),
        attn.repeat_interleave(n, 0),
        response_ids,
        mask,
        responses,
        finished,
        logprobs,
    )
