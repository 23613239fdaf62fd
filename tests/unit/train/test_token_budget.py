"""train/memory/token_budget.py: `auto`'s rows per micro-batch of an online update from the tokens its rows
have, a shared prompt once (hand-derived numbers); the order micro-batched rows run in; what a run
records of it."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import torch

from align_lab.algorithms.base import Rollout
from align_lab.train.distributed import Group
from align_lab.train.ledger import Ledger
from align_lab.train.memory.footprint import (
    LIMIT_COPIES,
    MIXTURE_COPIES,
    Dims,
    divergence_bytes,
    divergence_copies,
    row_bytes,
    rows_bytes,
)
from align_lab.train.memory.planner import Peak, Planned, record
from align_lab.train.memory.token_budget import (
    Budget,
    choose,
    chunk_bytes,
    costs,
    first_update_rows,
    new_prompts,
    row_costs,
    update_rows,
)

TINY = Dims(hidden=2, layers=1, intermediate=3, heads=1, vocab=5)


def test_rows_bytes_by_hand_a_shared_prompt_once():
    # a token a layer keeps 6 x 2 + 4 x 3 = 24 floats and 1 head x its row's keys; logits 3 x (t + 1) x 5
    # one row, prompt 2 + response 3: 5 tokens x (24 + 5) = 145 floats, logits 3 x 4 x 5 = 60
    assert rows_bytes(TINY, [2], [3], [True]) == 4 * (145 + 60) == row_bytes(TINY, 2, 3) == 820
    # a second row on the same prompt runs its 3 response tokens only (each attends 5 keys)
    assert rows_bytes(TINY, [2, 2], [3, 3], [True, False]) == 820 + 4 * (3 * 29 + 60) == 1408
    # no logits (a critic's body); bf16 autocast: the layers' floats at 2 bytes
    assert rows_bytes(TINY, [2], [3], [True], logits=False) == 4 * 145
    assert rows_bytes(TINY, [2], [3], [True], dtype="bf16") == 2 * 145 + 4 * 60


def rows(prompts: list[list[int]], lengths: list[int], width: int = 4):
    """A forward's rows: left-padded prompt ids (P = 3) and responses of `lengths` tokens."""
    ids = torch.tensor([[0] * (3 - len(p)) + p for p in prompts])
    attn = torch.tensor([[0] * (3 - len(p)) + [1] * len(p) for p in prompts])
    mask = torch.tensor([[1] * n + [0] * (width - n) for n in lengths])
    return ids, attn, torch.ones_like(mask), mask, mask


def test_row_costs_are_each_rows_own_lengths_packed_and_the_widths_padded():
    ids, attn, _, attend, _ = rows([[7, 8], [7, 8], [9]], [3, 1, 4])
    assert new_prompts(ids, attn) == [True, False, True]
    own, prompt = row_costs(Budget(TINY, 0, 0, 1.0), ids, attn, attend)
    assert own == [rows_bytes(TINY, [2], [3], [False]), rows_bytes(TINY, [2], [1], [False]), 4 * 4 * 29 + 300]
    # a row's prompt: its 2 tokens through the layers, attending 2 + its response's keys
    assert prompt == [4 * 2 * 29, 4 * 2 * 27, 4 * 1 * 29]
    padded, _ = row_costs(Budget(TINY, 0, 0, 2.0, packed=False), ids, attn, attend)
    assert padded == [2 * rows_bytes(TINY, [3], [4], [False])] * 3  # P = 3, T = 4 each, x the factor
    # PPO's critic runs every row's prompt and response (models/scores.py): in each row's own bytes
    critic, critic_prompt = row_costs(Budget(TINY, 0, 0, 1.0, critic=True, packed=False), ids, attn, attend)
    body = rows_bytes(TINY, [3], [4], [True], logits=False)  # 7 tokens x 31 floats x 4 bytes
    assert body == 7 * 31 * 4 and critic == [padded[0] / 2 + body] * 3
    assert critic_prompt == [rows_bytes(TINY, [3], [4], [True]) - rows_bytes(TINY, [3], [4], [False])] * 3


def test_a_rows_divergence_to_the_teacher_is_priced_at_its_padded_width():
    # GKD's JSD adds `copies` fp32 (T, V) tensors a row, at the padded T = 4 (no packing): 2.5 x 4 x 5 x 4
    ids, attn, _, attend, _ = rows([[7, 8], [9]], [3, 1])
    plain, _ = row_costs(Budget(TINY, 0, 0, 1.0, packed=False), ids, attn, attend)
    gkd, _ = row_costs(Budget(TINY, 0, 0, 1.0, packed=False, divergence_copies=2.5), ids, attn, attend)
    assert [g - p for g, p in zip(gkd, plain, strict=True)] == [200, 200]
    assert divergence_bytes(TINY, 4, 2.5) == 200
    assert (
        divergence_copies(0.5) == MIXTURE_COPIES
        and divergence_copies(0.0) == divergence_copies(1.0) == LIMIT_COPIES
    )


