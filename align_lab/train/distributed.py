"""Data parallel on one node: N processes, each a full replica, splitting every batch by rows.

Batch sizes count samples, so a run's numbers do not depend on how many processes run it. Every rank
draws the same prompts, routes and minibatch orders (same seed, same RNG use); each samples, scores
and runs the model on its own contiguous rows only (sampling with per-row seeds, so a row's sample
does not depend on which rank draws it), then `gather` gives every rank the whole batch. A loss is
computed on the whole minibatch with gradient flowing only through the rank's own rows; summing the
gradients across ranks (`all_reduce_grads`) then gives exactly the whole minibatch's gradient, for
any loss aggregation (token mean, sequence mean, group statistics) and with no per-loss weighting.

With one process every function here is the identity, so both loops run the same code.

Across Slurm nodes every process is one Slurm task (srun): `slurm_world` reads its place from Slurm's
own environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import torch
from torch import Tensor

from align_lab.train.preemption import RankStopped
from align_lab.train.rank_env import CONNECTIONS, forget_env, own_env, own_place
from align_lab.train.slurm_world import SlurmWorld
from align_lab.user_fds import held_since, open_fds
from align_lab.value_checks import UserCodeError

log = logging.getLogger("align_lab")


@dataclass(frozen=True)
class Group:
    """This process's place among `size` data-parallel processes (torch.distributed, gloo or nccl)."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 evaluates, logs and writes checkpoints and the summary."""
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous share of n rows (the first n % size ranks take one more)."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def gather(self, local: Tensor, pad: float = 0, left: bool = False) -> Tensor:
        """Every rank's rows of a (b,) or (b, T) tensor, in rank order, (B,) or (B, T_max).

        Rows narrower than the widest are padded with `pad` on the right (on the left for left-padded
        prompts). The rank's own rows are `local` itself, so gradient flows through them."""
        if self.size == 1:
            return local
        import torch.distributed as dist

        shape = torch.tensor([local.shape[0], local.shape[1] if local.dim() > 1 else 1])
        shapes = [torch.zeros_like(shape) for _ in range(self.size)]
        dist.all_gather(shapes, shape)
        rows = max(int(s[0]) for s in shapes)
        width = max(int(s[1]) for s in shapes)
        padded = _pad(local.detach(), rows, width, pad, left)
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded)
        parts = [
            _pad(p[: int(s[0])], int(s[0]), width, pad, left) for p, s in zip(parts, shapes, strict=True)
        ]
        parts[self.rank] = _pad(local, local.shape[0], width, pad, left)
        return torch.cat(parts)

    def from_main(self, flag: bool) -> bool:
        """Rank 0's `flag`, on every rank (a decision only rank 0 can make, such as a signal's arrival)."""
        if self.size == 1:
            return flag
        import torch.distributed as dist

        value = torch.tensor([int(flag)])
        dist.broadcast(value, 0)
        return bool(value.item())

    def any(self, flag: bool) -> bool:
        """Whether `flag` holds on any rank, on every rank (a signal that reached one process of the run)."""
        if self.size == 1:
            return flag
        import torch.distributed as dist

        value = torch.tensor([int(flag)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def all_reduce_grads(self, parameters) -> None:
        """Sums the gradients of `parameters` over ranks (each rank holds its rows' share)."""
        if self.size == 1:
            return
        import torch.distributed as dist

        params = [p for p in parameters if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.flatten() for p in params])
        dist.all_reduce(flat)
        for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
            p.grad.copy_(g.view_as(p))


def _pad(x: Tensor, rows: int, width: int, value: float, left: bool) -> Tensor:
    """x, (b,) or (b, w), padded to (rows,) or (rows, width); columns on the left if `left`."""
    if x.dim() == 1:
        return torch.cat([x, x.new_full((rows - x.shape[0],), value)])
    columns = x.new_full((x.shape[0], width - x.shape[1]), value)
    x = torch.cat([columns, x] if left else [x, columns], dim=1)
    return torch.cat([x, x.new_full((rows - x.shape[0], width), value)])


def row_seeds(seed: int, step: int, first_row: int, n_rows: int) -> list[int]:
    """Seeds of the sampling noise of rows first_row.. of a step: a row's sample depends on the run
    seed, the step and its row number only, not on the process that draws it."""
    return [
        (((seed * 1_000_003) + step) * 1_000_003 + row) % 2**63
        for row in range(first_row, first_row + n_rows)
    ]


# ---- starting and stopping the ranks of a run -------------------------------------------------------
# a run across nodes: the other ranks wait this long for rank 0 to build the shared stages
STAGES_WAIT = timedelta(days=7)
COLLECTIVE_TIMEOUT = timedelta(minutes=15)


def join(
    rank: int, size: int, port: int, device: str = "cpu", started: Callable[[], None] = lambda: None
) -> None:
    """Joins the process group of `size` ranks on this node (loopback, `port`): gloo on CPU, nccl on GPUs.
    Rank 0 keeps the meeting point (a TCPStore) and waits for the others there in Python, calling
    `started()` as it waits (which raises where a spawned rank has ended): a rank killed as it started
    left rank 0 inside the rendezvous for its 15 minutes, saying nothing, deaf to its own signals
    (seventeenth hunt). Each other rank says it has arrived just before the group forms."""
    import torch.distributed as dist

    own_env("GLOO_SOCKET_IFNAME", "lo")  # one node: talk over loopback
    own_place(rank, size, rank, size)
    if device == "cpu":  # DeepSpeed, if something imports it, then says nothing about GPUs
        own_env("DS_ACCELERATOR", "cpu")
    backend = "nccl" if device == "cuda" else "gloo"
    host, before = "127.0.0.1", open_fds()
    store = dist.TCPStore(host, port, size, rank == 0, timeout=COLLECTIVE_TIMEOUT, wait_for_workers=False)
    if rank == 0:
        _wait_for_arrivals(store, size, started)
    else:
        store.set(f"{ARRIVED}{rank}", "1")
    dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=COLLECTIVE_TIMEOUT)
    held_since(before, CONNECTIONS)  # closed by a call of the user's: one line (user_fds.py)


