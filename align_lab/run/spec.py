"""RunSpec: the built components of one run, as config made them (app.py) and the run uses them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from align_lab import registry
from align_lab.envs.single_turn import SingleTurn
from align_lab.models.lora import LoRA
from align_lab.rollout.base import RolloutEngine
from align_lab.run.hardware import Hardware
from align_lab.tracking import TrackerConfig
from align_lab.train.backend import Backend
from align_lab.train.common import TrainConfig


@dataclass
class RunSpec:
    """The built components of a run; `names` are the chosen config files, for labels only."""

    algo: object
    model: object
    task: object
    reward: object
    train: TrainConfig
    sft: object
    rollout: RolloutEngine
    seed: int
    cache_dir: Path
    names: dict
    config: dict  # the resolved config, for the tracker
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    hardware: Hardware = field(default_factory=Hardware)  # device, threads, processes, nodes, backend
    judge: object = None  # judges evaluation win rates (conf/judge/); None: the run's reward
    lora: LoRA = field(default_factory=LoRA)  # adapters on the policy (off by default)
    defaults_from: dict = field(default_factory=dict)  # {"algo.lr": "model=smollm2_135m"}: preset values
    env: object = field(default_factory=SingleTurn)  # what answers the policy's turns (conf/env/)

    @property
    def env_name(self) -> str:
        """The env choice (`env=calculator`), or the class name of an environment given by its
        `_target_` (`env._target_=my_envs.Maze`)."""
        choice, cls = self.names.get("env"), type(self.env)
        try:
            chosen = (
                choice is not None and registry.target("env", choice) == f"{cls.__module__}.{cls.__name__}"
            )
        except OSError:  # a choice from another config directory
            chosen = True
        return choice if chosen else cls.__name__

    @property
    def backend(self) -> Backend:
        """How a loss becomes an update: torch or DeepSpeed, dtype, checkpointing (train/backend.py)."""
        return self.hardware.training


@dataclass(frozen=True)
class Job:
    """A run admitted by align_lab/run/admission.py: every check passed, nothing written yet. `previous`: the
    run folder's summary.json as admission found it ({}: none)."""

    spec: RunSpec
    run_dir: Path
    previous: dict = field(default_factory=dict)
    # the user's inputs a resume goes on with changed (resume_changed_inputs=true): {key: (old, new)}
    changed_inputs: dict = field(default_factory=dict)
    # the wall seconds of the folder's earlier segments, read as admission began, before this process
    # wrote a line to the folder's app.log, whose time marks a killed segment's end (RunFolder's)
    segments: list[float] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        """The folder already holds this very run, completed: nothing to do."""
        return self.previous.get("status") == "completed"

    @property
    def stage_threads(self) -> int | None:
        """The torch threads the shared stages of the run to resume were built with (they are part of
        the stage keys): a resume with other hardware.num_threads loads those stages, then trains with
        its own threads. None: a new run."""
        threads = self.previous.get("stage_threads", self.previous.get("threads"))
        return threads if isinstance(threads, int) and self.previous.get("status") else None
