"""train/launch.py: what rank 0 raises for a spawned rank that ended: the exception the rank left (its
traceback a note), the run's interruption for a signal, else torch's own."""

from __future__ import annotations

import pytest
import torch.multiprocessing as mp

from align_lab.train import launch, rank_ends
from align_lab.train.preemption import Interrupted
from align_lab.value_checks import UserCodeError, one_line


class Unpicklable(Exception):
    def __init__(self, a, b):  # pickle rebuilds it from args alone: one argument, so it cannot travel
        super().__init__(a)


def test_a_ranks_exception_travels_to_rank_0_with_its_traceback_as_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(rank_ends.tempfile, "gettempdir", lambda: str(tmp_path))
    try:
        raise UserCodeError("reward.path=m:f: raised RuntimeError: down")
    except UserCodeError as e:
        assert rank_ends._sent(e, 4242, 1, 2)
    received = rank_ends._received(4242, 2)
    assert type(received) is UserCodeError and str(received) == "reward.path=m:f: raised RuntimeError: down"
    assert received.__notes__[0].startswith("rank 1 of 2:\nTraceback")
    worker = mp.ProcessExitedException("gone", 0, 123, exit_code=1)
    assert rank_ends._why_it_ended(worker, 4242, 2) is not worker  # the rank's own, not torch's
    rank_ends._forget_sent(4242, 2)
    assert list(tmp_path.iterdir()) == [] and rank_ends._received(4242, 2) is None


class UnpicklableBase(BaseException):
    def __init__(self, shard, why):  # a BaseException of the user's that cannot rebuild (fifteenth hunt)
        super().__init__(f"shard {shard}: {why}")


@pytest.mark.parametrize("error", [Unpicklable("judge down", 2), UnpicklableBase(1, "judge down")])
def test_what_cannot_travel_sends_a_stand_in_that_says_the_same(tmp_path, monkeypatch, error):
    """Fifteenth hunt: rank 1's traceback was printed twice, then `rank 1 of 2 exited with code 1 ...,
    leaving no error`; one process says where it was raised, in one line."""
    monkeypatch.setattr(rank_ends.tempfile, "gettempdir", lambda: str(tmp_path))
    try:
        raise error
    except BaseException as e:  # noqa: BLE001 - the user's class, whatever it is
        assert rank_ends._sent(e, 4244, 1, 2)
        frames = e.rank_frames
    received = rank_ends._received(4244, 2)
    assert one_line(received) == one_line(error) and received.rank_frames == frames
    assert isinstance(received, Exception) == isinstance(error, Exception)
    assert received.__notes__[0].startswith("rank 1 of 2:\nTraceback")
    rank_ends._forget_sent(4244, 2)


def test_a_signal_is_an_interruption_and_an_exit_code_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(rank_ends.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(rank_ends, "STUCK_WAIT_S", 0.0)  # no rank of these left a line to wait for
    killed = mp.ProcessExitedException("killed", 0, 123, exit_code=-9, signal_name="SIGKILL")
    why = rank_ends._why_it_ended(killed, 4243, 2)
    assert isinstance(why, Interrupted) and why.signal_name == "SIGKILL"
    failed = mp.ProcessExitedException("failed", 0, 123, exit_code=3)  # os._exit(3): one line (14th hunt)
    assert str(rank_ends._why_it_ended(failed, 4243, 2)).startswith(
        "rank 1 of 2 exited with code 3 during the run"
    )
    hung_up = mp.ProcessExitedException("stopped", 0, 123, exit_code=128 + 1)  # its Interrupted's exit code
    assert rank_ends._why_it_ended(hung_up, 4243, 2).signal_name == "SIGHUP"
    crashed = mp.ProcessExitedException("crashed", 0, 123, exit_code=-11, signal_name="SIGSEGV")
    assert str(rank_ends._why_it_ended(crashed, 4243, 2)).startswith("rank 1 of 2 crashed with SIGSEGV")
    raised = mp.ProcessRaisedException("a traceback's text", 0, 123)  # nothing left: torch's own
    assert rank_ends._why_it_ended(raised, 4243, 2) is raised


def test_a_ranks_group_sets_its_place_as_torchrun_does_and_takes_it_back(monkeypatch):
    """The sixteenth hunt's notes: a spawned rank had no RANK/WORLD_SIZE/LOCAL_RANK (torchrun sets them), so a
    reward sharding its judge by rank could not; the group sets them for the run, and leaving takes them back
    (never a value the user set)."""
    import os

    from align_lab.train.distributed import free_port, join, leave
    from align_lab.train.rank_env import CONNECTIONS, PLACE
    from align_lab.user_fds import HELD

    for name in PLACE:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "mine")
    join(0, 1, free_port())
    try:
        assert [os.environ.get(n) for n in PLACE] == ["0", "1", "0", "mine"]
        assert CONNECTIONS in HELD.values()  # a call of the user's code may not close them
    finally:
        leave()
    assert [os.environ.get(n) for n in PLACE] == [None, None, None, "mine"]
    # the sockets closed: held still, a later run in the process reusing a number took it for the group's
    assert CONNECTIONS not in HELD.values()


