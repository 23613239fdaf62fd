"""`hardware`: where a run computes and how it updates: device, threads, processes and nodes, the
training backend, and what it asks a launcher for (conf/hardware/*.yaml)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from align_lab.config import ConfigError
from align_lab.run.resources import ResourcePolicy, slurm_cpus_per_task, threads_given
from align_lab.train.backend import Backend
from align_lab.train.memory import default_budget
from align_lab.train.slurm_world import SlurmWorld, slurm_world
from align_lab.value_checks import check

MAX_MEMORY_GB = 2**33  # GiB: 2^63 bytes, the most a budget in bytes (an int64) holds


MAX_THREADS = (
    4096  # more than any CPU node's cores: past it, thread pools fail to start (a crash, not a line)
)


@dataclass
class Hardware:
    device: str = "cpu"  # cpu | cuda (one GPU per data-parallel process)
    num_threads: int | None = None  # torch threads per process; None: the cores it was given; 0: torch's
    max_parallel: int | None = None  # runs of a sweep at once; None: what fits the machine
    processes: int = 1  # data-parallel processes per node
    nodes: int = 1  # Slurm nodes; > 1: each of nodes x processes ranks is a Slurm task
    backend: str = "torch"  # torch | deepspeed
    zero_stage: int = 2
    dtype: str = "fp32"
    gradient_checkpointing: bool = False
    memory_gb: float | None = (
        None  # memory a run may use on a node; None: the machine's (or its cgroup's limit)
    )
    resources: ResourcePolicy = field(default_factory=ResourcePolicy)
    # the frozen reference's weights out of memory between its forwards (models/offload.py): auto | true
    # | false; auto: on a CPU with the torch backend, the run folder on a disk (run/reference_offload.py)
    offload_reference: str | bool = "auto"

    def __post_init__(self) -> None:
        check(self.device in ("cpu", "cuda"), "device", self.device, "cpu or cuda")
        allowed = f">= 0 (0: torch's default) and at most {MAX_THREADS}, or null"
        # 1000000: tokenizers' thread pool panicked, then a segmentation fault (issue 73 fifth hunt)
        ok = self.num_threads is None or 0 <= self.num_threads <= MAX_THREADS
        check(ok, "num_threads", self.num_threads, allowed)
        if (
            self.num_threads is None
        ):  # the cores a Slurm job gave, read where the run runs: this machine's now
            slurm_cpus_per_task(os.environ)
        allowed = ">= 1 or null (fit the machine)"
        check(self.max_parallel is None or self.max_parallel >= 1, "max_parallel", self.max_parallel, allowed)
        check(self.processes >= 1, "processes", self.processes, ">= 1")
        check(self.nodes >= 1, "nodes", self.nodes, ">= 1")
        allowed = "> 0 or null (the machine's memory)"
        check(self.memory_gb is None or self.memory_gb > 0, "memory_gb", self.memory_gb, allowed)
        # 1e308 GiB is an infinity of bytes: "hardware.cannot convert float NaN to integer" (issue 73)
        most = f"at most {MAX_MEMORY_GB} (2^63 bytes) or null (the machine's memory)"
        check(self.memory_gb is None or self.memory_gb <= MAX_MEMORY_GB, "memory_gb", self.memory_gb, most)
        # a budget that rounds to 0 bytes a process read downstream as "no budget" (issue 59)
        least = self.processes / 2**30
        per_process = f"at least 1 byte per process (>= {least:.3g} with processes={self.processes}) or null"
        check(self.memory_gb is None or self.memory_bytes() >= 1, "memory_gb", self.memory_gb, per_process)
        allowed = "auto, true or false"
        setting = self.offload_reference
        check(
            setting == "auto" or isinstance(setting, bool),
            "offload_reference",
            self.offload_reference,
            allowed,
        )
        cpu_only = (
            "auto or false with device=cuda or backend=deepspeed (true: a CPU run with the torch backend)"
        )
        on_cpu = self.device == "cpu" and self.backend == "torch"
        check(
            self.offload_reference is not True or on_cpu,
            "offload_reference",
            self.offload_reference,
            cpu_only,
        )
        # how a loss becomes an update (train/backend.py); raises "backend=...: must be one of ..."
        self.training = Backend(self.backend, self.zero_stage, self.dtype, self.gradient_checkpointing)

    @property
    def ranks(self) -> int:
        """Data-parallel processes of the run, over all its nodes."""
        return self.processes * self.nodes

    def memory_bytes(self, whole_node: bool = False) -> int:
        """The memory budget of one process in bytes (train/memory/ plans by it): hardware.memory_gb,
        else the machine's total (or its cgroup's limit), shared by the node's processes (not with
        `whole_node`: the stages, built by the main process alone). On a GPU with no memory_gb: that
        GPU's memory (one GPU per process, the stages' process included)."""
        if not self.memory_gb:
            return default_budget(self.device, 1 if whole_node else self.processes)
        total = self.memory_gb * 2**30
        return int(total if whole_node else total // self.processes)

    def trainer_bytes(self, engine_share: float) -> int:
        """The trainer's budget (memory_bytes): on a GPU with no memory_gb, what a colocated engine's
        share of that GPU leaves (vLLM's rollout.gpu_memory_utilization; 0 for the hf engine)."""
        share = engine_share if self.device == "cuda" and not self.memory_gb else 0.0
        return int(self.memory_bytes() * (1 - share))

    def threads(self, max_threads: int | None = None) -> int:
        """Torch threads per process: num_threads, else the cores the run was given (a task each across
        nodes; Slurm's SLURM_CPUS_PER_TASK or a local sweep's cpus_per_task, read where the run runs),
        else every core this process may use, at most the model's `max_threads` (resources.threads_given)."""
        per_task = 1 if self.nodes > 1 else self.processes
        return threads_given(
            self.num_threads, self.resources.cpus_per_task, per_task, max_threads=max_threads
        )

    def use(self, rank: int, max_threads: int | None = None) -> None:
        """Sets this process up as `rank` on its node: torch threads (at most the model preset's
        `max_threads` unless num_threads is set), and new tensors on its GPU (gpu_of)."""
        if self.threads(max_threads):
            torch.set_num_threads(self.threads(max_threads))
        if self.device == "cpu":  # DeepSpeed, imported by accelerate on a save, then says nothing of GPUs
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        if self.device == "cuda":
            index = gpu_of(rank, torch.cuda.device_count())
            torch.cuda.set_device(index)
            torch.set_default_device(f"cuda:{index}")

    def slurm_task(self) -> SlurmWorld | None:
        """This process's Slurm task in a run across nodes; None on one node. One line when the process
        is not one of the run's Slurm tasks."""
        if self.nodes == 1:
            return None
        world = slurm_world(os.environ)
        if world is None or world.size != self.ranks:
            found = "not in a Slurm task" if world is None else f"in a Slurm step of {world.size} tasks"
            raise ConfigError(
                f"hardware.nodes={self.nodes}: a run across nodes is {self.ranks} Slurm tasks "
                f"({self.processes} per node, started by srun), but this process is {found}; submit it with "
                "-m (python -m align_lab -m hardware=slurm_multinode ...: its launcher starts them), or set "
                "hardware.nodes=1"
            )
        return world


def gpu_of(local_rank: int, visible: int) -> int:
    """The CUDA device of the process of `local_rank` on its node, of the `visible` ones: cuda:local_rank
    where every GPU of the node is visible, cuda:0 where the scheduler gave each task its own one
    (Slurm's --gpus-per-task=1 or GPU binding: CUDA_VISIBLE_DEVICES holds one device), local_rank mod
    `visible` between the two."""
    return local_rank % max(visible, 1)


@contextmanager
def threads(n: int | None):
    """torch's threads set to `n` for the block (None: as they are), then put back."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