def test_a_micro_batch_runs_the_prompts_that_start_in_it_and_its_first_rows():
    own, prompt, new = [10, 10, 10, 10], [5, 5, 5, 5], [True, False, False, True]
    assert chunk_bytes(own, prompt, new, 2) == [20 + 5, 20 + 5 + 5]  # the second starts mid-group
    assert chunk_bytes(own, prompt, new, 3) == [30 + 5, 10 + 5]
    assert chunk_bytes(own, prompt, new, 4) == [40 + 10]


def test_choose_runs_whole_within_its_bytes_else_the_most_rows_a_micro_batch_holds():
    batch = rows([[7, 8]] * 4, [2, 2, 2, 2])
    own, prompt = row_costs(Budget(TINY, 0, 0, 1.0), *batch[:2], batch[3])
    total = sum(own) + prompt[0]  # one group: its prompt once
    assert choose(Budget(TINY, 0, total, 1.0), batch) == (None, total)
    two = own[0] * 2 + prompt[0]
    assert choose(Budget(TINY, two, total - 1, 1.0), batch) == (2, two)
    assert choose(Budget(TINY, two - 1, total - 1, 1.0), batch) == (1, own[0] + prompt[0])
    assert choose(Budget(TINY, 0, 0, 1.0), batch)[0] == 1  # nothing fits: a row at a time
    assert choose(Budget(TINY, total, total - 1, 1.0, max_rows=2), batch)[0] == 2  # a CPU's rows


def ctx_of(budget, rank: int = 0, size: int = 1, micro=None):
    memory = Planned(None, micro, None, None, None, budget)
    train = SimpleNamespace(micro_batch_size=micro)
    return SimpleNamespace(memory=memory, train=train, group=Group(rank, size), ledger=Ledger())


def rollout_of(prompts, lengths) -> Rollout:
    ids, attn, response, mask, _ = rows(prompts, lengths)
    zeros = torch.zeros(len(ids))
    return Rollout(ids, attn, response, mask, mask.float(), zeros, signals={"reference": mask.float()})


def test_micro_batched_rows_run_in_rollout_order_the_same_on_every_process():
    rollout = rollout_of([[7, 8], [7, 8], [9, 9], [9, 9]], [4, 4, 4, 4])  # two groups of 2
    shuffled = torch.tensor([2, 0, 3, 1])
    assert update_rows(ctx_of(None, micro=3), rollout, shuffled) == (3, shuffled)  # no budget: as set
    # a set size runs as set, as the rows lie; the budget prices what it ran (3 rows, then 1)
    set_size = ctx_of(Budget(TINY, 0, 0, 1.0, chooses=False), micro=3)
    assert update_rows(set_size, rollout, shuffled) == (3, shuffled)
    own, prompt, new = costs(set_size.memory.budget, rows_of(rollout, shuffled))
    assert new == [True, True, True, True]  # as they lie no row shares the row before it's prompt
    assert set_size.ledger.realized == {"micro": sum(own[:3]) + sum(prompt[:3]), "sizes": {3}}
    update_rows(set_size, rollout, shuffled[:2])  # 2 rows at 3: one forward, whole
    realized = set_size.ledger.realized
    assert realized["whole"] == sum(own[:2]) + sum(prompt[:2]) and realized["sizes"] == {3}
    whole = ctx_of(Budget(TINY, 0, 10**9, 1.0))
    size, index = update_rows(whole, rollout, shuffled)
    assert size is None and torch.equal(index, shuffled)  # whole: the rows as they lie
    largest = choose(whole.memory.budget, rows_of(rollout, shuffled))[1]
    assert whole.ledger.realized == {"whole": largest, "sizes": {None}}
    micro = Budget(TINY, 10**9, 0, 1.0, max_rows=2)
    for rank in (0, 1):  # each process decides for every process's share: the same order
        size, index = update_rows(ctx_of(micro, rank, 2), rollout, shuffled)
        assert index.tolist() == [0, 1, 2, 3] and size == 1  # its 2 rows: 1 a micro-batch (n - 1)
    size, index = update_rows(ctx_of(micro), rollout, shuffled)
    assert size == 2 and index.tolist() == [0, 1, 2, 3]  # a group a micro-batch: its prompt once
    # PPO-ptx (`planned`): a term over demonstrations `choose` does not price: the plan's rows, as is
    planned = ctx_of(micro, micro=3)
    assert update_rows(planned, rollout, shuffled, planned=True) == (3, shuffled)
    assert planned.ledger.realized == {}
    assert first_update_rows(planned, rows_of(rollout, shuffled), planned=True) == 3
    kept = ctx_of(Budget(TINY, 0, 10**9, 1.0))  # step 3's rows fit whole: their graph is kept
    assert first_update_rows(kept, rows_of(rollout, shuffled)) is None
    assert kept.ledger.realized == {"kept": largest, "sizes": {None}}