def test_a_rank_stopped_by_rank_0_lets_go_of_the_group_and_its_place(monkeypatch):
    """A rank other than 0 whose run rank 0 stopped (RankStopped) kept the default group and RANK/WORLD_SIZE:
    a Slurm task's process running a later job could not join that job's group ("trying to initialize the
    default process group twice")."""
    import os

    import torch.distributed as dist

    from align_lab.train.distributed import Group, free_port, join, leave, serve
    from align_lab.train.preemption import RankStopped
    from align_lab.train.rank_env import CONNECTIONS, PLACE
    from align_lab.user_fds import HELD

    for name in PLACE:
        monkeypatch.delenv(name, raising=False)
    released = []

    class Stopped:
        def run(self, group, connect):
            connect()
            raise RankStopped(3)

        def release(self):
            released.append(dist.is_initialized())  # what hangs off the group goes first

    port = free_port()
    assert serve(Stopped(), Group(0, 1), lambda: join(0, 1, port)) == "stopped"
    assert released == [True] and not dist.is_initialized()
    assert [os.environ.get(n) for n in PLACE] == [None] * len(PLACE) and CONNECTIONS not in HELD.values()
    join(0, 1, free_port())  # a later run's group
    leave()


def test_a_rank_that_does_not_join_is_named_as_rank_0_waits_and_as_it_times_out(monkeypatch, caplog):
    """Seventeenth hunt: a reward module whose import hung on rank 1 alone was 15 minutes of silence, then a
    60-line DistStoreError, no resume line."""
    import logging
    from datetime import timedelta

    import torch.distributed as dist

    from align_lab.train import distributed
    from align_lab.value_checks import UserCodeError

    monkeypatch.setattr(distributed, "JOIN_SAID_S", 0.2)
    monkeypatch.setattr(distributed, "COLLECTIVE_TIMEOUT", timedelta(seconds=1))
    store = dist.TCPStore("127.0.0.1", distributed.free_port(), 2, True, wait_for_workers=False)
    with caplog.at_level(logging.WARNING, logger="align_lab"), pytest.raises(UserCodeError) as e:
        distributed._wait_for_arrivals(store, 2, lambda: None)
    starting = distributed.STARTING
    assert str(e.value) == f"rank 1 of 2 did not join the run in 0:00:01: {starting}"
    assert caplog.messages == [
        f"warning: rank 1 of 2 not yet in the run after 0.2 s: {starting}; the run waits 0:00:01 at most "
        "(SIGTERM or Ctrl-C stops it, to resume)"
    ]
    gone = RuntimeError("rank 1 ended")
    with pytest.raises(RuntimeError) as e:
        distributed._wait_for_arrivals(store, 2, lambda: (_ for _ in ()).throw(gone))
    assert e.value is gone


def test_a_collective_that_times_out_with_every_rank_alive_is_one_line(tmp_path, monkeypatch):
    """Seventeenth hunt: rank 1's reward hung; after 15 minutes gloo's `Timed out waiting 900000ms for send
    operation to complete` ended the run in a 60-line traceback, no resume line."""
    from types import SimpleNamespace

    monkeypatch.setattr(rank_ends.tempfile, "gettempdir", lambda: str(tmp_path))
    alive = SimpleNamespace(join=lambda timeout: False, processes=[SimpleNamespace(exitcode=None)])
    timed_out = RuntimeError("[gloo/transport/tcp/unbound_buffer.cc:129] Timed out waiting 900000ms for send")
    with pytest.raises(UserCodeError) as e:
        launch._said_by_a_rank(timed_out, alive, 4245, 2)
    assert str(e.value).startswith(
        "a rank of 2 did not answer rank 0 for 0:15:00 in the run's collectives, alive"
    )
    launch._said_by_a_rank(RuntimeError("another"), alive, 4245, 2)  # not said here: raised as it was
