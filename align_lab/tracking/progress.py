"""Progress of long work: tqdm bars on a terminal, a log line at every tenth of the work elsewhere."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("align_lab")


class LogProgress:
    """Progress as a log line at every tenth of the work: what a run shows when stderr is not a
    terminal (a log file, a scheduler's output), instead of thousands of progress-bar redraws."""

    def __init__(self, total: int | None = None, initial: int = 0, desc: str = "", **_) -> None:
        self.total, self.n, self.desc, self.postfix = total, initial, desc, ""
        self.every = max(1, (total or 0) // 10)
        self.next = initial - initial % self.every + self.every

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total and self.n >= self.next:
            self.next = self.n - self.n % self.every + self.every
            log.info(f"{self.desc}: {self.n}/{self.total} {self.postfix}".rstrip())

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        pass

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Silent(LogProgress):
    """Progress that shows nothing: the other ranks of a data-parallel run (rank 0 shows it). Not a
    disabled tqdm, whose class makes a multiprocessing lock that a worker's hard exit leaks."""

    def update(self, n: int = 1) -> None:
        self.n += n


def progress_factory(enabled: bool = True):
    """tqdm bars on a terminal, one per stage with live reward and KL; elsewhere a log line at every
    tenth of each stage (LogProgress); nothing when not `enabled`."""
    from tqdm.auto import tqdm
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight loading/saving bars of tiny models are noise
    if not enabled:
        return Silent
    if not sys.stderr.isatty():
        return LogProgress
    return lambda **kw: tqdm(dynamic_ncols=True, mininterval=0.5, **kw)
