"""train/launch.py: what rank 0 raises for a spawned rank that ended: the exception the rank left (its
traceback a note), the run's interruption for a signal, else torch's own."""

from __future__ import annotations

import torch.multiprocessing as mp

from align_lab.train import launch
from align_lab.train.preemption import Interrupted
from align_lab.value_checks import UserCodeError


class Unpicklable(Exception):
    def __init__(self, a, b):  # pickle rebuilds it from args alone: one argument, so it cannot travel
        super().__init__(a)


def test_a_ranks_exception_travels_to_rank_0_with_its_traceback_as_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(launch.tempfile, "gettempdir", lambda: str(tmp_path))
    try:
        raise UserCodeError("reward.path=m:f: raised RuntimeError: down")
    except UserCodeError as e:
        assert launch._sent(e, 4242, 1, 2)
    received = launch._received(4242, 2)
    assert type(received) is UserCodeError and str(received) == "reward.path=m:f: raised RuntimeError: down"
    assert received.__notes__[0].startswith("rank 1 of 2:\nTraceback")
    worker = mp.ProcessExitedException("gone", 0, 123, exit_code=1)
    assert launch._why_it_ended(worker, 4242, 2) is not worker  # the rank's own, not torch's
    launch._forget_sent(4242, 2)
    assert list(tmp_path.iterdir()) == [] and launch._received(4242, 2) is None


def test_what_cannot_travel_is_said_where_it_happened_and_a_signal_is_an_interruption(tmp_path, monkeypatch):
    monkeypatch.setattr(launch.tempfile, "gettempdir", lambda: str(tmp_path))
    try:
        raise Unpicklable(1, 2)
    except Unpicklable as e:
        assert not launch._sent(e, 4243, 1, 2)
    assert launch._received(4243, 2) is None
    killed = mp.ProcessExitedException("killed", 0, 123, exit_code=-9, signal_name="SIGKILL")
    why = launch._why_it_ended(killed, 4243, 2)
    assert isinstance(why, Interrupted) and why.signal_name == "SIGKILL"
    failed = mp.ProcessExitedException("failed", 0, 123, exit_code=3)  # os._exit(3): one line (14th hunt)
    assert str(launch._why_it_ended(failed, 4243, 2)).startswith(
        "rank 1 of 2 exited with code 3 during the run"
    )
    raised = mp.ProcessRaisedException("a traceback's text", 0, 123)  # nothing left: torch's own
    assert launch._why_it_ended(raised, 4243, 2) is raised
