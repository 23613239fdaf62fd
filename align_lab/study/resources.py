"""What one run asks a scheduler for, derived from what it holds: PPO (policy, reference, critic,
reward model) asks for more than DPO (policy, reference)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from align_lab.algorithms.base import check


@dataclass
class ResourcePolicy:
    """`hardware.resources`: per-model memory and GPUs, scaled by the number of models a run holds."""

    cpus_per_task: int = 1
    mem_gb_per_model: float = 1.0
    gpus_per_model: float = 0.0
    max_gpus: int = 0
    timeout_min: int = 60

    def __post_init__(self) -> None:
        check(self.cpus_per_task >= 1, "cpus_per_task", self.cpus_per_task, ">= 1")
        check(self.mem_gb_per_model > 0, "mem_gb_per_model", self.mem_gb_per_model, "> 0")
        check(self.gpus_per_model >= 0, "gpus_per_model", self.gpus_per_model, ">= 0")
        check(self.max_gpus >= 0, "max_gpus", self.max_gpus, ">= 0")
        check(self.timeout_min >= 1, "timeout_min", self.timeout_min, ">= 1")


def models_held(spec) -> int:
    """Policy and reference, plus a critic and a reward model where the run has them."""
    critic = bool(getattr(spec.algo, "uses_critic", False))
    reward_model = bool(getattr(spec.reward, "holds_model", False))
    return 2 + critic + reward_model


def request(policy: ResourcePolicy, spec) -> dict:
    """submitit parameters for one run: cpus_per_task, mem_gb, gpus_per_node, timeout_min. A
    data-parallel run (hardware.processes > 1) holds its models once per process."""
    n = models_held(spec)
    processes = getattr(spec, "processes", 1)
    gpus = min(policy.max_gpus, math.ceil(policy.gpus_per_model * n)) if policy.gpus_per_model else 0
    if gpus:
        gpus = max(gpus, processes)  # one GPU per data-parallel process
    return {
        "cpus_per_task": policy.cpus_per_task * processes,
        "mem_gb": math.ceil(policy.mem_gb_per_model * n * processes),
        "gpus_per_node": gpus,
        "timeout_min": policy.timeout_min,
    }
