"""DAPO's dynamic sampling in the online loop (Yu et al. 2025, section 3.2): a group whose G rewards are
all equal has zero advantage and trains nothing, so it is dropped and more prompts are sampled, with the
current policy, until the step holds its n_prompts groups. After max_resample_rounds extra rounds a short
step is filled with dropped groups (zero advantage; verl raises instead), and `train/dropped_groups`
counts the groups dropped while filling it; a step with no informative group after those rounds would
train nothing (rewards that never differ: a constant reward, a task the policy always or never solves),
so the run stops in one line (TrainsNothing). The loop reads algo.needs.dynamic_sampling (LoopNeeds)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import torch
from torch import Tensor

from align_lab.rl.dapo import informative_groups
from align_lab.rollout.base import Samples
from align_lab.value_checks import TrainsNothing, check


def check_dynamic_sampling(algo, train, processes: int) -> None:
    """Dynamic sampling runs on-policy in one process: resampled prompts come from the current policy."""
    if not algo.needs.dynamic_sampling:
        return
    why = "0 with dynamic sampling (extra prompts are sampled from the current policy)"
    check(train.max_staleness == 0, "train.max_staleness", train.max_staleness, why)
    check(processes == 1, "hardware.processes", processes, "1 with dynamic sampling (not yet data parallel)")


def _pad(x: Tensor, width: int, value, left: bool) -> Tensor:
    extra = torch.full((len(x), width - x.shape[1]), value, dtype=x.dtype)  # (b, width - w)
    return torch.cat([extra, x] if left else [x, extra], dim=1)


def concat_samples(parts: list[Samples], pad_id: int) -> Samples:
    """Rows of several Samples in order; tensors padded to the widest (prompt_* on the left)."""
    out = {}
    for f in fields(Samples):
        values = [getattr(p, f.name) for p in parts]
        if any(v is None for v in values):  # a field single-turn samples leave empty (attend, transcripts)
            out[f.name] = None
            continue
        if not isinstance(values[0], Tensor):
            out[f.name] = [v for value in values for v in value]
            continue
        width = max(v.shape[1] for v in values)
        fill = pad_id if f.name.endswith("_ids") else 0
        out[f.name] = torch.cat([_pad(v, width, fill, f.name.startswith("prompt")) for v in values])
    return Samples(**out)


def take_rows(samples: Samples, rows: Tensor) -> Samples:
    """The rows `rows` ((b,) bool or long) of Samples."""
    index = rows.nonzero().flatten() if rows.dtype == torch.bool else rows  # (k,)
    return Samples(**{
        f.name: getattr(samples, f.name)[index] if isinstance(getattr(samples, f.name), Tensor)
        else None if getattr(samples, f.name) is None
        else [getattr(samples, f.name)[i] for i in index.tolist()]
        for f in fields(Samples)
    })  # fmt: skip


def never_informative(scores: list[Tensor], group_size: int, rounds: int) -> TrainsNothing:
    """The one-line stop of a step whose every drawn group had equal rewards: it would train nothing."""
    drawn = torch.cat(scores)  # (rows drawn,)
    values = drawn.unique()
    seen = (
        f"every reward {values[0].item():g}"
        if len(values) == 1
        else f"rewards in [{drawn.min():g}, {drawn.max():g}]"
    )
    return TrainsNothing(
        f"algo.dynamic_sampling=true: none of the {len(drawn) // group_size} groups drawn in {rounds + 1} "
        f"rounds (algo.max_resample_rounds={rounds}) had rewards that differ ({seen}), so the step would "
        "train nothing; check the reward, or set algo.dynamic_sampling=false"
    )


def refill(
    samples: Samples,
    scores: Tensor,
    draw: Callable[[int], tuple[Samples, Tensor]],
    n_prompts: int,
    group_size: int,
    max_rounds: int,
    pad_id: int,
) -> tuple[Samples, Tensor, dict, tuple[int, int]]:
    """(samples, scores (n_prompts * G,), metrics, (tokens, rows) sampled and left out): the informative
    groups of `samples` and of up to max_rounds more draws (draw(round) samples and scores a fresh set
    of prompts), in sampling order, then dropped groups if still short. `scores` may carry more columns,
    (b, 1 + K): the score first, then what travels with each row (each reward source's score); draw
    returns the same columns, and so does refill."""
    kept, dropped, rounds = [], [], 0
    while True:
        reward = scores if scores.dim() == 1 else scores[:, 0]  # (b,)
        rows = informative_groups(reward, group_size).repeat_interleave(group_size)  # (b,)
        kept.append((take_rows(samples, rows), scores[rows]))
        dropped.append((take_rows(samples, ~rows), scores[~rows]))
        have = sum(len(s) for _, s in kept) // group_size
        if have >= n_prompts or rounds == max_rounds:
            break
        rounds += 1
        samples, scores = draw(rounds)
    if have == 0 and max_rounds > 0:
        raise never_informative([s if s.dim() == 1 else s[:, 0] for _, s in dropped], group_size, rounds)
    parts = kept + dropped
    everything = concat_samples([p for p, _ in parts], pad_id)
    n = n_prompts * group_size
    all_scores = torch.cat([s for _, s in parts])  # (rows drawn,)
    metrics = {
        "train/dropped_groups": float(sum(len(s) for _, s in dropped) // group_size),
        "train/resample_rounds": float(rounds),
        "train/kept_groups_short": float(max(n_prompts - have, 0)),
    }
    unused = (int(everything.mask[n:].sum()), len(all_scores) - n)
    return take_rows(everything, torch.arange(n)), all_scores[:n], metrics, unused
