"""train/rank_watch.py: why the run ends where a spawned rank has ended, and the watch that ends it when
rank 0's main thread does not (a wait in native code no rank's end reaches)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from align_lab.train import rank_ends, rank_watch
from align_lab.train.preemption import Interrupted
from align_lab.train.rank_ends import RankExited


def _workers(*codes):
    return SimpleNamespace(processes=[SimpleNamespace(pid=100 + i, exitcode=c) for i, c in enumerate(codes)])


@pytest.fixture(autouse=True)
def _nothing_sent(tmp_path, monkeypatch):
    monkeypatch.setattr(rank_ends.tempfile, "gettempdir", lambda: str(tmp_path))


def test_nothing_while_every_rank_lives():
    assert rank_watch.ended(_workers(None, None), 4242, 3, None) is None


@pytest.mark.parametrize(
    ("codes", "kind", "said"),
    [
        ((None, -9), Interrupted, "SIGKILL"),  # the OOM killer, kill -9: resumable, as launch says it
        ((143,), Interrupted, "SIGTERM"),  # a rank that stopped on a SIGTERM of its own
        ((-11,), RankExited, "rank 1 of 2 crashed with SIGSEGV"),
        ((0,), RankExited, "rank 1 of 2 exited with code 0"),
        ((1,), RankExited, "rank 1 of 2 exited with code 1"),
    ],
)
def test_why_a_ranks_end_ends_the_run(codes, kind, said, monkeypatch):
    monkeypatch.setattr(rank_ends, "STUCK_WAIT_S", 0.0)  # no rank of these left a line to wait for
    e = rank_watch.ended(_workers(*codes), 4242, len(codes) + 1, None)
    assert type(e) is kind
    assert (e.signal_name if kind is Interrupted else str(e)).startswith(said)


def test_a_signal_that_stopped_the_run_is_why_its_killed_ranks_ended():
    interruption = SimpleNamespace(now="SIGINT", stopped=None)
    e = rank_watch.ended(_workers(-9), 4242, 2, interruption)
    assert type(e) is Interrupted and e.signal_name == "SIGINT"


def test_the_watch_ends_the_run_a_grace_after_a_rank_ended_and_never_once_done(monkeypatch):
    monkeypatch.setattr(rank_watch, "GRACE_S", 0.3)
    monkeypatch.setattr(rank_watch, "POLL_S", 0.01)
    gone, ends = [None], []
    watch = rank_watch.RankWatch(lambda: gone[0], ends.append)
    watch.thread.start()
    time.sleep(0.2)
    gone[0] = Interrupted("SIGKILL")
    time.sleep(0.1)
    assert ends == []  # within the grace: the main thread's own end comes first
    watch.thread.join(timeout=5)
    assert ends == [gone[0]]
    done = rank_watch.RankWatch(lambda: gone[0], ends.append)
    done.thread.start()
    done.done()  # the main thread left the block: it says the end itself
    done.thread.join(timeout=5)
    assert not done.thread.is_alive() and len(ends) == 1


def test_unwatched_without_spawned_ranks_or_an_end():
    before = threading.active_count()
    with rank_watch.watched(None, lambda: None, print):
        assert threading.active_count() == before
    with rank_watch.watched(_workers(None), lambda: None, None):
        assert threading.active_count() == before


def test_a_crashed_ranks_line_with_no_dump_names_its_signal_not_a_sigkill(monkeypatch, tmp_path):
    """Thirty-third hunt, case 48: a rank whose faulthandler was off when it crashed left hang_watch.py's
    "killed ... SIGKILL (the system's out-of-memory killer, ...)" line; its exit status (-11) says the
    crash, which rank 0 reads."""
    from align_lab.hang_watch import KILLED, KILLED_WHY
    from align_lab.train import rank_ends

    monkeypatch.setattr(rank_ends.tempfile, "gettempdir", lambda: str(tmp_path))
    rank_ends.stuck_file(4242, 1).write_text(f"reward.path=m:f: the process {KILLED}: {KILLED_WHY}")
    said = str(rank_ends._stuck(4242, 2, crash=11))
    assert (
        said
        == "rank 1 of 2: reward.path=m:f: the process crashed (Segmentation fault) in this call (the code "
        "had turned faulthandler off)"
    )
    assert KILLED in str(rank_ends._stuck(4242, 2))  # no crash in its exit status: as hang_watch said
