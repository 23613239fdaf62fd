"""What a loop is handed: the loop's services (data, engines, settings) in one frozen object, built once
and never written after, and the run's models in one node of it (`Models`), which the Learner runs
(train/learner.py). `Context.build` plans the run's memory
(train/memory/planner.py): train.micro_batch_size "auto" becomes rows or None there, so no loop ever sees
"auto", however the Context was made (a run, a benchmark, a test). The plan is a builder's step, not
`__post_init__`'s, so constructing a Context runs nothing and a copy (dataclasses.replace) keeps it."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from align_lab.rollout.base import RolloutEngine
from align_lab.rollout.decode_matmul import packed_bytes
from align_lab.train.backend import Backend
from align_lab.train.common import TrainConfig
from align_lab.train.distributed import Group
from align_lab.train.ledger import Ledger
from align_lab.train.memory import Planned, held_modules, parameter_bytes, plan_run
from align_lab.train.submitit_signals import Preemption


@dataclass(frozen=True)
class Models:
    """The models a run holds, built by the run (run/build.py) and handed to the Learner that runs them
    (train/learner.py): the policy it trains, the critic, and the frozen models its signals read."""

    policy: torch.nn.Module
    reference: torch.nn.Module | None = None  # None: the algorithm reads no reference (no Reference signal)
    critic: torch.nn.Module | None = None
    teacher: torch.nn.Module | None = None  # a distillation's frozen teacher, SDPO's self-teacher copy
    # loads the frozen reference (the SFT policy) when training holds none, for evaluation only
    load_reference: Callable[[], torch.nn.Module] | None = None
    # the held reference out of memory between its forwards (models/offload.py Offloaded), or None
    offload: object = None

    @contextmanager
    def reference_in_memory(self) -> Iterator[torch.nn.Module | None]:
        """The held reference for a block of its forwards (step 3's, evaluation's): read back where
        hardware.offload_reference took it out of memory, and out again after the block, so its memory
        serves the update."""
        if self.offload is not None:
            self.offload.reload()
        try:
            yield self.reference
        finally:
            if self.offload is not None:
                self.offload.offload()

    def close(self) -> None:
        """A completed run's end: an offloaded reference back in memory for good, its file closed."""
        if self.offload is not None:
            self.offload.close()

    def discard(self) -> None:
        """A failed or stopped run's end: an offloaded reference's file let go of, its weights not read
        back (models/offload.py Offloaded.discard: never waits, allocates nothing)."""
        if self.offload is not None:
            self.offload.discard()

    @contextmanager
    def evaluation_reference(self) -> Iterator[torch.nn.Module]:
        """The reference evaluation compares with: the one training holds (in memory for the block), or,
        when it holds none (SimPO, ORPO, a KL-free online run), one loaded for the block and freed after
        it, so training's memory never holds it. Loading draws no number from the training RNG."""
        if self.reference is not None:
            with self.reference_in_memory() as reference:
                yield reference
            return
        with torch.random.fork_rng(devices=[]):
            reference = self.load_reference()
        try:
            yield reference
        finally:
            del reference
            gc.collect()


class View(NamedTuple):
    """The task as the policy reads it, for the Learner: SDPO's teacher prompts (train/signals.py)."""

    task: object
    tokenizer: object
    env: object = None


