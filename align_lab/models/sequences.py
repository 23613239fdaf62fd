"""Batches of prompts and responses as tensors, and log-probs of responses under a causal LM."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch
from torch import Tensor

from align_lab.rl import selective_entropy, selective_logprobs

from .lora import causal_lm
from .packing import PACKED_SHARE, Packing, forward_cost, pack, pack_sequences, packs, pair_cost, pays


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


def observation_ids(tokenizer, rendered_text: str) -> list[int]:
    """An observation's token ids, from its text as the policy reads it (PolicyView.render_observation):
    the one encoding of observations, in the rollout and in SFT and DPO alike."""
    return tokenizer(rendered_text, add_special_tokens=False)["input_ids"]


def conversation_ids(tokenizer, turns, render_observation: Callable[[str], str]) -> tuple[list, list]:
    """A conversation after the prompt, [(role, text), ...] (a str: one policy turn), as token ids and
    their roles (1: policy, 0: observation): a policy turn is its text's ids + EOS (EOS ends a policy
    turn), an env turn `observation_ids` of its rendered text."""
    if isinstance(turns, str):
        turns = [("policy", turns)]
    ids, policy = [], []
    for role, text in turns:
        if role == "policy":
            part = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        elif role == "env":
            part = observation_ids(tokenizer, render_observation(text))
        else:
            raise ValueError(f"turn role {role!r}: must be 'policy' or 'env'")
        ids += part
        policy += [int(role == "policy")] * len(part)
    return ids, policy


def pad_conversations(rows: list[tuple[list, list]], pad_id: int, max_tokens: int) -> tuple[Tensor, ...]:
    """(ids, roles) rows cut at max_tokens -> right-padded (response_ids, mask, attend), (B, T) each:
    mask 1 on policy tokens, attend 1 on policy and observation tokens, 0 on padding."""
    rows = [(ids[:max_tokens], roles[:max_tokens]) for ids, roles in rows]
    width = max(1, max(len(ids) for ids, _ in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    mask, attend = torch.zeros((len(rows), width)), torch.zeros((len(rows), width))  # (B, T) each
    for i, (row, roles) in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = torch.tensor(roles, dtype=torch.float)
        attend[i, : len(row)] = 1.0
    return ids, mask, attend


def encode_conversations(
    tokenizer, conversations: list, render_observation: Callable[[str], str], max_tokens: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Conversations after their prompts (lists of (role, text) turns, or str for one policy turn) ->
    right-padded (response_ids, mask, attend), (B, T) each, cut at max_tokens: the loss and the KL read
    `mask` (policy tokens, each turn's EOS included), every forward attends `attend`."""
    rows = [conversation_ids(tokenizer, c, render_observation) for c in conversations]
    return pad_conversations(rows, tokenizer.pad_token_id, max_tokens)


def attended(mask: Tensor, attend: Tensor | None) -> Tensor:
    """The tokens a forward over responses attends: `attend` (policy and observation tokens), or the
    policy mask where there are no observations (attend None: single turn)."""
    return mask if attend is None else attend


def response_mask(response_ids: Tensor, eos_token_id: int) -> Tensor:
    """1 on generated tokens up to and including the first EOS, 0 after, (B, T)."""
    is_eos = (response_ids == eos_token_id).long()
    after_eos = (is_eos.cumsum(-1) - is_eos) > 0  # tokens strictly after the first EOS
    return (~after_eos).float()


def left_pad(rows: list[list[int]], pad_token_id: int) -> tuple[Tensor, Tensor]:
    """Left-padded ids and attention mask, (B, L), of token-id lists (contexts continued by an engine)."""
    longest = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), longest), pad_token_id, dtype=torch.long)  # (B, L)
    attn = torch.zeros((len(rows), longest), dtype=torch.long)  # (B, L)
    for i, r in enumerate(rows):
        if r:
            ids[i, longest - len(r) :] = torch.tensor(r, dtype=torch.long)
            attn[i, longest - len(r) :] = 1
    return ids, attn


def joint_inputs(prompt_ids: Tensor, prompt_attn: Tensor, response_ids: Tensor, mask: Tensor):
    """Concatenated ids, attention mask and position ids for a forward pass over prompt + response."""
    ids = torch.cat([prompt_ids, response_ids], dim=1)  # (B, P+T)
    attn = torch.cat([prompt_attn, mask.long()], dim=1)  # (B, P+T)
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)  # (B, P+T)
    return ids, attn, position_ids


