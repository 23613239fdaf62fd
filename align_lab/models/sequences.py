"""Batches of prompts and responses as tensors, and log-probs of responses under a causal LM."""

from __future__ import annotations

import torch
from torch import Tensor

from align_lab.rl import selective_entropy, selective_logprobs


def encode_prompts(tokenizer, prompts: list[str], max_tokens: int) -> tuple[Tensor, Tensor]:
    """Left-padded prompt ids and attention mask, (B, P); a prompt over max_tokens is an error."""
    enc = [tokenizer(p)["input_ids"] for p in prompts]
    longest = max(len(e) for e in enc)
    if longest > max_tokens:
        i = max(range(len(enc)), key=lambda j: len(enc[j]))
        raise ValueError(
            f"prompt {prompts[i]!r} has {longest} tokens: must be <= max_prompt_tokens={max_tokens}"
        )
    ids = torch.full((len(enc), longest), tokenizer.pad_token_id, dtype=torch.long)  # (B, P)
    attn = torch.zeros((len(enc), longest), dtype=torch.long)  # (B, P)
    for i, e in enumerate(enc):
        ids[i, longest - len(e) :] = torch.tensor(e)
        attn[i, longest - len(e) :] = 1
    return ids, attn


def encode_responses(
    tokenizer, responses: list[str], finished: list[bool], max_tokens: int
) -> tuple[Tensor, Tensor]:
    """Right-padded response ids with EOS appended to finished ones, and the response mask, (B, T)."""
    enc = [
        tokenizer(r, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if f else [])
        for r, f in zip(responses, finished, strict=True)
    ]
    enc = [e[:max_tokens] for e in enc]
    width = max(1, max(len(e) for e in enc))
    ids = torch.full((len(enc), width), tokenizer.pad_token_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(enc), width))  # (B, T)
    for i, e in enumerate(enc):
        ids[i, : len(e)] = torch.tensor(e, dtype=torch.long)
        mask[i, : len(e)] = 1.0
    return ids, mask


def response_mask(response_ids: Tensor, eos_token_id: int) -> Tensor:
    """1 on generated tokens up to and including the first EOS, 0 after, (B, T)."""
    is_eos = (response_ids == eos_token_id).long()
    after_eos = (is_eos.cumsum(-1) - is_eos) > 0  # tokens strictly after the first EOS
    return (~after_eos).float()


def joint_inputs(prompt_ids: Tensor, prompt_attn: Tensor, response_ids: Tensor, mask: Tensor):
    """Concatenated ids, attention mask and position ids for a forward pass over prompt + response."""
    ids = torch.cat([prompt_ids, response_ids], dim=1)  # (B, P+T)
    attn = torch.cat([prompt_attn, mask.long()], dim=1)  # (B, P+T)
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)  # (B, P+T)
    return ids, attn, position_ids


def response_logits(model, prompt_ids, prompt_attn, response_ids, mask) -> Tensor:
    """Raw logits predicting each response token, (B, T, V), in the model's dtype.

    The LM head runs at the T response-predicting positions only (transformers' `logits_to_keep`),
    not at the prompt's: position P-1+t predicts response token t.
    """
    ids, attn, pos = joint_inputs(prompt_ids, prompt_attn, response_ids, mask)
    T = response_ids.shape[1]
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=T + 1)
    return out.logits[:, :-1]  # (B, T, V)


def response_logprobs(
    model,
    prompt_ids,
    prompt_attn,
    response_ids,
    mask,
    temperature: float = 1.0,
    entropy: bool = False,
    entropy_grad: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Log-probs of the response tokens under `model` at `temperature`, (B, T), and with `entropy` the
    per-token entropy, (B, T), with a graph only if `entropy_grad`. No fp32 (B, T, V) copy is made."""
    logits = response_logits(model, prompt_ids, prompt_attn, response_ids, mask)  # (B, T, V)
    logprobs = selective_logprobs(logits, response_ids, temperature)  # (B, T)
    if not entropy:
        return logprobs, None
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        return logprobs, selective_entropy(logits, temperature)  # (B, T), (B, T)


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