ARRIVED = "align_lab.arrived."  # + a rank: its key in the meeting point's store, set as it joins


def _wait_for_arrivals(store, size: int, started: Callable[[], None]) -> None:
    """Until every other rank has arrived at rank 0's store (COLLECTIVE_TIMEOUT at most), in Python:
    `started()` raises for a rank that ended, and a signal's handler runs between the checks. A rank
    that has not arrived after JOIN_SAID_S is named (seventeenth hunt: a reward module whose import hung
    on rank 1 alone was 15 minutes of silence, then a 60-line DistStoreError), and again as it times out."""
    import time

    begun, said, limit = time.monotonic(), False, COLLECTIVE_TIMEOUT.total_seconds()
    while not store.check([f"{ARRIVED}{r}" for r in range(1, size)]):
        started()
        waited = time.monotonic() - begun
        if waited > JOIN_SAID_S and not said or waited > limit:
            missing = _ranks([r for r in range(1, size) if not store.check([f"{ARRIVED}{r}"])], size)
            if waited > limit:
                raise RankNotJoined(f"{missing} did not join the run in {COLLECTIVE_TIMEOUT}: {STARTING}")
            said = True
            log.warning(
                f"warning: {missing} not yet in the run after {JOIN_SAID_S} s: {STARTING}; the run waits "
                f"{COLLECTIVE_TIMEOUT} at most (SIGTERM or Ctrl-C stops it, to resume)"
            )
        time.sleep(0.05)


JOIN_SAID_S = 30  # seconds rank 0 waits for the others to join before it says so
STARTING = (
    "alive, still starting (importing your modules: a reward, a verifier, an environment, and what they load)"
)


def _ranks(missing: list[int], size: int) -> str:
    return f"rank {missing[0]} of {size}" if len(missing) == 1 else f"ranks {missing} of {size}"


class RankNotJoined(UserCodeError):
    """A spawned rank alive but not in the group after COLLECTIVE_TIMEOUT: one line, resumable."""


def join_slurm(world: SlurmWorld, device: str = "cpu") -> None:
    """Joins the process group of a run across nodes at rank 0's host: rank 0 opens it once it has built
    the shared stages (a first run builds them, the others then find them in the shared cache_dir); the
    other ranks wait for it up to STAGES_WAIT. Collectives then time out as on one node."""
    import torch.distributed as dist

    if device == "cpu":
        own_env("DS_ACCELERATOR", "cpu")
    own_place(world.rank, world.size, world.local_rank)  # a node's task count: Slurm's own variables
    wait = COLLECTIVE_TIMEOUT if world.rank == 0 else STAGES_WAIT
    node = os.environ.get("SLURMD_NODENAME", "?")
    log.info(f"rank {world.rank} of {world.size} on node {node}: meeting at {world.master_addr}:{world.port}")
    before = open_fds()
    store = dist.TCPStore(world.master_addr, world.port, world.size, world.rank == 0, timeout=wait)
    backend = "nccl" if device == "cuda" else "gloo"
    dist.init_process_group(
        backend, store=store, rank=world.rank, world_size=world.size, timeout=COLLECTIVE_TIMEOUT
    )
    held_since(before, CONNECTIONS)


def leave(release: Callable[[], None] = lambda: None) -> None:
    """Every rank has finished its loop (no collective is in flight); `release` runs (what hangs off
    the group: a vLLM engine, DeepSpeed's caches), then the group is closed."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        release()
    close_group()


def close_group() -> None:
    """This process lets go of the group (no collective: the other ranks need not be there) and of what
    joining it set (`forget_env`), so that a later run in the process can join a group of its own."""
    import torch.distributed as dist

    if dist.is_initialized():  # vLLM's shutdown destroys the default group itself
        dist.destroy_process_group()
    forget_env()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RankJob(Protocol):
    """One run's work on a rank, picklable (spawned ranks receive it): `run` sets the process up, calls
    `connect()` to join the process group and runs the rank's share; `release` lets go of what hangs off
    the group (a vLLM engine, DeepSpeed's caches) before the group is destroyed, on every rank."""

    def run(self, group: Group, connect: Callable[[], None]) -> None: ...

    def release(self) -> None: ...


def serve(job: RankJob, group: Group, connect: Callable[[], None]) -> str:
    """A rank other than 0 (spawned here, or a Slurm task of its own): its share, then leave the group;
    "stopped" where rank 0 stopped the run (no barrier then: rank 0 has left; this rank lets go of the
    group too: a Slurm task's process may run another job, whose group a stale one would refuse)."""
    try:
        job.run(group, connect)
    except RankStopped:
        job.release()
        close_group()
        return "stopped"
    leave(job.release)
    return "completed"
