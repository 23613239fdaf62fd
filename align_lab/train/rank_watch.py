"""Rank 0's watch over the ranks it spawned, from their start to the end of the run's loop: where one has
ended and rank 0's main thread has not left the loop GRACE_S later, that thread waits in native code
that no rank's end reaches, and the watch ends the run in its place (`end`: the line, summary.json, the
process's exit). A collective over gloo fails at once when a peer dies, and rank 0 says why (launch);
a wait on the meeting point's store does not: DeepSpeed builds its process groups so (`new_group`), and
kill -9 of rank 1 as the engine was built left rank 0 there for 30 minutes, saying nothing, deaf to its
own signals (seventeenth hunt, case 38)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch.multiprocessing as mp

from align_lab.train.preemption import Interrupted, Interruption
from align_lab.train.rank_ends import RankExited, _why_it_ended

GRACE_S = 5.0  # seconds a rank's end has to reach rank 0's main thread before the watch ends the run
POLL_S = 0.2


def ended(workers: mp.ProcessContext, port: int, size: int, interruption: Interruption | None):
    """Why the run ends, where a spawned rank of `workers` has ended (None while all live): the signal
    that stopped the run now (its ranks killed: launch._stop), else why the first ended rank did, as
    launch says it (train/rank_ends.py). Reads exit codes only: the main thread may be joining them."""
    codes = [(i, p.pid, p.exitcode) for i, p in enumerate(workers.processes) if p.exitcode is not None]
    if not codes:
        return None
    if interruption is not None and interruption.now is not None:
        return Interrupted(interruption.stopped or interruption.now)
    index, pid, code = codes[0]
    if code == 0:  # os._exit(0) in the user's code: nothing to read
        return _why_it_ended(RankExited(index + 1, size, 0), port, size)
    name = signal.Signals(-code).name if code < 0 else None
    said = f"process {index} terminated with {name or f'exit code {code}'}"
    return _why_it_ended(mp.ProcessExitedException(said, index, pid, code, name), port, size)


class RankWatch:
    """The thread; `done()` as the main thread leaves what it watches, after which it never ends the run
    (a main thread that got the rank's end itself says it, as ever)."""

    def __init__(self, why: Callable[[], BaseException | None], end: Callable[[BaseException], None]) -> None:
        self.why, self.end = why, end
        self.lock, self.over = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True, name="align_lab-ranks")

    def _watch(self) -> None:
        seen = None  # when a rank was first seen ended
        while not self.over.wait(POLL_S):
            e = self.why()
            seen = seen if seen is not None or e is None else time.monotonic()
            if seen is not None and time.monotonic() - seen > GRACE_S:
                with self.lock:  # held to the process's end: done() waits for it
                    if not self.over.is_set():
                        self.end(e)
                return

    def done(self) -> None:
        with self.lock:
            self.over.set()


@contextmanager
def watched(
    workers: mp.ProcessContext | None,
    why: Callable[[], BaseException | None],
    end: Callable[[BaseException], None] | None,
) -> Iterator[None]:
    """The block with its ranks watched (none spawned, or no `end` given: unwatched)."""
    if workers is None or end is None:
        yield
        return
    watch = RankWatch(why, end)
    watch.thread.start()
    try:
        yield
    finally:
        watch.done()