def response_logits(model, prompt_ids, prompt_attn, response_ids, mask) -> Tensor:
    """Raw logits predicting each response token, (B, T, V), in the model's dtype.

    The LM head runs at the T response-predicting positions only (transformers' `logits_to_keep`),
    not at the prompt's: position P-1+t predicts response token t. Rows that repeat the row before
    them's prompt (the G samples of a prompt, contiguous) share one forward of it (`shared_prompts`),
    where the prompt positions that saves pay for the second forward (`packing.pays`).
    """
    rows, model = shared_prompts(prompt_ids, prompt_attn), causal_lm(model)  # (B,) or None; LoRA's model
    if rows is not None and response_ids.shape[1] > 1 and shares_worth(model, rows, prompt_ids.shape[1]):
        return _logits_on_shared_prompts(model, prompt_ids, prompt_attn, response_ids, mask, rows)
    ids, attn, pos = joint_inputs(prompt_ids, prompt_attn, response_ids, mask)
    T = response_ids.shape[1]
    # no KV cache: nothing reads it, and without a graph it would hold every layer's keys and values
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=T + 1, use_cache=False)
    return out.logits[:, :-1]  # (B, T, V)


def shared_prompts(prompt_ids: Tensor, prompt_attn: Tensor) -> Tensor | None:
    """For each row, the index of its prompt among the distinct prompts (consecutive equal rows of ids
    and mask), (B,); None when no two neighbouring rows share a prompt."""
    _, rows = torch.unique_consecutive(torch.cat([prompt_ids, prompt_attn], 1), dim=0, return_inverse=True)
    return rows if int(rows[-1]) + 1 < len(rows) else None


def shares_worth(model, rows: Tensor, P: int) -> bool:
    """Whether one forward of each distinct prompt (`rows`, `shared_prompts`) then the responses on its
    cache is worth its second forward: the prompt positions it saves, (B - B') x P, times a position's
    multiply-adds, at least packing.PACKING_OVERHEAD; and the model keeps a differentiable cache."""
    return caches_with_grad(model) and pays((len(rows) - int(rows[-1]) - 1) * P, model)


def is_partitioned(model) -> bool:
    """A DeepSpeed ZeRO-3 model: its parameters hold a `ds_tensor` partition, not their weights."""
    return any(hasattr(p, "ds_tensor") for p in model.parameters())


@functools.cache
def takes_cache(cls) -> bool:
    """Whether the model class's forward takes a `cache` (inspect.signature costs a tiny policy's
    forward a tenth: asked once a class)."""
    return "cache" in inspect.signature(cls.forward).parameters


def caches_with_grad(model) -> bool:
    """Whether the model's forward keeps a differentiable KV cache: a transformers model whose layers
    do not checkpoint activations (they drop the cache) and whose weights are not partitioned across
    processes (ZeRO-3 forwards are collective: every process must make the same calls)."""
    return (
        takes_cache(type(model))
        and not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
        and not is_partitioned(model)
    )


def first_rows(rows: Tensor) -> Tensor:
    """The first row of each distinct prompt, (B',), from each row's (`shared_prompts`), (B,)."""
    return torch.cat([rows.new_zeros(1), (rows[1:] != rows[:-1]).nonzero()[:, 0] + 1])


def _prompt_forward(model, prompt_ids, prompt_attn, rows: Tensor):
    """One forward of each distinct prompt (`rows`: each row's, `shared_prompts`): response token 0's
    logits for every row, (B, 1, V), and the prompts' KV cache with its graph, (B', H_kv, P, D) a layer."""
    first = first_rows(rows)  # (B',)
    positions = (prompt_attn.cumsum(-1) - 1).clamp(min=0)  # (B, P), as joint_inputs numbers them
    out = model(
        input_ids=prompt_ids[first],
        attention_mask=prompt_attn[first],
        position_ids=positions[first],
        use_cache=True,
        logits_to_keep=1,
    )  # logits (B', 1, V): response token 0's
    return out.logits[rows], out.cache


def _logits_on_shared_prompts(model, prompt_ids, prompt_attn, response_ids, mask, rows: Tensor) -> Tensor:
    """response_logits with one forward of each distinct prompt, its KV cache (with its graph) given to
    every row that shares it, then one forward of the responses: the prompt positions' FLOPs of the
    forward and the backward are spent once per prompt instead of once per sample. The same values as
    the joint forward up to float rounding (tests/unit/models/test_sequences.py)."""
    first_logits, cache = _prompt_forward(model, prompt_ids, prompt_attn, rows)
    _, attn, pos = joint_inputs(prompt_ids, prompt_attn, response_ids, mask)  # (B, P+T) each
    cache.reorder_cache(rows)  # every row its prompt's keys and values, (B, H_kv, P, D) per layer
    P = prompt_ids.shape[1]
    rest = model(
        input_ids=response_ids[:, :-1],
        attention_mask=attn[:, :-1],
        position_ids=pos[:, P:-1],
        cache=cache,
        use_cache=True,
    )  # logits (B, T-1, V): response tokens 1..T-1
    return torch.cat([first_logits, rest.logits], dim=1)  # (B, T, V)


