"""`train.micro_batch_size: auto` for an online update, from the tokens its rows have (docs/memory.md):
the plan (train/memory/planner.py) gives the bytes a forward's activations may take, whole or a micro-batch
(`Budget`); each update forward's rows per micro-batch are chosen from its rows' own lengths, a
prompt its rows share counted once (models/sequences.py runs it once), as verl's dynamic batch size
chooses by tokens. A row planned at its longest (prompt + max_response_tokens, a prompt a row) costs
SmolLM2's GRPO groups 2-3x what they hold: planned so, its 16 rows ran as 2-row micro-batches, each
forward its rows' prompts again and unpacked, 3-5x the whole update's time for no lower peak.

Micro-batching only splits the forward (train/micro.py: the same update), so a micro-batched
minibatch's rows are put in rollout order first: a group's rows then lie together and share their
prompt's forward. Whole minibatches run as they lie, as before."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import accumulate

import torch

from align_lab.models.sequences import attended
from align_lab.train.distributed import Group
from align_lab.train.memory.footprint import Dims, divergence_bytes, rows_bytes


@dataclass(frozen=True)
class Budget:
    """What `auto` allows an online update's forward with a graph (bytes of activations): `whole`, a
    minibatch in one forward; else micro-batches of at most `micro`. The rows are priced with the
    plan's row model (footprint.rows_bytes x `factor`, train/memory/planner.py's BACKWARD)."""

    dims: Dims
    micro: int
    whole: int
    factor: float
    dtype: str = "fp32"
    critic: bool = False  # PPO's critic body runs with a graph beside the policy's (no logits)
    packed: bool = True  # responses run at their own lengths (models/packing.py); else padded
    # on a CPU the plan's rows at the longest: more rows a micro-batch buy no speed there (SmolLM2's
    # REINFORCE++ 64 x 64: 3 rows, +110 MiB, the same time as 2), a GPU's micro-batches fill `micro`
    max_rows: int | None = None
    chooses: bool = True  # False: a set train.micro_batch_size runs; the budget prices what it ran
    shares: bool = True  # rows share a prompt's forward (models/sequences.py caches_with_grad)
    divergence_copies: float = 0.0  # (T, V) copies a row's divergence to the teacher adds (GKD; 0: none)


def new_prompts(prompt_ids, prompt_attn) -> list[bool]:
    """Whether each row's prompt differs from the row before it's (the first row's: True), (B,)."""
    rows = torch.cat([prompt_ids, prompt_attn], 1)
    differs = (rows[1:] != rows[:-1]).any(-1).tolist()
    return [True, *differs][: len(rows)]


def row_costs(budget: Budget, prompt_ids, prompt_attn, attend) -> tuple[list[int], list[int]]:
    """Each row's bytes without its prompt, and its prompt's (what the first row of a group adds)."""
    B, (P, T) = len(attend), (prompt_ids.shape[1], attend.shape[1])
    lengths = zip(prompt_attn.sum(-1).tolist(), attend.sum(-1).tolist(), strict=True)
    prompt, response = zip(*lengths, strict=True) if budget.packed else ([P] * B, [T] * B)
    how = {"dtype": budget.dtype}

    # the critic runs every row's prompt and response padded, without logits (models/scores.py): its own
    critic = rows_bytes(budget.dims, [P], [T], [True], logits=False, **how) if budget.critic else 0

    def cost(p: int, t: int, new: bool) -> int:
        return int(budget.factor * rows_bytes(budget.dims, [p], [t], [new], **how))

    divergence = divergence_bytes(budget.dims, T, budget.divergence_copies)  # padded rows (footprint.py)
    extra = int(budget.factor * critic) + divergence
    own = [cost(p, t, False) + extra for p, t in zip(prompt, response, strict=True)]
    prompts = [cost(p, t, True) - cost(p, t, False) for p, t in zip(prompt, response, strict=True)]
    return own, prompts


def chunk_bytes(own: list[int], prompt: list[int], new: list[bool], size: int) -> list[int]:
    """Each micro-batch's bytes at `size` rows: its rows' own bytes and the prompts that start in it
    (a micro-batch's first row always runs its prompt)."""
    starts = [p if n else 0 for p, n in zip(prompt, new, strict=True)]  # prompts a group's first row runs
    own_sum, new_sum = [0, *accumulate(own)], [0, *accumulate(starts)]
    ends = [(s, min(s + size, len(own))) for s in range(0, len(own), size)]
    return [own_sum[e] - own_sum[s] + prompt[s] + new_sum[e] - new_sum[s + 1] for s, e in ends]


def costs(budget: Budget, rows: tuple) -> tuple[list[int], list[int], list[bool]]:
    """`row_costs` of a forward's `rows` (prompt ids, mask, response ids, attend, mask) and which rows
    start a prompt (`new_prompts`)."""
    prompt_ids, prompt_attn, _, attend, _ = rows
    new = new_prompts(prompt_ids, prompt_attn) if budget.shares else [True] * len(attend)
    return *row_costs(budget, prompt_ids, prompt_attn, attend), new


def choose(budget: Budget, rows: tuple) -> tuple[int | None, int]:
    """Rows per micro-batch for a forward over `rows`: None (whole) when all fit budget.whole, else the
    most rows (up to budget.max_rows) whose every micro-batch fits budget.micro (at least 1); and the
    bytes of its largest forward."""
    own, prompt, new = costs(budget, rows)
    total = max(chunk_bytes(own, prompt, new, len(own))) if own else 0
    if total <= budget.whole or len(own) <= 1:
        return None, total
    fits = budget.micro // max(1, min(own))  # no micro-batch of more rows fits
    for size in range(min(len(own) - 1, budget.max_rows or len(own), max(1, fits)), 0, -1):
        largest = max(chunk_bytes(own, prompt, new, size))
        if largest <= budget.micro or size == 1:
            return size, largest
    raise AssertionError("unreachable: size 1 always returns")


def priced(budget: Budget, rows: tuple, size: int | None) -> int:
    """The bytes of the largest forward over `rows` at `size` rows a micro-batch (None: whole)."""
    own, prompt, new = costs(budget, rows)
    return max(chunk_bytes(own, prompt, new, size or len(own))) if own else 0


def first_update_rows(ctx, rows: tuple, planned: bool = False) -> int | None:
    """Rows per micro-batch of the first update over step 3's `rows` as they lie (train/online.py keeps
    that forward's graph for it when they are one forward): the set size, or `auto`'s `choose`.
    `planned`: the plan's size, unrecorded (PPO-ptx: a term over demonstrations no budget prices)."""
    budget = ctx.memory.budget
    if budget is None or planned:
        return ctx.train.micro_batch_size
    size, largest = choose(budget, rows) if budget.chooses else (ctx.train.micro_batch_size, None)
    if size is None or size >= len(rows[0]):  # one forward: its graph is kept
        largest = priced(budget, rows, None) if largest is None else largest
        see(ctx.ledger.realized, size, largest, len(rows[0]), kept=True)
    return size


def update_rows(ctx, rollout, index: torch.Tensor, planned: bool = False) -> tuple[int | None, torch.Tensor]:
    """A minibatch's rows per micro-batch and its rows' order (`index` into the rollout): the set
    train.micro_batch_size (or with `planned` the plan's, as `first_update_rows`), or for `auto`
    (budget.chooses) `choose` over each process's share as the rows lie, and where some process's
    share needs micro-batches, over them in rollout order (the same order on every process: each
    decides for every process's share). Records what it ran (`see`)."""
    budget = ctx.memory.budget
    if budget is None or planned:
        return ctx.train.micro_batch_size, index
    own = ctx.group.shard(len(index))
    if not budget.chooses:
        size = ctx.train.micro_batch_size
        priced_rows = priced(budget, rows_of(rollout, index[own]), size)
        see(ctx.ledger.realized, size, priced_rows, own.stop - own.start)
        return size, index
    shares = [Group(rank, ctx.group.size).shard(len(index)) for rank in range(ctx.group.size)]
    chosen = [choose(budget, rows_of(rollout, index[s])) for s in shares]
    size, largest = chosen[ctx.group.rank]
    if any(c is not None for c, _ in chosen):  # micro-batches somewhere: every process in rollout order
        index = index.sort().values  # a group's rows together
        size, largest = choose(budget, rows_of(rollout, index[own]))
    see(ctx.ledger.realized, size, largest, own.stop - own.start)
    return size, index


def forward_rows(b) -> tuple:
    """The tensors a forward over responses needs, from Samples or a Rollout: prompt ids and mask,
    response ids, the tokens it attends (policy and observation tokens) and the policy's tokens."""
    return b.prompt_ids, b.prompt_attn, b.response_ids, attended(b.mask, b.attend), b.mask


def rows_of(rollout, index) -> tuple:
    """The forward's rows of a rollout's `index`."""
    return forward_rows(rollout.rows(index))


def see(realized: dict, size: int | None, largest: int, rows: int, kept: bool = False) -> None:
    """Adds an update forward over `rows` rows at `size` a micro-batch to what the run's process ran
    (`realized`): the largest forward's bytes of its whole updates, of its micro-batched ones, and of
    step 3's forwards whose graph it kept; the sizes it ran."""
    kind = "kept" if kept else "whole" if size is None or size >= rows else "micro"
    realized[kind] = max(realized.get(kind, 0), largest)
    realized.setdefault("sizes", set()).add(size)


def realized_peak(peak, realized: dict):
    """The plan's Peak with the update forwards the run ran (`see`) instead of its longest rows: the
    largest of its whole, micro-batched and kept forwards' peaks."""
    ran = [
        dataclasses.replace(
            peak,
            train_row=realized[kind],
            train_rows=1,
            whole_update=kind != "micro",
            graph_kept=kind == "kept",
        )
        for kind in ("whole", "micro", "kept")
        if kind in realized
    ]
    return max(ran, key=lambda p: p.total, default=peak)
