"""Micro-batches: the one place a forward is split by rows (train.micro_batch_size), for every loop and
stage. How many rows `auto` gives them is the memory model's choice (train/memory/); a loop only ever
sees an int or None.

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

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from align_lab.models.sequences import attended


def chunks(n: int, size: int | None) -> list[slice]:
    """Row slices of micro-batches of `size` rows over n rows; one slice when size is None or >= n."""
    if not (size is None or isinstance(size, int)):  # "auto" is planned when a Context is built
        raise TypeError(f"micro-batch size {size!r}: rows or None; train/memory/planner.py plans 'auto'")
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
        results = []  # a loop, not a comprehension: one call frame fewer above every loss
        for t in terms:
            results.append(t.loss(_graph_outputs(t), t.rows))
        total = _scaled(results[0][0], terms[0].scale)
        for t, (loss, _) in zip(terms[1:], results[1:], strict=True):
            total = total + _scaled(loss, t.scale)
        backward(total)
        return [(loss.detach(), stats) for loss, stats in results]
    return [_micro_batched(t, backward, size) for t in terms]


@dataclass(frozen=True)
class Rows:
    """What a forward over responses needs, (B, ·) each: prompt ids and mask (left-padded), response
    ids, the tokens it attends (the policy's and the observations') and the policy's tokens (`mask`)."""

    prompt_ids: Tensor
    prompt_attn: Tensor
    response_ids: Tensor
    attend: Tensor
    mask: Tensor

    @classmethod
    def of(cls, batch) -> Rows:
        """The rows of Samples or a Rollout (their `attend` is None for single-turn: the mask)."""
        attend = attended(batch.mask, batch.attend)
        return cls(batch.prompt_ids, batch.prompt_attn, batch.response_ids, attend, batch.mask)

    def select(self, index) -> Rows:
        """The rows `index` (a tensor of rows or a slice)."""
        return Rows(*(getattr(self, f.name)[index] for f in fields(self)))

    def tensors(self) -> tuple:
        """As micro.forward and the token budget take them: fields in order, rows first."""
        return tuple(getattr(self, f.name) for f in fields(self))

    def __len__(self) -> int:
        return len(self.mask)
