"""What a loop is handed: the run's models, data, engines and settings in one frozen object, built once.
Building it plans the run's memory (train/memory.py): train.micro_batch_size "auto" becomes rows or
None there, so no loop ever sees "auto", however the Context was made (a run, a benchmark, a test)."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from align_lab.rollout.base import RolloutEngine
from align_lab.train.backend import Backend
from align_lab.train.common import TrainConfig
from align_lab.train.distributed import Group
from align_lab.train.memory import Planned, held_modules, plan_run
from align_lab.train.preemption import Preemption


@dataclass(frozen=True)
class Context:
    """Everything a loop needs, built by the run (run/execute.py)."""

    task: object
    tokenizer: object
    policy: torch.nn.Module
    reference: torch.nn.Module | None  # None: the algorithm reads no reference (uses_reference false)
    critic: torch.nn.Module | None
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
    # loads the frozen reference (the SFT policy) when training holds none, for evaluation only
    load_reference: Callable[[], torch.nn.Module] | None = None
    reference_loads: bool = True  # False: load_reference gives a LoRA policy's frozen base (no weights)
    pairwise: bool = False  # the pairwise loop trains it: a micro-batch row is a pair of responses
    memory_budget: int | None = None  # bytes this process may use (hardware.memory_bytes); None: all
    memory: Planned | None = None  # the memory plan (train/memory.py); made here when not given
    # the reference's evaluation samples, by the reference's version (train/cadence.py): drawn by the
    # run's first evaluation, the same draws for every later one, which reuses them
    reference_draws: dict = field(default_factory=dict)
    # the online updates' forwards as `auto` ran them (train/token_budget.py `see`), for the summary
    realized: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.memory is not None:  # dataclasses.replace of a built Context: planned already
            return
        setting = self.train.micro_batch_size
        others = held_modules(self.scorer) + held_modules(self.judge)
        planned = plan_run(
            setting,
            (self.policy, self.reference, self.critic, *others),
            self.task,
            self.env,
            self.train,
            self.group.size,
            self.pairwise,
            budget=self.memory_budget,
            whole_only=self.backend.uses_deepspeed,
            dtype=self.backend.dtype,
            reference_loads=self.reference_loads,
        )
        object.__setattr__(self, "memory", planned)
        trained = dataclasses.replace(self.train, micro_batch_size=planned.micro_batch_size)
        object.__setattr__(self, "train", trained)

    @contextmanager
    def evaluation_reference(self) -> Iterator[torch.nn.Module]:
        """The reference evaluation compares with: the one training holds, or, when it holds none
        (SimPO, ORPO, a KL-free online run), one loaded for the block and freed after it, so training's
        memory never holds it. Loading draws no number from the training RNG."""
        if self.reference is not None:
            yield self.reference
            return
        with torch.random.fork_rng(devices=[]):
            reference = self.load_reference()
        try:
            yield reference
        finally:
            del reference
            gc.collect()