def response_packing(model, prompt_ids, prompt_attn, response_ids, mask) -> Packing | None:
    """How the rows' responses pack (models/packing.py): on their shared prompts' caches where
    neighbouring rows share a prompt, else each with its prompt; None where they run as they lie: a
    model whose cache or masks packing cannot use (`packs`), a `mask` that is not each row's first
    tokens or prompts not left-padded, or packed rows that would save less than a tenth of the cost or
    less than their fixed extra (`packing.pays`: a tiny policy's few rows run as they lie)."""
    (B, T), P, model = response_ids.shape, prompt_ids.shape[1], causal_lm(model)
    if not (packs(model) and caches_with_grad(model)):
        return None
    lengths = mask.sum(-1).long()  # (B,)
    if not lengths.any():  # no response token to predict: nothing to pack
        return None
    prompt_tokens = prompt_attn.sum(-1)  # (B,)
    left_padded = torch.arange(P, device=mask.device) >= P - prompt_tokens[:, None]  # (B, P)
    first_tokens = torch.arange(T, device=mask.device) < lengths[:, None]  # (B, T)
    if not (torch.equal(mask.bool(), first_tokens) and torch.equal(prompt_attn.bool(), left_padded)):
        return None
    rows, pair = shared_prompts(prompt_ids, prompt_attn) if T > 1 else None, pair_cost(model)
    cached = P if rows is not None else 0  # packed rows and rows as they lie priced alike (`forward_cost`)
    as_they_lie = forward_cost(B, T - 1, P, pair) if rows is not None else forward_cost(B, P + T, 0, pair)
    if not pays(as_they_lie - int(lengths.sum()), model):
        return None  # no packing runs fewer positions than the response tokens: it cannot pay
    packing = (
        pack(rows, lengths, T, P, pair) if rows is not None else pack_sequences(prompt_attn, lengths, T, pair)
    )
    packed = forward_cost(*packing.where.shape, cached, pair)
    return packing if packed <= PACKED_SHARE * as_they_lie and pays(as_they_lie - packed, model) else None


def _token_outputs(logits, labels, temperature: float, entropy: bool, entropy_grad: bool):
    """Log-probs of `labels` under `logits` at `temperature`, and with `entropy` the entropy (a graph
    only if `entropy_grad`), each of labels' shape; no fp32 copy of the logits is made."""
    logprobs = selective_logprobs(logits, labels, temperature)
    if not entropy:
        return logprobs, None
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        return logprobs, selective_entropy(logits, temperature)


def _packed_outputs(model, prompt_ids, prompt_attn, response_ids, packing: Packing, *how):
    """response_logprobs over packed rows: with a cache, each distinct prompt's forward first; the LM
    head at the predicting positions only; log-probs (and entropy) in the batch's layout, (B, T)."""
    first_logits, table, prompts, cache = None, torch.cat([prompt_ids, response_ids], 1), None, None
    if packing.prompt is not None:
        rows = shared_prompts(prompt_ids, prompt_attn)
        first_logits, cache = _prompt_forward(model, prompt_ids, prompt_attn, rows)
        cache.reorder_cache(packing.prompt)  # every packed row its prompt's keys and values
        table, prompts = response_ids, prompt_attn[first_rows(rows)]
    mask, positions = packing.attention_mask(prompts), packing.position_ids(prompt_attn)
    ids, use_cache = packing.ids(table), cache is not None
    out = model.model(
        input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=use_cache
    )
    keep = packing.predicting  # (R, Q)
    logits = model.lm_head(out.last_hidden_state[keep])[:, None]  # (N, 1, V): a row each, as they chunk
    packed = _token_outputs(logits, packing.labels(table)[keep][:, None], *how)  # (N, 1) each
    first = (None, None) if first_logits is None else _token_outputs(first_logits, response_ids[:, :1], *how)
    return tuple(
        None if a is None else packing.unpack(a[:, 0], f) for a, f in zip(packed, first, strict=True)
    )


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
    per-token entropy, (B, T), with a graph only if `entropy_grad`. No fp32 (B, T, V) copy is made.
    Responses run packed where that saves a tenth of the forward's cost (`response_packing`); outside
    `mask` the values are then 0, else whatever the forward gives there: only `mask` is to be read."""
    how, model = (temperature, entropy, entropy_grad), causal_lm(model)  # a LoRA wrapper's model
    packing = response_packing(model, prompt_ids, prompt_attn, response_ids, mask)
    if packing is not None:
        return _packed_outputs(model, prompt_ids, prompt_attn, response_ids, packing, *how)
    logits = response_logits(model, prompt_ids, prompt_attn, response_ids, mask)  # (B, T, V)
    return _token_outputs(logits, response_ids, *how)
