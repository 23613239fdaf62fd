"""The bytes of a decoder's rows (docs/memory.md): a sequence's activations kept for the backward pass,
a no-graph forward's working set, a KV cache and a divergence to a teacher, from the widths of an HF config
(Dims); and the bytes of the models a run holds (their parameters, found in a scorer's closure too). The
memory model (train/memory/planner.py) sums them into a run's predicted peak."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import torch

from align_lab.rl import distill as rl_distill

FLOAT_BYTES = 4  # fp32 activations (bf16 autocast: row_bytes' dtype)
# floats kept for the backward pass per token and layer of a Llama-style block: about 6 hidden-size
# tensors (norm inputs and outputs, q, k, v, attention output) and 4 MLP-width ones (gate, up, act, product)
HIDDEN_COPIES, MLP_COPIES = 6, 4
LOGIT_COPIES = 3  # fp32 (T, V) logits per response, their gradient and the softmax of the backward pass
NO_GRAPH_LOGIT_COPIES = 2  # a forward without a graph: its logits, and their join (forward_row_bytes)
# GKD's generalized JSD over the vocabulary adds MIXTURE_COPIES or LIMIT_COPIES fp32 (T, V) tensors to an
# update row beyond the policy's LOGIT_COPIES: measured beside the function (rl/distill.py), carried by
# the algorithm's VocabularyDivergence signal (its row_copies) into the plan
MIXTURE_COPIES, LIMIT_COPIES = rl_distill.MIXTURE_COPIES, rl_distill.LIMIT_COPIES


@dataclass(frozen=True)
class Dims:
    """What sets a decoder's activation and KV memory: widths, depth, vocabulary (from an HF config)."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    vocab: int
    kv_width: int = 0  # key (= value) floats per token and layer; 0: hidden (no grouped queries)
    tied: bool = True  # the LM head is the embedding

    def parameters(self) -> int:
        """The parameter count: embedding (and an untied head), attention (q, o and k, v of kv_width),
        the gated MLP (3 matrices); norms left out."""
        kv = self.kv_width or self.hidden
        layer = 2 * self.hidden * self.hidden + 2 * self.hidden * kv + 3 * self.hidden * self.intermediate
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.layers * layer

    @classmethod
    def of(cls, config) -> Dims:
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        return cls(
            config.hidden_size,
            config.num_hidden_layers,
            config.intermediate_size,
            heads,
            config.vocab_size,
            kv_heads * head_dim,
            bool(getattr(config, "tie_word_embeddings", True)),
        )


def _layer_floats(dims: Dims, tokens: int) -> int:
    """Floats one layer keeps for `tokens` tokens of one sequence: HIDDEN_COPIES x hidden +
    MLP_COPIES x intermediate + heads x L attention weights per token."""
    return tokens * (HIDDEN_COPIES * dims.hidden + MLP_COPIES * dims.intermediate + dims.heads * tokens)


def _logit_floats(dims: Dims, response_tokens: int) -> int:
    """LOGIT_COPIES fp32 (response + 1, vocab) copies: logits, their gradient, the backward's softmax."""
    return LOGIT_COPIES * (response_tokens + 1) * dims.vocab


def row_bytes(
    dims: Dims, prompt_tokens: int, response_tokens: int, logits: bool = True, dtype: str = "fp32"
) -> int:
    """Bytes of one sequence's activations kept for the backward pass: every layer's _layer_floats over
    L = prompt + response tokens, and with `logits` (a causal LM's log-probs) the _logit_floats; fp32,
    or under bf16 autocast the layers' floats at 2 bytes (the logits stay fp32)."""
    layer_bytes = 2 if dtype == "bf16" else FLOAT_BYTES
    total = layer_bytes * dims.layers * _layer_floats(dims, prompt_tokens + response_tokens)
    if logits:
        total += FLOAT_BYTES * _logit_floats(dims, response_tokens)
    return total


