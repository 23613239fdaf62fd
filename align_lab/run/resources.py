"""What one run asks a scheduler for, derived from what it holds: PPO (policy, reference, critic,
reward model) asks for more than DPO (policy, reference)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from align_lab.algorithms.base import OnlineAlgorithm
from align_lab.value_checks import ConfigError, check


@dataclass
class ResourcePolicy:
    """`hardware.resources`: per-model memory and GPUs, scaled by the number of models a run holds.
    mem_gb_per_model None: the model preset's (`model.mem_gb_per_model`), else 1 GB."""

    cpus_per_task: int = 1
    mem_gb_per_model: float | None = None
    gpus_per_model: float = 0.0
    max_gpus: int = 0
    timeout_min: int = 60

    def __post_init__(self) -> None:  # built inside hardware: each name is its key below hardware.
        check(self.cpus_per_task >= 1, "resources.cpus_per_task", self.cpus_per_task, ">= 1")
        if self.mem_gb_per_model is not None:
            check(
                self.mem_gb_per_model > 0,
                "resources.mem_gb_per_model",
                self.mem_gb_per_model,
                "> 0 (or null: the model's)",
            )
        check(self.gpus_per_model >= 0, "resources.gpus_per_model", self.gpus_per_model, ">= 0")
        check(self.max_gpus >= 0, "resources.max_gpus", self.max_gpus, ">= 0")
        check(self.timeout_min >= 1, "resources.timeout_min", self.timeout_min, ">= 1")


def models_held(spec) -> int:
    """Policy and reference, plus a critic and a reward model where the run has them."""
    critic = isinstance(spec.algo, OnlineAlgorithm) and spec.algo.uses_critic
    reward_model = bool(getattr(spec.reward, "holds_model", False))
    return 2 + critic + reward_model


def memory_per_model(policy: ResourcePolicy, model) -> float:
    """GB a run asks for per model held: `hardware.resources.mem_gb_per_model` where set, else the
    model's own figure (`model.memory_per_model_gb()`: its preset's `mem_gb_per_model`, or a real
    checkpoint's size: SmolLM2-135M's trained policy with gradients, AdamW state and activations is
    ~2.5 GB, not the toy world's 1 GB), else 1 GB."""
    if policy.mem_gb_per_model is not None:
        return policy.mem_gb_per_model
    return model.memory_per_model_gb() or 1.0


def request(policy: ResourcePolicy, spec) -> dict:
    """submitit parameters for one run: cpus_per_task, mem_gb, gpus_per_node, timeout_min. A
    data-parallel run (hardware.processes > 1) holds its models once per process; a run across nodes
    (hardware.nodes > 1) also asks for nodes, tasks_per_node (one task per process) and srun_args."""
    n = models_held(spec)
    mem_gb = math.ceil(memory_per_model(policy, spec.model) * n * spec.hardware.processes)
    processes = spec.hardware.processes
    gpus = min(policy.max_gpus, math.ceil(policy.gpus_per_model * n)) if policy.gpus_per_model else 0
    if gpus:
        gpus = max(gpus, processes)  # one GPU per data-parallel process
    nodes = spec.hardware.nodes
    if nodes > 1:  # across nodes: every process a Slurm task, `processes` of them on each node
        return {
            "nodes": nodes,
            "tasks_per_node": processes,
            "cpus_per_task": policy.cpus_per_task,
            "mem_gb": mem_gb,  # per node
            "gpus_per_node": gpus,
            "timeout_min": policy.timeout_min,
            "srun_args": ["--kill-on-bad-exit=1"],  # a failed rank ends the job, not a hang of the others
        }
    return {
        "cpus_per_task": policy.cpus_per_task * processes,
        "mem_gb": mem_gb,
        "gpus_per_node": gpus,
        "timeout_min": policy.timeout_min,
    }


def threads_given(
    num_threads: int | None,
    cpus_per_task: int,
    processes: int = 1,
    env=None,
    cores: int | None = None,
    max_threads: int | None = None,
) -> int:
    """Torch threads per process: `num_threads` when set (0 = torch's default, every core), else the
    cores this run was given. A scheduler's word comes first: Slurm's SLURM_CPUS_PER_TASK split over
    the run's processes, or, in a job of a local submitit sweep (SUBMITIT_EXECUTOR=local), the
    `hardware.resources.cpus_per_task` cores per process the sweep gave it (the sweep divides the
    machine among the runs it starts at once). A run in a process of its own (`python -m align_lab`,
    or a sweep's runs one after another in-process) uses every core it may use, `cores` (affinity and
    cgroup quota: allowed_cores()), split over its processes; OMP_NUM_THREADS, where set, caps it.
    `max_threads` (the model preset's) caps every default: a tiny model's ops are too small to share."""
    if num_threads is not None:
        return num_threads
    given = _threads_given(cpus_per_task, processes, os.environ if env is None else env, cores)
    return min(given, max_threads) if max_threads else given


def slurm_cpus_per_task(env) -> int | None:
    """SLURM_CPUS_PER_TASK where set (Slurm's cores for a job's task): a whole number >= 1, else one line
    naming it (a stray `abc` in a shell was int()'s 51-line traceback after the run folder was made)."""
    value = env.get("SLURM_CPUS_PER_TASK")
    if not value:
        return None
    if not value.strip().isdigit() or int(value) < 1:
        raise ConfigError(
            f"SLURM_CPUS_PER_TASK={value!r}: must be a whole number >= 1 (Slurm sets it in a job: the cores "
            "each task may use, which the run's torch threads follow); unset it outside a Slurm job, or set "
            "hardware.num_threads"
        )
    return int(value)


def _threads_given(cpus_per_task: int, processes: int, env, cores: int | None) -> int:
    slurm = slurm_cpus_per_task(env)
    if slurm:
        return max(1, slurm // processes)
    if env.get("SUBMITIT_EXECUTOR") == "local":
        return cpus_per_task
    available = allowed_cores() if cores is None else cores
    omp = env.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) >= 1:
        available = min(available, int(omp) * processes)
    return max(1, available // processes)


def allowed_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """Cores this process may use: its CPU affinity, bounded by a cgroup CPU quota where one is set
    (cgroup v2 `cpu.max` "<quota> <period>", or v1 cpu.cfs_quota_us / cpu.cfs_period_us; rounded up)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota(cgroup)
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def _cgroup_quota(cgroup: Path) -> float | None:
    """The cgroup's CPU quota in cores, or None where there is none (or it cannot be read)."""
    try:
        if (cgroup / "cpu.max").exists():
            quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        else:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
    except (OSError, ValueError):
        return None
    if quota == "max" or int(quota) <= 0:
        return None
    return int(quota) / int(period)


def default_max_parallel(cpus_per_run: int, mem_gb_per_run: float, cores: int, mem_gb: float) -> int:
    """How many runs of a local sweep fit the machine at once: its cores divided by the cores a run
    asks for, bounded by its memory divided by a run's memory; at least one."""
    return max(1, min(cores // cpus_per_run, int(mem_gb // mem_gb_per_run)))


def machine() -> tuple[int, float]:
    """(cores this process may use, total memory in GB) of this machine."""
    cores = allowed_cores()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return cores, mem_gb
