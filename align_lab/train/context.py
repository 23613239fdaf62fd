"""What a loop is handed: the run's models, data, engines and settings in one object."""

from __future__ import annotations

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
from align_lab.train.preemption import Preemption


@dataclass
class Context:
    """Everything a loop needs, built by the run (study/run.py)."""

    task: object
    tokenizer: object
    policy: torch.nn.Module
    reference: torch.nn.Module | None  # None: the algorithm reads no reference (uses_reference false)
    critic: torch.nn.Module | None
    scorer: object  # (prompts, responses, finished) -> (B,) tensor
    engine: RolloutEngine  # .sample(...) and .sync(model): rollout/base.py
    train: TrainConfig
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
    eval_micro_batch_size: int | None = None  # rows per no-grad forward of evaluation (train/micro.py)
    # the cache keys of the shared stages (SFT, reward model, ...) the run trains on: each checkpoint
    # records them, and a resume on other stages is refused (study/summary.py check_resume_stages)
    stage_keys: dict[str, str] = field(default_factory=dict)
    # the run's identity (config digest and seed, study/summary.py run_identity): inside each checkpoint,
    # so a resume of another run's checkpoint is refused even where the config beside it is gone
    identity: dict = field(default_factory=dict)
    # loads the frozen reference (the SFT policy) when training holds none, for evaluation only
    load_reference: Callable[[], torch.nn.Module] | None = None

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
