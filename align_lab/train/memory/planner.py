"""The memory model of a run (docs/memory.md): its predicted peak resident memory, term by term, and
`train.micro_batch_size: auto` planned from it, the one place rows per micro-batch are chosen (the run's
Context, train/context.py; the SFT and reward-model stages, run/stages.py; an online update's forwards
within the bytes planned here, by their rows' tokens: train/memory/token_budget.py). A run's peak is what it
holds throughout (runtime, weights, AdamW's moments) plus its largest phase: an update (gradients + a
micro-batch's activations; whole: the larger of a batch's activations and its gradients, which its
backward fills as it frees them), the rollout's no-graph forwards (the online loop's step 3 and the
reference's: beside step 3's graph when the first update keeps it), sampling (a KV cache) or
evaluation's no-graph forwards. An update's graph holds a minibatch's rows, not the rollout's. `auto` gives
each phase it sizes an allowance: on a CPU a quarter of what the update holds anyway (larger
micro-batches are no faster there), never more than the budget leaves; on a GPU an eighth of the budget."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from align_lab.models.lora import causal_lm
from align_lab.models.packing import packs
from align_lab.models.sequences import caches_with_grad
from align_lab.train.memory.footprint import (
    FLOAT_BYTES,
    Dims,
    divergence_bytes,
    forward_row_bytes,
    kv_bytes,
    parameter_bytes,
    row_bytes,
)
from align_lab.train.memory.kept import kept_row_bytes
from align_lab.train.memory.peak import Peak
from align_lab.train.memory.plan_lines import describe, log_plan
from align_lab.train.memory.token_budget import Budget, realized_peak
from align_lab.train.micro import whole

log = logging.getLogger("align_lab")

GiB, MiB = 2**30, 2**20
# a graph row's peak is more than the floats it keeps: the backward's transient logit gradients and the
# allocator's rounding. SmolLM2, 58 + 64 tokens: 261-276 MB a row measured (docs/memory.md) against
# row_bytes' 195 MB
BACKWARD = 1.4
# the process before any model: the interpreter, torch, transformers, align_lab and Hydra imported, a
# tokenizer, a task (a toy run, tracker=none, stages cached, peaks at 441 MiB with 13 MiB of models;
# stages built in the process and W&B are not in it: docs/memory.md)
RUNTIME = 440 * MiB
ADAM_MOMENTS = 2  # AdamW's exp_avg and exp_avg_sq, each the size of the trained parameters
SHARE = 1 / 4  # CPU: activations at most this share of what the update holds without them
GPU_SHARE = 1 / 8  # GPU: activations at most this share of its memory
# micro-batching an update costs a no-grad forward more (+27-60% on a CPU, docs/memory.md): whole within this
WHOLE_FACTOR = 4
STAGE_WHOLE_FACTOR = 2  # the SFT and reward-model stages keep 2: their sizes are in their stage keys


def response_tokens(task, env=None, max_positions: int | None = None) -> int:
    """Tokens after the prompt a row holds: task.max_response_tokens, or for a multi-turn env the whole
    conversation (policy turns and observations, rollout/turns.py): env.max_conversation_tokens, else
    max_turns turns with an observation as long between each two; within the model's positions."""
    if not getattr(env, "multi_turn", False):
        return task.max_response_tokens
    tokens = getattr(env, "max_conversation_tokens", None)
    tokens = tokens or task.max_response_tokens * (2 * env.max_turns - 1)
    return min(tokens, max_positions - task.max_prompt_tokens) if max_positions else tokens


def prompt_tokens(task) -> int:
    """The longest prompt the policy reads: its view's longest kept prompt, else the task's limit."""
    return getattr(task, "longest_prompt_tokens", 0) or task.max_prompt_tokens


