"""Micro-batches: the one place a forward is split by rows (train.micro_batch_size), for every loop and
stage, and the `auto` choice of their size from a memory budget.

`forward` runs a model over micro-batches of rows (no gradient, or one forward with a graph). `accumulate`
takes one update's gradients of a loss made of terms, each a function of a model's outputs on its
rows. With no micro-batching each term's forward keeps its graph and the summed loss is backpropagated
once. With micro-batches a term's loss is computed on detached whole-batch outputs, its gradient with
respect to those outputs is taken, then each micro-batch's forward runs with a graph and is
backpropagated against its rows of that gradient: the parameter gradients add up to the whole batch's,
for any loss (group statistics, token means, whitening). A `separable` term (a sum over rows with a
fixed normaliser, such as a token NLL) skips the detached pass: each micro-batch's own share of the
loss is backpropagated.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

log = logging.getLogger("align_lab")

GiB = 2**30
MAX_BYTES = GiB  # one micro-batch's activations at most; docs/memory.md has the measurements
SHARE = 1 / 8  # ... and at most this share of the memory budget (small machines)
# Micro-batching costs a no-grad forward of the whole batch more (16.6 vs 13.1 s for 16 SmolLM2
# responses, docs/memory.md), so a batch whose activations fit this many MAX_BYTES runs whole: a split
# would save at most one MAX_BYTES for that time
WHOLE_FACTOR = 2
FLOAT_BYTES = 4  # fp32 activations (bf16 autocast keeps fewer bytes: the estimate stays an upper bound)
# floats kept for the backward pass per token and layer of a Llama-style block: about 6 hidden-size
# tensors (norm inputs and outputs, q, k, v, attention output) and 4 MLP-width ones (gate, up, act, product)
HIDDEN_COPIES, MLP_COPIES = 6, 4
LOGIT_COPIES = 3  # fp32 (T, V) logits per response, their gradient and the softmax of the backward pass


def chunks(n: int, size: int | None) -> list[slice]:
    """Row slices of micro-batches of `size` rows over n rows; one slice when size is None or >= n."""
    step = n if size is None or size >= n else size
    return [slice(i, i + step) for i in range(0, n, step)] if n else [slice(0, 0)]


def whole(n: int, size: int | None) -> bool:
    """Whether n rows are one forward (no micro-batching) at this size."""
    return len(chunks(n, size)) == 1


def rows_of(size: int | None, per_item: int) -> int | None:
    """A size counted in items (pairs) as rows of the forward (`per_item` responses each)."""
    return None if size is None else size * per_item


def _join(outs: list):
    """Micro-batch outputs joined along rows: a tensor, or a tuple of tensors and Nones."""
    if len(outs) == 1:
        return outs[0]
    if isinstance(outs[0], Tensor):
        return torch.cat(outs)
    return tuple(None if parts[0] is None else torch.cat(parts) for parts in zip(*outs, strict=True))


def forward(fn: Callable, rows: tuple, size: int | None, graph: bool = False):
    """fn(*row slices of `rows`) over micro-batches of `size` rows, outputs joined along rows as one
    call returns them. `rows`: tensors or lists, rows first. No gradient, unless `graph` and the rows
    are one forward (the online loop's step 3, whose graph the first update reuses)."""
    n = len(rows[0])
    with torch.set_grad_enabled(graph and whole(n, size)):
        return _join([fn(*(r[s] for r in rows)) for s in chunks(n, size)])


@dataclass
class Term:
    """One term of a loss: scale * loss(forward(*rows), rows)[0]; loss returns (value, stats).

    `outputs`: forward(*rows) already run (reused: with a graph as they are, detached as the loss's
    inputs when micro-batching). `separable`: the loss of some rows' outputs, given those rows, adds up
    over micro-batches to the whole batch's (no detached pass)."""

    forward: Callable
    rows: tuple
    loss: Callable
    scale: float = 1.0
    separable: bool = False
    outputs: object = None


def _scaled(loss: Tensor, scale: float) -> Tensor:
    return loss if scale == 1.0 else loss * scale


def _graph_outputs(term: Term):
    """The term's outputs with a graph: the reused ones when they have one, else a forward."""
    outs = term.outputs if isinstance(term.outputs, tuple) else (term.outputs,)
    if any(isinstance(o, Tensor) and o.requires_grad for o in outs):
        return term.outputs
    return term.forward(*term.rows)


def _micro_batched(term: Term, backward: Callable, size: int) -> tuple[Tensor, dict]:
    """One term's gradients, micro-batch by micro-batch (module docstring); returns its loss and stats."""
    n = len(term.rows[0])
    if term.separable:
        value = torch.zeros(())
        for s in chunks(n, size):
            rows = tuple(r[s] for r in term.rows)
            loss, _ = term.loss(term.forward(*rows), rows)
            backward(_scaled(loss, term.scale))
            value = value + loss.detach()
        return value, {}
    outputs = term.outputs if term.outputs is not None else forward(term.forward, term.rows, size)
    single = isinstance(outputs, Tensor)
    leaves = [None if o is None else o.detach().requires_grad_() for o in ((outputs,) if single else outputs)]
    loss, stats = term.loss(leaves[0] if single else tuple(leaves), term.rows)
    wrt = [x for x in leaves if x is not None]
    found = torch.autograd.grad(_scaled(loss, term.scale), wrt, allow_unused=True)
    grads = dict(zip(map(id, wrt), found, strict=True))
    grads = [None if x is None else grads[id(x)] for x in leaves]  # dL/d(outputs), None: not in the loss
    for s in chunks(n, size):
        out = term.forward(*(r[s] for r in term.rows))
        out = (out,) if single else out
        parts = [
            (o * g[s]).sum() for o, g in zip(out, grads, strict=True) if g is not None and o.requires_grad
        ]
        if parts:
            backward(sum(parts))
    return loss.detach(), stats


def accumulate(terms: list[Term], backward: Callable, size: int | None) -> list[tuple[Tensor, dict]]:
    """The gradients of sum(scale * loss) over `terms`, filled by `backward(loss tensor)`; each term's
    (loss, stats), the loss unscaled and detached. Without micro-batching (size None, or no term's rows
    over it) every forward keeps its graph and backward runs once, on the sum."""
    if all(whole(len(t.rows[0]), size) for t in terms):
        results = [t.loss(_graph_outputs(t), t.rows) for t in terms]
        total = _scaled(results[0][0], terms[0].scale)
        for t, (loss, _) in zip(terms[1:], results[1:], strict=True):
            total = total + _scaled(loss, t.scale)
        backward(total)
        return [(loss.detach(), stats) for loss, stats in results]
    return [_micro_batched(t, backward, size) for t in terms]


# --- train.micro_batch_size=auto ---------------------------------------------------------------------


@dataclass(frozen=True)
class Dims:
    """What sets a decoder's activation memory: widths, depth, vocabulary (from an HF config)."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    vocab: int

    @classmethod
    def of(cls, config) -> Dims:
        return cls(
            config.hidden_size,
            config.num_hidden_layers,
            config.intermediate_size,
            config.num_attention_heads,
            config.vocab_size,
        )


def _layer_floats(dims: Dims, tokens: int) -> int:
    """Floats one layer keeps for `tokens` tokens of one sequence: HIDDEN_COPIES x hidden +
    MLP_COPIES x intermediate + heads x L attention weights per token."""
    return tokens * (HIDDEN_COPIES * dims.hidden + MLP_COPIES * dims.intermediate + dims.heads * tokens)


def _logit_floats(dims: Dims, response_tokens: int) -> int:
    """LOGIT_COPIES fp32 (response + 1, vocab) copies: logits, their gradient, the backward's softmax."""
    return LOGIT_COPIES * (response_tokens + 1) * dims.vocab


def row_bytes(dims: Dims, prompt_tokens: int, response_tokens: int, logits: bool = True) -> int:
    """Bytes of one sequence's activations kept for the backward pass (fp32): every layer's
    _layer_floats over L = prompt + response tokens, and with `logits` (a causal LM's log-probs) the
    _logit_floats."""
    floats = dims.layers * _layer_floats(dims, prompt_tokens + response_tokens)
    if logits:
        floats += _logit_floats(dims, response_tokens)
    return FLOAT_BYTES * floats


def forward_row_bytes(dims: Dims, prompt_tokens: int, response_tokens: int) -> int:
    """Bytes of one sequence in a forward without a graph (evaluation's log-probs): one layer's working
    set at a time plus the logits."""
    layer = _layer_floats(dims, prompt_tokens + response_tokens)
    return FLOAT_BYTES * (layer + _logit_floats(dims, response_tokens))


def budget_bytes(budget: int, cap: int | None = MAX_BYTES) -> int:
    """The activations one micro-batch may hold: `cap` (MAX_BYTES: a CPU's), or SHARE of the budget if
    smaller; cap None (a GPU, which computes a larger micro-batch faster): SHARE of the budget."""
    return int(SHARE * budget if cap is None else min(cap, SHARE * budget))


def choose(
    setting: int | str | None, rows: int, bytes_per_row: int, budget: int, cap: int | None = MAX_BYTES
) -> int | None:
    """Rows per micro-batch: `setting` itself (an int, or None: whole batches), or for "auto": None
    (whole) when all `rows` fit in WHOLE_FACTOR x budget_bytes(budget), else as many rows as
    budget_bytes(budget) holds at bytes_per_row, at least 1."""
    if setting != "auto":
        return setting
    per_row = max(bytes_per_row, 1)
    if rows * per_row <= WHOLE_FACTOR * budget_bytes(budget, cap):
        return None
    return max(1, budget_bytes(budget, cap) // per_row)


def machine_memory() -> int:
    """This machine's memory in bytes: physical memory, or the cgroup's limit when lower (a container,
    a Slurm job). Totals, not what is free now: the same machine and command choose the same sizes."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def describe(
    where: str, setting, chosen: int | None, rows: int, bytes_per_row: int, budget: int, cap=MAX_BYTES
) -> str:
    """The one line a run logs about the choice for `where` (the loop, a stage)."""
    if setting != "auto":
        return f"train.micro_batch_size={setting} ({where})"
    what = "whole batches" if chosen is None else f"{chosen} rows per forward"
    return (
        f"train.micro_batch_size=auto ({where}): {what} ({rows} rows at most, "
        f"~{bytes_per_row / 2**20:.3g} MiB of activations a row; "
        f"{budget_bytes(budget, cap) / 2**20:.0f} MiB for them of a {budget / GiB:.1f} GiB budget)"
    )
