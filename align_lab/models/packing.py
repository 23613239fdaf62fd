"""Responses packed end to end into shared rows for the training forward over them.

Responses end at different lengths and a batch pads each to the longest (and each prompt to the
longest), so its forward and backward also run over the padding: on SmolLM2's arith_word GRPO (2
prompts x 4 samples of up to 64 tokens) ~40% of the response positions. Packed, they lie end to end in
as few rows as hold them (first-fit decreasing into rows 1-4 times the longest's length, whichever
costs least: `forward_cost`, positions and attention's pairs): the G responses of a prompt on that
prompt's KV cache (`pack`; each distinct prompt runs once, models/sequences.py), or, where no two rows
share a prompt, each prompt with its response (`pack_sequences`). Each token attends its prompt and the
earlier tokens of its own row only (`Packing.attention_mask`, block-diagonal and causal) at the positions
the joint forward gives it: the same values up to float rounding (tests/unit/models/test_packing.py).
docs/rollout.md, "The update: responses packed".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# transformers models whose attention reads a 4-D boolean mask as it is given (sdpa), with no sliding window
PACKED_MODEL_TYPES = ("llama", "qwen2", "qwen3")


def packs(model) -> bool:
    """Whether `model`'s forward attends exactly the mask `Packing.attention_mask` gives: a Llama or Qwen
    causal LM on SDPA attention (the masks of other attention implementations and model classes are built
    differently), every layer attending all earlier positions (no sliding window)."""
    cfg = getattr(model, "config", None)
    return (
        hasattr(model, "lm_head")  # the causal LM itself (its body `model.model`), not a wrapper of it
        and getattr(cfg, "model_type", None) in PACKED_MODEL_TYPES
        and getattr(cfg, "_attn_implementation", None) == "sdpa"
        and not getattr(cfg, "use_sliding_window", False)
        and all(kind == "full_attention" for kind in getattr(cfg, "layer_types", None) or ())
    )


@dataclass(frozen=True)
class Packing:
    """Where the rows' tokens lie in the packed rows, as indices into a table of the rows' tokens: their
    responses (B, T), each packed row on its prompt's KV cache (`pack`), or prompt and response (B,
    P + T), each prompt packed with its response (`pack_sequences`). A packed position predicts the next
    token of its row's table; those from response token 0 on are the outputs (`predicting`)."""

    prompt: Tensor | None  # (R,) the distinct prompt whose cache each packed row attends; None: no cache
    where: Tensor  # (R, Q) each packed position's token as an index into the flat table, or -1
    batch: int  # B rows
    width: int  # the table's columns: T (responses) or P + T (prompts and responses)
    lag: int  # the table's column of response token 0: 0 or P

    @property
    def positions(self) -> int:
        """Packed positions, R x Q: what a forward over the packed rows runs on."""
        return self.where.numel()

    def ids(self, table: Tensor) -> Tensor:
        """The packed rows' input tokens, (R, Q) (padding: the table's first token; nothing reads it)."""
        return table.reshape(-1)[self.where.clamp(min=0)]

    def labels(self, table: Tensor) -> Tensor:
        """The token each packed position predicts (the next of its row's table), (R, Q)."""
        return table.reshape(-1)[(self.where + 1).clamp(min=0)]

    def position_ids(self, prompt_attn: Tensor) -> Tensor:
        """Each packed token's position id, (R, Q), as the joint forward over prompt and response numbers
        it (models/sequences.py, `joint_inputs`): its row's prompt tokens + its response index."""
        index = self.where.clamp(min=0)
        prompt_tokens = prompt_attn.sum(-1)[index // self.width]  # (R, Q)
        return prompt_tokens + index % self.width - self.lag

    @property
    def predicting(self) -> Tensor:
        """(R, Q) True where a packed position predicts a response token (its output)."""
        return (self.where >= 0) & (self.where % self.width + 1 >= self.lag)

    def attention_mask(self, prompt_attn: Tensor | None) -> Tensor:
        """(R, 1, Q, [P +] Q), True = attend: with a cache, its prompt's tokens (`prompt_attn`, (B', P)
        over the distinct prompts); then its own row's tokens up to itself. Padding attends only itself
        (a query that attends nothing gives NaN)."""
        real = self.where >= 0  # (R, Q)
        row = torch.where(real, self.where // self.width, -1)  # (R, Q)
        Q = row.shape[1]
        causal = torch.ones(Q, Q, dtype=torch.bool, device=row.device).tril()  # (Q, Q)
        own = (row[:, :, None] == row[:, None, :]) & real[:, :, None] & causal  # (R, Q, Q)
        own |= torch.eye(Q, dtype=torch.bool, device=row.device)
        if self.prompt is None:
            return own[:, None]  # (R, 1, Q, Q)
        prompt = prompt_attn[self.prompt].bool()[:, None, :] & real[:, :, None]  # (R, Q, P)
        return torch.cat([prompt, own], dim=-1)[:, None]  # (R, 1, Q, P + Q)

    def unpack(self, packed: Tensor, first: Tensor | None = None) -> Tensor:
        """Per-token values back in the batch's layout, (B, T): `packed` (N,), the predicting positions'
        in order, at the response token each predicts, and `first` (B, 1) (from the prompts' forward,
        with a cache) at response token 0; 0 past each response's end."""
        index = self.where[self.predicting]  # (N,)
        T = self.width - self.lag
        index = index // self.width * T + index % self.width + 1 - self.lag  # (N,) into the flat (B, T)
        if first is not None:
            index = torch.cat([index, torch.arange(self.batch, device=index.device) * T])
            packed = torch.cat([packed, first[:, 0]])
        return packed.new_zeros(self.batch * T).index_put((index,), packed).view(self.batch, T)


def bins(prompts: list[int], lengths: list[int], capacity: int) -> list[tuple[int, list[tuple[int, int]]]]:
    """First-fit decreasing of each prompt's rows into packed rows of `capacity` positions: [(prompt,
    [(row, start), ...]), ...], the prompts in their order. `prompts[r]`: row r's distinct prompt;
    `lengths[r]`: the positions it fills (each <= capacity)."""
    packed = []
    for p in dict.fromkeys(prompts):
        mine: list[list] = []  # [free positions, [(row, start), ...]]
        for r in sorted((r for r, q in enumerate(prompts) if q == p), key=lambda r: -lengths[r]):
            row = next((b for b in mine if b[0] >= lengths[r]), None)
            if row is None:
                mine.append(row := [capacity, []])
            row[1].append((r, capacity - row[0]))
            row[0] -= lengths[r]
        packed += [(p, segments) for _, segments in mine]
    return packed


CAPACITIES = (1, 2, 3, 4)  # packed-row lengths tried, in multiples of the longest row's


PACKED_SHARE = 0.9  # pack only where the packed rows cost at most this share of the rows as they lie
# multiply-adds a packing must save besides: what its fixed extra costs (the prompts' own forward, a
# 4-D mask, the cache's reorder), ~2.5 ms at 1 thread on the AVX2 EPYC, ~68 positions of the toy policy
# (`python -m benchmarks run packed_update --hidden 64 --layers 2 --heads 2 --kv-heads 2 --ffn 128
# --vocab 300 --threads 1 --group 4 --lengths 16,9,12,5,16,7,11,14 --rounds 7`, AVX2 EPYC, 2026-11-28:
# 8 rows saving 32 positions 1.08x slower packed; with --group 8 and 64 rows
# saving 187 0.85x). A position of SmolLM2-135M is 1e8: there only PACKED_SHARE decides.
PACKING_OVERHEAD = 1e7


def layer_weights(model) -> int:
    """The multiply-adds of one position through every decoder layer's weights (`model` a Llama or Qwen
    causal LM): q and o, k and v, the MLP's three, from the config (a LoRA adapter's few not counted; no
    walk over the modules, which costs a tiny policy more than its forward)."""
    cfg = model.config
    d, heads = cfg.hidden_size, cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or d // heads
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    return cfg.num_hidden_layers * (
        2 * d * heads * head_dim + 2 * d * kv * head_dim + 3 * d * cfg.intermediate_size
    )


def pays(saved: float, model) -> bool:
    """Whether a forward that runs `saved` fewer positions (`forward_cost`'s) than the rows as they lie,
    at the price of a second forward, pays for it: saved x `layer_weights` >= PACKING_OVERHEAD."""
    return saved * layer_weights(model) >= PACKING_OVERHEAD


def pair_cost(model) -> float:
    """What attention adds for each key a position attends, as a share of the position's cost through
    the layer's weights: 4 x heads x head_dim FLOPs (q.k, then the weighted value) over 2 x the layer's
    weights, every layer alike. SmolLM2-135M: 3.3e-4 (~3,000 keys cost a position's weights again)."""
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return 2 * cfg.num_attention_heads * head_dim / sum(p.numel() for p in model.model.layers[0].parameters())


def forward_cost(rows: int, width: int, cached: int, pair: float) -> float:
    """A forward over `rows` rows of `width` positions, in positions: each position once, plus `pair`
    (`pair_cost`) for each key it attends: `cached` cached ones and its row's `width` (a 4-D mask runs
    every pair, the masked ones too). Longer packed rows save positions but add pairs."""
    return rows * width * (1 + pair * (cached + width))


def _densest(prompts: list[int], inputs: list[int], cached: int = 0, pair: float = 0.0) -> list:
    """`bins` at each of CAPACITIES x the longest row's inputs: the cheapest packing (`forward_cost` of
    its rows x its longest row; the shorter capacity where two tie). `pair` 0: the fewest positions."""
    longest = max([1, *inputs])
    options = [bins(prompts, inputs, k * longest) for k in CAPACITIES]
    return min(options, key=lambda packed: forward_cost(len(packed), _length(packed, inputs), cached, pair))


def _length(packed: list, inputs: list[int]) -> int:
    """The longest packed row's positions."""
    return max(max([1, *(start + inputs[r] for r, start in segments)]) for _, segments in packed)


def _where(packed: list, starts: list[int], inputs: list[int], width: int) -> Tensor:
    """(R, Q) table indices of `bins`' packing: row r's `inputs[r]` tokens from its column `starts[r]`."""
    where = torch.full((len(packed), _length(packed, inputs)), -1, dtype=torch.long)  # (R, Q)
    for i, (_, segments) in enumerate(packed):
        for r, start in segments:
            where[i, start : start + inputs[r]] = r * width + starts[r] + torch.arange(inputs[r])
    return where


def pack(rows: Tensor, lengths: Tensor, width: int, cached: int = 0, pair: float = 0.0) -> Packing:
    """The packing of B responses on their prompts' caches: `rows` (B,) each row's distinct prompt
    (`shared_prompts`), `lengths` (B,) its response tokens (a prefix of its `width` positions). A response
    of n tokens puts its first n - 1 in a packed row (token 0 is predicted by the prompt's forward).
    `cached` (the caches' columns) and `pair` price the rows' lengths (`_densest`)."""
    inputs = (lengths - 1).clamp(min=0).tolist()
    packed = _densest(rows.tolist(), inputs, cached, pair)
    where = _where(packed, [0] * len(inputs), inputs, width)
    prompt = torch.tensor([p for p, _ in packed], dtype=torch.long)  # (R,)
    return Packing(prompt.to(rows.device), where.to(rows.device), len(inputs), width, 0)


def pack_sequences(prompt_attn: Tensor, lengths: Tensor, width: int, pair: float = 0.0) -> Packing:
    """The packing of B prompts (left-padded: `prompt_attn` (B, P)) each with its response (`lengths`
    (B,) tokens of `width`): n prompt tokens and a response of m put n + m - 1 in a packed row. `pair`
    prices the rows' lengths (`_densest`)."""
    P = prompt_attn.shape[1]
    prompt_tokens, lengths = prompt_attn.sum(-1).tolist(), lengths.tolist()
    inputs = [n + m - 1 if m else 0 for n, m in zip(prompt_tokens, lengths, strict=True)]
    packed = _densest([0] * len(inputs), inputs, 0, pair)
    where = _where(packed, [P - n for n in prompt_tokens], inputs, P + width)
    return Packing(None, where.to(prompt_attn.device), len(inputs), P + width, P)