def machine_memory() -> int:
    """This machine's memory in bytes: physical memory, or the cgroup's limit when lower (a container,
    a Slurm job). Totals, not what is free now: the same machine and command choose the same sizes."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        text = Path(path).read_text().strip() if os.path.isfile(path) else ""  # closed after the read
        total = min(total, int(text)) if text.isdigit() else total
    return total


def default_budget(device: str = "cpu", processes: int = 1) -> int:
    """A process's budget when hardware.memory_gb is not set: its GPU's memory (one GPU a process), else
    the machine's (machine_memory) shared by the node's `processes`."""
    if device == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)
    return machine_memory() // processes


def plan(
    setting,
    rows: int,
    per_row: int,
    allowance: int,
    whole_factor: float = WHOLE_FACTOR,
    left: int | None = None,
) -> int | None:
    """Rows per micro-batch: `setting` itself (an int, or None: whole batches), or for "auto": None
    (whole) when all `rows` fit whole_factor x `allowance` bytes and the bytes the budget leaves them
    (`left`, when given), else as many rows of `per_row` bytes as the allowance holds, at least 1."""
    if setting != "auto":
        return setting
    per_row = max(per_row, 1)
    if rows * per_row <= whole_room(allowance, whole_factor, left):
        return None
    return max(1, allowance // per_row)


def whole_room(allowance: int, whole_factor: float = WHOLE_FACTOR, left: int | None = None) -> int:
    """Bytes a whole batch's activations may take: whole_factor x `allowance`, within what the budget
    leaves them (`left`, when given; never less than the allowance)."""
    return int(
        whole_factor * allowance if left is None else min(whole_factor * allowance, max(left, allowance))
    )


def allowance(base: int, budget: int, gpu: bool = False) -> int:
    """Bytes auto gives a phase's activations or cache: GPU_SHARE of a GPU's budget; on a CPU SHARE of
    `base` (what the update holds without them), never more than the budget leaves (at least 0)."""
    if gpu:
        return int(GPU_SHARE * budget)
    return int(max(0, min(SHARE * base, budget - base)))


def trainer_floor(models, trained, gpu_bytes: int) -> int:
    """The least a trainer on a GPU of `gpu_bytes` keeps beside a colocated engine (vLLM's share): the
    runtime, the weights of `models`, the gradients and AdamW moments of `trained`, and GPU_SHARE of the
    GPU for activations (what `auto` gives them)."""
    grads = parameter_bytes([m for m in trained if m is not None], trainable=True)
    weights = parameter_bytes([m for m in models if m is not None])
    return RUNTIME + weights + (1 + ADAM_MOMENTS) * grads + int(GPU_SHARE * gpu_bytes)


def rows_in(n: int, size: int | None) -> int:
    return n if size is None else min(n, size)  # rows of the largest micro-batch of n


@dataclass(frozen=True)
class Planned:
    """A run's memory plan: its predicted peak and the rows per micro-batch of each forward (None:
    whole), never "auto"."""

    peak: Peak
    micro_batch_size: int | None  # the loop's update forwards (pairs in the pairwise loop)
    forward_micro_batch_size: int | None  # the online loop's no-graph forwards over the rollout
    eval_micro_batch_size: int | None  # evaluation's no-graph forwards
    eval_sample_rows: int | None  # rows evaluation samples at once (None: all)
    # an online update's forwards: the bytes `auto` allows them, their rows' prices (token_budget.py)
    budget: Budget | None = None


def update_row_bytes(dims: Dims, lengths: tuple[int, int], dtype: str, critic: bool, copies: float) -> int:
    """A graph row of an update at its longest (prompt, response `lengths`): the policy's activations
    x BACKWARD, the critic's body beside them (`critic`), and a divergence to the teacher of `copies`
    (T, V) tensors (footprint.divergence_bytes, measured: no BACKWARD factor)."""
    P, T = lengths
    row = int(BACKWARD * row_bytes(dims, P, T, dtype=dtype))
    if critic:  # the critic's body runs with a graph beside the policy's
        row += int(BACKWARD * row_bytes(dims, P, T, logits=False, dtype=dtype))
    return row + divergence_bytes(dims, T, copies)


def plan_run(setting, models, task, env, train, ranks: int = 1, pairwise: bool = False, **how) -> Planned:
    """`setting` (train.micro_batch_size: "auto", rows or None) planned for a run holding `models`
    (policy, reference or None, critic or None, then any others: reward models) on `task` (as the policy
    reads it) and `env`, with `train`'s batch sizes over `ranks` processes. `how`: budget (bytes; None:
    default_budget), whole_only (a DeepSpeed engine steps once per backward), dtype (hardware.dtype),
    reference_loads (False: a LoRA policy's frozen base serves evaluation), divergence_copies (fp32 (T, V)
    copies a row's divergence adds: footprint.py, GKD), weight_terms (context.py weight_terms)."""
    policy, reference, critic, *others = models
    dims = Dims.of(policy.config)
    P = prompt_tokens(task)
    T = response_tokens(task, env, getattr(policy.config, "max_position_embeddings", None))
    trained = parameter_bytes([m for m in (policy, critic) if m is not None], trainable=True)
    dtype, copies = how.get("dtype", "fp32"), how.get("divergence_copies", 0.0)
    row = update_row_bytes(dims, (P, T), dtype, critic is not None, copies)
    per_item = 2 if pairwise else 1  # a pairwise row is a pair of responses
    rows = -(-train.minibatch_size // ranks)  # an update's forward: this process's rows of a minibatch
    sampled = per_item * rows if pairwise else -(-train.rollout_size // ranks)  # this process's rollout
    loads_reference = reference is None and how.get("reference_loads", True)  # for evaluation only
    gpu = next(policy.parameters()).is_cuda
    budget = how.get("budget") or default_budget("cuda" if gpu else "cpu")
    held = RUNTIME + parameter_bytes([m for m in models if m is not None]) + ADAM_MOMENTS * trained
    room = allowance(held + trained, budget, gpu)
    left = budget - held - trained  # what the budget leaves the update's activations
    whole_only = setting == "auto" and how.get("whole_only")
    micro = plan(None if whole_only else setting, rows, per_item * row, room, left=left)
    n_eval = len(task.prompts("eval")) * train.eval_samples
    eval_micro = plan(setting, n_eval, forward_row_bytes(dims, P, T), room, whole_factor=1)
    # the online loop's step 3 and reference forwards over the rollout (the pairwise loop's: `micro`)
    forward_micro = plan(setting, 0 if pairwise else sampled, forward_row_bytes(dims, P, T), room, 1)
    # step 3 keeps its graph for the first update: one minibatch of the whole rollout, one forward
    kept = not pairwise and train.minibatch_size == train.rollout_size and ranks == 1 and whole(rows, micro)
    kv_row = kv_bytes(dims, 2 * P + T)  # the prompts' cache is copied into one of P + T positions
    sample_rows = plan(setting if setting == "auto" else None, n_eval, kv_row, room, 1)
    peak = Peak(
        runtime=RUNTIME,
        weights=held - RUNTIME - ADAM_MOMENTS * trained,
        gradients=trained,
        optimiser=ADAM_MOMENTS * trained,
        train_row=per_item * row,
        train_rows=rows_in(rows, micro),
        forward_rows=0 if pairwise else rows_in(sampled, forward_micro),
        eval_row=forward_row_bytes(dims, P, T),
        eval_rows=rows_in(n_eval, eval_micro),
        eval_reference=parameter_bytes([policy]) if loads_reference else 0,
        kv_row=kv_row,
        rollout_rows=sampled,
        sample_rows=rows_in(n_eval, sample_rows),
        eval_kept=n_eval * kept_row_bytes(P, T),
        whole_update=whole(rows, micro),
        graph_kept=kept,
        **how.get("weight_terms", {}),  # packed, snapshot, engine_copy, offloaded: context.py weight_terms
    )
    chooses, cap = setting == "auto" and not whole_only, None if gpu else micro  # else the set size runs
    # DeepSpeed: whole minibatches, its ZeRO-3 forwards share no prompt (the plan's figure stands)
    priced = not (pairwise or how.get("whole_only"))
    how_priced = (dtype, cap, chooses, copies)
    prices = update_budget(policy, critic, dims, (room, left), *how_priced) if priced else None
    planned = Planned(peak, micro, forward_micro, eval_micro, sample_rows, prices)
    log_plan(planned, setting, (rows, sampled, n_eval), room, pairwise)
    return planned


def update_budget(
    policy, critic, dims: Dims, rooms: tuple[int, int], dtype: str, rows, chooses, copies: float = 0.0
) -> Budget:
    """What `auto` allows an online update's forwards (train/memory/token_budget.py) from `rooms` (the
    allowance, what the budget leaves), at most `rows` a micro-batch (None: as many as the allowance
    holds); `chooses`: False where a set size runs (the budget then prices what it ran); `copies`: a
    row's divergence to the teacher (footprint.divergence_copies; 0: none)."""
    (room, left), model = rooms, causal_lm(policy)
    shares = caches_with_grad(model)  # else every row runs its prompt, padded (models/sequences.py)
    whole = whole_room(room, WHOLE_FACTOR, left)
    packed = packs(model) and shares and critic is None  # the critic's forward runs padded
    packed = packed and not copies  # the divergence reads every position of a padded row
    critic_rows = critic is not None
    return Budget(dims, room, whole, BACKWARD, dtype, critic_rows, packed, rows, chooses, shares, copies)


def record(planned: Planned, realized: dict | None = None, offloaded: bool = True) -> dict:
    """The plan in a run's summary.json: rows chosen and the predicted peak (MiB, as memory/peak_mb);
    with `realized` (what its online updates ran, train/memory/token_budget.py) the peak predicted for the
    rows the run had, and the rows per micro-batch it ran (null: whole); the reference's MiB out of memory
    between its forwards (hardware.offload_reference; 0: in memory throughout, or none). `offloaded`
    False: the plan's offloaded reference stayed in memory (its file could not be written), priced so."""
    peak = realized_peak(planned.peak, realized or {})
    peak = peak if offloaded else replace(peak, offloaded=0)
    sizes = sorted((realized or {}).get("sizes", ()), key=lambda size: size or 0)
    rows = planned.micro_batch_size if not sizes else sizes[0] if len(sizes) == 1 else sizes
    predicted = {"memory/predicted_peak_mb": round(peak.total / MiB, 1)}
    offloaded = {"memory/offloaded_reference_mb": round(peak.offloaded / MiB, 1)}
    return {"train/micro_batch_size_resolved": rows} | predicted | offloaded


def stage_plan(stage: str, setting, dims: Dims, rows: int, per_row: int, budget: int) -> int | None:
    """`setting` for a stage that trains one model of `dims` (SFT, a reward model) on forwards of up to
    `rows` rows of `per_row` activation bytes: it holds the runtime, weights, gradients and AdamW's
    moments of dims.parameters(); logged."""
    base = RUNTIME + (2 + ADAM_MOMENTS) * FLOAT_BYTES * dims.parameters()
    room = allowance(base, budget)
    chosen = plan(setting, rows, int(BACKWARD * per_row), room, STAGE_WHOLE_FACTOR, budget - base)
    log.info(describe(f"{stage} stage", setting, chosen, rows, int(BACKWARD * per_row), room))
    return chosen
