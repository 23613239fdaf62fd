"""A Slurm task's place in a run across nodes, read from what Slurm sets for it (SLURM_PROCID, SLURM_NTASKS,
SLURM_JOB_NODELIST, ...): its rank, its GPU and where the ranks meet. Standard library only."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SlurmWorld:
    """This Slurm task's place in a run across nodes: global `rank` of `size`, `local_rank` on its node
    (its GPU), and where the ranks meet (rank 0's host, a TCP port)."""

    rank: int
    size: int
    local_rank: int
    master_addr: str
    port: int


def slurm_world(env: Mapping[str, str]) -> SlurmWorld | None:
    """Rank SLURM_PROCID of SLURM_NTASKS, meeting at the first host of SLURM_JOB_NODELIST (where srun
    puts task 0) on MASTER_PORT, else a port drawn from SLURM_JOB_ID (every task of the job, and the
    job after a requeue, draws the same one); None outside a Slurm task."""
    if "SLURM_PROCID" not in env or "SLURM_NTASKS" not in env:
        return None
    port = env.get("MASTER_PORT") or 10_000 + int(env.get("SLURM_JOB_ID", "0")) % 20_000
    return SlurmWorld(
        rank=int(env["SLURM_PROCID"]),
        size=int(env["SLURM_NTASKS"]),
        local_rank=int(env.get("SLURM_LOCALID", "0")),
        master_addr=first_host(env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST", "localhost")),
        port=int(port),
    )


def first_host(nodelist: str) -> str:
    """The first host of a Slurm host list: "gpu[07-09,12],cpu3" -> "gpu07" (what
    `scontrol show hostnames` prints first)."""
    depth = 0
    for i, char in enumerate(nodelist):
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            nodelist = nodelist[:i]
            break
    return re.sub(r"\[([^\]]*)\]", lambda m: re.split(r"[-,]", m.group(1))[0], nodelist)