@dataclass(frozen=True)
class Context:
    """The loop's services, built by the run (run/execute.py); its models are one node, `models`."""

    task: object
    tokenizer: object
    models: Models  # policy, reference, critic, teacher: the Learner's to run
    scorer: object  # (prompts, responses, finished) -> (B,) tensor
    engine: RolloutEngine  # .sample(...) and .sync(model): rollout/base.py
    train: TrainConfig  # as set; once built, micro_batch_size is rows or None (planned), never "auto"
    tracker: object
    checkpoint_dir: Path
    seed: int
    progress: object  # tqdm-like factory
    preferences: list | None = None  # pairs, for the pairwise loop
    preemption: Preemption = field(default_factory=Preemption)  # USR2 -> checkpoint -> requeue
    judge: object = None  # evaluation win rates (rewards/judge.py); None: the run's reward
    group: Group = field(default_factory=Group)  # data-parallel rank and size (train/distributed.py)
    backend: Backend = field(default_factory=Backend)  # torch or DeepSpeed, dtype (train/backend.py)
    env: object = None  # the multi-turn environment (envs/, env=...); None or single_turn: one response
    # the cache keys of the shared stages (SFT, reward model, ...) the run trains on: each checkpoint
    # records them, and a resume on other stages is refused before any stage is built
    # (run/resume_stages.py resume_stage_check)
    stage_keys: dict[str, str] = field(default_factory=dict)
    # the run's identity (config digest and seed, run/summary.py run_identity): inside each checkpoint,
    # so a resume of another run's checkpoint is refused even where the config beside it is gone
    identity: dict = field(default_factory=dict)
    memory: Planned | None = None  # the memory plan (train/memory/planner.py); Context.build makes it
    ledger: Ledger = field(default_factory=Ledger)  # what the run learns while it trains (train/ledger.py)

    @classmethod
    def build(cls, *, plan: Sizing | None = None, **fields) -> Context:
        """The Context of `fields`, its memory planned (`planned`, with `plan`'s inputs) unless `memory`
        is given."""
        return planned(cls(**fields), plan or Sizing())


@dataclass(frozen=True)
class Sizing:
    """What the memory plan reads beside the Context: inputs of the plan, not services of the loop."""

    pairwise: bool = False  # the pairwise loop trains it: a micro-batch row is a pair of responses
    budget: int | None = None  # bytes this process may use (hardware.memory_bytes); None: all
    reference_loads: bool = True  # False: load_reference gives a LoRA policy's frozen base (no weights)
    # fp32 (T, V) copies a row's divergence to the teacher adds to an update (the VocabularyDivergence
    # signal's row_copies, GKD); 0: the loss reads log-probs only
    divergence_copies: float = 0.0


def planned(ctx: Context, sizing: Sizing | None = None) -> Context:
    """`ctx` with its memory plan (train/memory/planner.py `plan_run`, with `sizing`'s inputs) and
    train.micro_batch_size as planned (rows or None); `ctx` itself when it has a plan already."""
    if ctx.memory is not None:
        return ctx
    sizing, models = sizing or Sizing(), ctx.models
    others = held_modules(ctx.scorer) + held_modules(ctx.judge) + held_modules(models.teacher)
    plan = plan_run(
        ctx.train.micro_batch_size,
        (models.policy, models.reference, models.critic, *others),
        ctx.task,
        ctx.env,
        ctx.train,
        ctx.group.size,
        sizing.pairwise,
        budget=sizing.budget,
        whole_only=ctx.backend.uses_deepspeed,
        dtype=ctx.backend.dtype,
        reference_loads=sizing.reference_loads,
        divergence_copies=sizing.divergence_copies,
        weight_terms=weight_terms(ctx, sizing.pairwise),
    )
    trained = dataclasses.replace(ctx.train, micro_batch_size=plan.micro_batch_size)
    return dataclasses.replace(ctx, memory=plan, train=trained)


def weight_terms(ctx: Context, pairwise: bool = False) -> dict[str, int]:
    """The bytes of the weights the memory plan's Peak prices apart: the policy's that sampling copies,
    `packed`, the engine's for one rollout (rollout.decode_matmul=packed), `snapshot`, the sampling
    thread's, held throughout (train.async_rollouts, train/staleness.py; the online loop's), `engine_copy`,
    the engine's bfloat16 copy, held throughout (rollout.dtype=bfloat16: HFGenerate.policy_copy); and
    `offloaded`, the reference's, out of memory between its forwards (hardware.offload_reference)."""
    policy = ctx.models.policy
    background = getattr(ctx.train, "async_rollouts", False) and not pairwise
    snapshot = parameter_bytes([policy]) if background else 0
    width = next((p.element_size() for p in policy.parameters()), 4)
    bf16 = getattr(ctx.engine, "dtype", None) == "bfloat16"
    engine_copy = parameter_bytes([policy]) * 2 // width if bf16 else 0
    offloaded = 0 if ctx.models.offload is None else parameter_bytes([ctx.models.reference])
    copies = {"packed": packed_bytes(ctx.engine, policy), "snapshot": snapshot, "engine_copy": engine_copy}
    return copies | {"offloaded": offloaded}
