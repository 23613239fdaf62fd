"""Scalar scores of sequences under models with a one-output head: a token-classification critic's
per-token values, a sequence-classification reward model's score at the last response token."""

from __future__ import annotations

import torch
from torch import Tensor

from .sequences import encode_prompts, encode_responses, joint_inputs


def token_values(critic, prompt_ids, prompt_attn, response_ids, mask) -> Tensor:
    """Per-token values V(s_t) of a token-classification critic, (B, T), 0 outside the mask."""
    ids, attn, pos = joint_inputs(prompt_ids, prompt_attn, response_ids, mask)
    values = critic(input_ids=ids, attention_mask=attn, position_ids=pos).logits[..., 0]  # (B, P+T)
    P = prompt_ids.shape[1]
    return values[:, P - 1 : -1].float() * mask  # (B, T)


def sequence_scores(model, prompt_ids, prompt_attn, response_ids, mask) -> Tensor:
    """Scalar scores of a sequence-classification model at the last response token, (B,)."""
    ids, attn, pos = joint_inputs(prompt_ids, prompt_attn, response_ids, mask)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=pos).logits  # (B, P+T, 1) or (B, 1)
    if logits.dim() == 2:
        return logits[:, 0].float()
    last = attn.shape[1] - 1 - attn.flip(-1).argmax(-1)  # (B,) index of the last attended token
    return logits[torch.arange(len(ids)), last, 0].float()


def score_texts(rm, tokenizer, prompts, responses, finished, max_prompt, max_response):
    """Reward-model scores of (prompt, response) texts, (B,)."""
    prompt_ids, prompt_attn = encode_prompts(tokenizer, prompts, max_prompt)
    response_ids, mask = encode_responses(tokenizer, responses, finished, max_response)
    return sequence_scores(rm, prompt_ids, prompt_attn, response_ids, mask)