def rows_bytes(
    dims: Dims, prompt_tokens: list[int], response_tokens: list[int], new_prompt: list[bool], **how
) -> int:
    """Bytes of the activations a forward with a graph keeps over rows as they are: row_bytes at each
    row's own lengths, its `prompt_tokens[r]` counted only where `new_prompt[r]` (rows that share a
    prompt run it once, models/sequences.py). `how`: logits (default True), dtype (row_bytes')."""
    layer_bytes = 2 if how.get("dtype", "fp32") == "bf16" else FLOAT_BYTES
    width = HIDDEN_COPIES * dims.hidden + MLP_COPIES * dims.intermediate
    floats = logit_floats = 0
    for p, t, new in zip(prompt_tokens, response_tokens, new_prompt, strict=True):
        floats += (p + t if new else t) * (width + dims.heads * (p + t))
        logit_floats += _logit_floats(dims, t) if how.get("logits", True) else 0
    return layer_bytes * dims.layers * floats + FLOAT_BYTES * logit_floats


def forward_row_bytes(dims: Dims, prompt_tokens: int, response_tokens: int) -> int:
    """Bytes of one sequence in a forward without a graph (step 3's, the reference's and evaluation's
    log-probs): the KV cache of its P + T positions (the forward over responses that share a prompt's
    cache holds it to the end) plus the larger of one layer's working set and NO_GRAPH_LOGIT_COPIES
    (T + 1, vocab) logits (that forward joins the first token's logits to the rest's: two copies at
    once). SmolLM2, 58 + 64 tokens: 29.7 MiB; 29.0-30.4 measured (benchmarks/forward_rows.py)."""
    L = prompt_tokens + response_tokens
    logits = NO_GRAPH_LOGIT_COPIES * (response_tokens + 1) * dims.vocab
    return FLOAT_BYTES * max(_layer_floats(dims, L), logits) + kv_bytes(dims, L)


def kv_bytes(dims: Dims, tokens: int) -> int:
    """Bytes of one sequence's KV cache of `tokens` positions: keys and values of every layer (fp32)."""
    return FLOAT_BYTES * 2 * dims.layers * (dims.kv_width or dims.hidden) * tokens


def divergence_copies(beta: float) -> float:
    """fp32 (T, V) copies an update row holds for GKD's JSD_beta to the teacher (MIXTURE/LIMIT_COPIES)."""
    return rl_distill.jsd_row_copies(beta)


def divergence_bytes(dims: Dims, response_tokens: int, copies: float) -> int:
    """Bytes a row's divergence to the teacher adds to its update forward: `copies` (T, V) fp32 tensors,
    every position (the divergence reads a padded row: no packing)."""
    return int(FLOAT_BYTES * copies * response_tokens * dims.vocab)


def parameter_bytes(modules, trainable: bool = False) -> int:
    """Bytes of the distinct parameters of `modules` (tied ones once); `trainable`: those with a gradient."""
    seen: dict[int, int] = {}
    for m in modules:
        for p in m.parameters():
            if not trainable or p.requires_grad:
                seen[id(p)] = p.numel() * p.element_size()
    return sum(seen.values())


def held_modules(obj, depth: int = 5) -> list:
    """The torch modules a scorer or judge holds (a learned or HF reward model): found in its closure
    and attributes, `depth` levels down."""
    if isinstance(obj, torch.nn.Module):
        return [obj]
    if depth == 0 or obj is None or isinstance(obj, str | int | float | bool | type | ModuleType):
        return []  # a class or module is not held by the scorer: its descriptors are not values
    if isinstance(obj, list | tuple):
        inner = list(obj)
    else:
        cells = getattr(obj, "__closure__", None)  # a closure's cells are filled once it exists
        attrs = getattr(obj, "__dict__", None)
        inner = [c.cell_contents for c in cells] if isinstance(cells, tuple) else []
        inner += list(attrs.values()) if isinstance(attrs, dict) else []
    return [m for x in inner for m in held_modules(x, depth - 1)]
