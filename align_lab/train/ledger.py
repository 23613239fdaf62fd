"""What a run learns while it trains, kept for its later steps and its summary: the one mutable part of
what a loop is handed. `Context` (train/context.py) is data and services, never written after it is
built; the loop and its helpers write here instead, each field by one writer."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Ledger:
    """A run's record while it trains (one per Context)."""

    # the reference's evaluation samples, by the reference's version (train/cadence.py): drawn by the
    # run's first evaluation, the same draws for every later one, which reuses them
    reference_draws: dict = field(default_factory=dict)
    # the online updates' forwards as `auto` ran them (train/memory/token_budget.py `see`), for the summary
    realized: dict = field(default_factory=dict)
    # the run's roofline state (train/roofline.py observe): the policy's sizes, the machine's limits
    perf: dict = field(default_factory=dict)
    # why the run stopped before train.steps ({}: it did not): train.stop_at reached (train/cadence.py),
    # or the checkpoint resumed says so (train/resume.py); the loops break, finish() checkpoints there
    stopped: dict = field(default_factory=dict)
    # every rank's generator states after the last step (train/rng.py every_rank; [] with one process):
    # taken by every rank at each step's end, written into rank 0's checkpoint (train/resume.py)
    rng_ranks: list = field(default_factory=list)