def rows_of(rollout, index):
    from align_lab.train.memory.token_budget import rows_of as of

    return of(rollout, index)


def test_the_summary_records_the_rows_a_run_ran_and_their_predicted_peak():
    M = 2**20
    # held: runtime 100 + weights 1000 + optimiser 20 MiB; planned update: gradients 10 + 4 rows of 50
    peak = Peak(100 * M, 1000 * M, 10 * M, 20 * M, 50 * M, 4, 0, 0, 0, 0, 0, 0, 0)
    planned = Planned(peak, 4, None, None, None, Budget(TINY, 0, 0, 1.0))
    assert record(planned) == {
        "train/micro_batch_size_resolved": 4,
        "memory/predicted_peak_mb": 1330.0,
        "memory/offloaded_reference_mb": 0.0,
    }
    # ran whole, its largest forward 500 MiB: the update phase max(gradients, 500)
    summary = record(planned, {"whole": 500 * M, "sizes": {None}})
    assert (
        summary["train/micro_batch_size_resolved"] is None and summary["memory/predicted_peak_mb"] == 1620.0
    )
    # whole (100 MiB) and micro-batched (80 at most, at 2 or 3 rows): the larger, gradients + 80
    mixed = record(planned, {"whole": 100 * M, "micro": 80 * M, "sizes": {None, 2, 3}})
    assert (
        mixed["train/micro_batch_size_resolved"] == [None, 2, 3]
        and mixed["memory/predicted_peak_mb"] == 1220.0
    )
    # a reference out of memory between its forwards (hardware.offload_reference): its MiB recorded
    offloaded = record(dataclasses.replace(planned, peak=dataclasses.replace(peak, offloaded=500 * M)))
    assert offloaded["memory/offloaded_reference_mb"] == 500.0
    # a whole forward of 300 MiB beside micro-batches of 80: max(gradients, 300) is the larger
    both = record(planned, {"whole": 300 * M, "micro": 80 * M, "sizes": {None, 2}})
    assert both["memory/predicted_peak_mb"] == 1420.0
    # step 3's kept graph (200 MiB) is priced beside the rollout's no-graph forwards (3 rows of 30)
    peak = dataclasses.replace(peak, forward_rows=3, eval_row=30 * M)
    kept = record(dataclasses.replace(planned, peak=peak), {"kept": 200 * M, "sizes": {None}})
    assert kept["memory/predicted_peak_mb"] == 1120 + 200 + 90


def test_the_plan_prices_online_updates_and_lets_auto_choose_only_where_it_runs_them():
    from align_lab.train.common import TrainConfig
    from align_lab.train.memory.planner import GiB, plan_run
    from tests.unit.train.test_memory import arith_word, smollm2

    models, task, train = (smollm2(), None, None), arith_word(), TrainConfig()

    def budget(setting, **how):
        return plan_run(setting, models, task, None, train, budget=23 * GiB, **how).budget

    assert (
        budget("auto").chooses and budget("auto").shares and budget("auto").max_rows == 2
    )  # 2 at the longest
    assert not budget(4).chooses and not budget(None).chooses  # a set size runs as set: priced
    assert budget("auto", pairwise=True) is None  # the pairwise loop: the plan's rows
    assert budget("auto", whole_only=True) is None and budget(None, whole_only=True) is None  # DeepSpeed


def test_rows_that_cannot_share_a_prompts_forward_each_run_their_own():
    ids, attn, response, attend, mask = rows([[7, 8], [7, 8]], [2, 2])
    _, _, new = costs(Budget(TINY, 0, 0, 1.0), (ids, attn, response, attend, mask))
    assert new == [True, False]
    _, _, apart = costs(Budget(TINY, 0, 0, 1.0, shares=False), (ids, attn, response, attend, mask))
    assert apart == [True, True]  # gradient checkpointing, ZeRO-3: no cache with a graph to share
