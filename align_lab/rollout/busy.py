"""How many cores other processes keep busy: the CPU time the machine spent outside this process over
the wall time, between two readings of /proc/stat (Linux; elsewhere none is ever seen).

A rollout's decode step is hundreds of small parallel regions a token; with libgomp's spinning wait
(align_lab.GOMP_SPINCOUNT) its threads wait for a partner thread that another process preempted. With
`rollout.threads=load` the HF engine samples with one thread fewer for each core others kept busy since
its last rollout. Opt-in: a decode matmul's last bits can depend on the thread count (SmolLM2's q_proj
on the Xeon), so the rollout log-probs would depend on the machine's load (docs/rollout.md, item 8).
The default, `auto`, never reads the load: the run's threads as its first segment was given them
(recorded in summary.json `sampling_threads`, kept by a resume; run/start.py).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

STAT = Path("/proc/stat")
BUSY_FIELDS = (0, 1, 2, 5, 6)  # user, nice, system, irq, softirq of /proc/stat's "cpu" line (not idle,
# iowait, or steal: time the machine did not run anything here); guest time is counted within user


@dataclass(frozen=True)
class Reading:
    wall: float  # time.monotonic()
    machine: float | None  # CPU seconds every process spent (None: no /proc/stat)
    own: float  # CPU seconds of this process (every thread), os.times()


def machine_cpu_seconds(stat: Path = STAT) -> float | None:
    """Busy CPU seconds of the whole machine since boot, from /proc/stat; None where there is none."""
    try:
        first = stat.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    ticks = [int(v) for v in first[1:]]
    return sum(ticks[i] for i in BUSY_FIELDS if i < len(ticks)) / os.sysconf("SC_CLK_TCK")


def read(stat: Path = STAT) -> Reading:
    times = os.times()
    return Reading(time.monotonic(), machine_cpu_seconds(stat), times.user + times.system)


def other_cores(before: Reading, after: Reading) -> float:
    """Cores other processes kept busy between the two readings, on average (0 where unknown)."""
    wall = after.wall - before.wall
    if before.machine is None or after.machine is None or wall <= 0:
        return 0.0
    return max(0.0, ((after.machine - before.machine) - (after.own - before.own)) / wall)


def spared_threads(threads: int, others: float) -> int:
    """`threads` less one for each core others kept busy (half a core or more counts as one), >= 1."""
    return max(1, threads - int(others + 0.5))


@dataclass
class BusyMeter:
    """Other processes' cores since the last call (the first: since the meter was made); and the torch
    threads each rollout sampled with, {threads: rollouts} (sampling_threads counts them)."""

    stat: Path = STAT
    last: Reading = field(init=False)
    threads_used: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.last = read(self.stat)

    def others(self) -> float:
        now = read(self.stat)
        seen, self.last = other_cores(self.last, now), now
        return seen


def check_threads(value) -> None:
    ok = (
        value is None
        or value in ("auto", "load")
        or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
    )
    if not ok:
        raise ValueError(
            f"threads={value!r}: must be auto (the run's, fixed when it started), load (spared for "
            "other processes' load), null (this segment's) or a number >= 1"
        )


@contextmanager
def sampling_threads(setting, meter: BusyMeter, on_cpu: bool, fixed: int | None = None):
    """torch's threads for one rollout, then put back: `setting` threads; "auto": `fixed` (the run's as
    it started, run/start.py; None: as they are); "load": the run's, spared for other processes (on the
    CPU, sampled from the main thread: torch's thread count is the process's, and an async sampling
    thread shares it with the trainer); None: as they are. The meter counts them."""
    before = torch.get_num_threads()
    n = fixed if setting == "auto" else setting
    if setting == "load":
        main = threading.current_thread() is threading.main_thread()
        n = spared_threads(before, meter.others()) if on_cpu and main else None
    if n and n != before:
        torch.set_num_threads(n)
    if on_cpu:  # a GPU's rollout does not sum on torch's CPU threads
        meter.threads_used[torch.get_num_threads()] += 1
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def threads_record(engine) -> dict:
    """The torch threads an engine's rollouts sampled with, {threads: rollouts}, for summary.json's
    numerics: a matmul's last bits can depend on them (issue 59), and with `load` they follow the
    machine's load. {} for an engine that does not count them (vLLM)."""
    used = getattr(getattr(engine, "meter", None), "threads_used", None)
    return {"rollout_threads": {str(n): used[n] for n in sorted(used)}} if used else {}
