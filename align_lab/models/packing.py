"""A prompt's responses packed end to end into shared rows, for the training forward over them (`pack`).

The G responses of a prompt end at different lengths and a batch pads each to the longest, so its
forward and backward also run over the padding: on SmolLM2's arith_word GRPO (2 prompts x 4 samples of
up to 64 tokens) ~40% of the response positions. Packed, each prompt's responses lie end to end in as
few rows as hold them (first-fit decreasing; a packed row is as long as the longest response). A packed
row attends its prompt's keys and values (each distinct prompt runs once, models/sequences.py) and each
response within it only its own earlier tokens (`Packing.attention_mask`, block-diagonal and causal),
at the positions the joint forward gives it: the same values up to float rounding
(tests/unit/models/test_packing.py). docs/rollout.md, "The update: responses packed".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# transformers models whose attention reads a 4-D boolean mask as it is given (sdpa), with no sliding window
PACKED_MODEL_TYPES = ("llama", "qwen2", "qwen3")


def packs(model) -> bool:
    """Whether `model`'s forward attends exactly the mask `Packing.attention_mask` gives: a Llama or Qwen
    model on SDPA attention (the masks of other attention implementations and model classes are built
    differently), every layer attending all earlier positions (no sliding window)."""
    cfg = getattr(model, "config", None)
    return (
        getattr(cfg, "model_type", None) in PACKED_MODEL_TYPES
        and getattr(cfg, "_attn_implementation", None) == "sdpa"
        and not getattr(cfg, "use_sliding_window", False)
        and all(kind == "full_attention" for kind in getattr(cfg, "layer_types", None) or ())
    )


@dataclass(frozen=True)
class Packing:
    """Where each batch row's response tokens lie in the packed rows. A row's response of n tokens puts
    its first n - 1 in a packed row (each predicts the next; token 0 is predicted by the prompt's last
    position, in the prompt's forward)."""

    prompt: Tensor  # (R,) the distinct prompt each packed row attends (an index among the distinct prompts)
    where: (
        Tensor  # (R, Q) each packed position's token, an index into the flattened (B, T) responses; -1: none
    )
    batch: int  # B rows
    width: int  # T response positions a row

    @property
    def positions(self) -> int:
        """Packed positions, R x Q: what a forward over the packed rows runs on."""
        return self.where.numel()

    def ids(self, response_ids: Tensor) -> Tensor:
        """The packed rows' input tokens, (R, Q) (padding: the batch's first token; nothing reads it)."""
        return response_ids.reshape(-1)[self.where.clamp(min=0)]

    def position_ids(self, prompt_attn: Tensor) -> Tensor:
        """Each packed token's position id, (R, Q): its row's prompt tokens + its response index, as the
        joint forward over prompt and response numbers it (models/sequences.py, `joint_inputs`)."""
        index = self.where.clamp(min=0)
        prompt_tokens = prompt_attn.sum(-1)[index // self.width]  # (R, Q)
        return prompt_tokens + index % self.width

    def labels(self, response_ids: Tensor) -> Tensor:
        """The token each packed position predicts (the next of its response), (R, Q)."""
        return response_ids.reshape(-1)[(self.where + 1).clamp(min=0)]

    def attention_mask(self, prompt_attn: Tensor) -> Tensor:
        """(R, 1, Q, P + Q), True = attend: its prompt's tokens (`prompt_attn`, (B', P) over the distinct
        prompts), then the tokens of its own response up to itself; padding attends only itself (a query
        that attends nothing gives NaN)."""
        real = self.where >= 0  # (R, Q)
        row = torch.where(real, self.where // self.width, -1)  # (R, Q)
        Q = row.shape[1]
        causal = torch.ones(Q, Q, dtype=torch.bool, device=row.device).tril()  # (Q, Q)
        own = (row[:, :, None] == row[:, None, :]) & real[:, :, None] & causal  # (R, Q, Q)
        own |= torch.eye(Q, dtype=torch.bool, device=row.device)
        prompt = prompt_attn[self.prompt].bool()[:, None, :] & real[:, :, None]  # (R, Q, P)
        return torch.cat([prompt, own], dim=-1)[:, None]  # (R, 1, Q, P + Q)

    def unpack(self, first: Tensor, packed: Tensor) -> Tensor:
        """Per-token values back in the batch's layout, (B, T): `first` (B, 1) at response position 0,
        `packed` (R, Q) at the token each packed position predicts; 0 past each response's end."""
        real = self.where >= 0
        index = torch.cat([self.where[real] + 1, torch.arange(self.batch, device=real.device) * self.width])
        values = torch.cat([packed[real], first[:, 0]])  # (N + B,)
        return values.new_zeros(self.batch * self.width).index_put((index,), values).view(self.batch, -1)


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


def pack(rows: Tensor, lengths: Tensor, width: int) -> Packing:
    """The packing of B responses: `rows` (B,) each row's distinct prompt (`shared_prompts`), `lengths`
    (B,) its response tokens (a prefix of its `width` positions)."""
    inputs = (lengths - 1).clamp(min=0).tolist()  # tokens a row puts in a packed row
    capacity = max([1, *inputs])
    packed = bins(rows.tolist(), inputs, capacity)
    where = torch.full((len(packed), capacity), -1, dtype=torch.long)  # (R, Q)
    for i, (_, segments) in enumerate(packed):
        for r, start in segments:
            where[i, start : start + inputs[r]] = r * width + torch.arange(inputs[r])
    prompt = torch.tensor([p for p, _ in packed], dtype=torch.long)  # (R,)
    return Packing(prompt.to(rows.device), where.to(rows.device), len(inputs), width)
