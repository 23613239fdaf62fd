"""The run's file descriptors through a call of the user's code (align_lab/user_fds.py): thirty-eighth
hunt, cases 13 and 44 (a reward's os.closerange(3, 4096): 99 lines, and gloo's abort under cpu_ddp)."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import threading

import pytest

from align_lab import user_fds
from align_lab.user_fds import RunFdsLost, fds_kept, hold, let_go, users_own


@pytest.fixture
def runs_pipe():
    """A pipe of the run's, open before the call, held for good as the signal watcher's is."""
    read, write = os.pipe()
    hold("signal pipe", read, write)
    yield read, write
    let_go(read, write)
    for fd in (read, write):
        if user_fds.identity(fd) is not None:
            os.close(fd)


def test_closerange_in_a_call_passes_over_the_runs_descriptors_and_closes_the_rest(runs_pipe, caplog):
    read, write = runs_pipe
    with fds_kept("reward.path=range:f"):
        mine = os.open(os.devnull, os.O_RDONLY)  # the call's own: closed
        os.closerange(3, 4096)
        assert user_fds.identity(mine) is None
    assert user_fds.identity(read) is not None and user_fds.identity(write) is not None
    os.write(write, b"x")
    assert os.read(read, 1) == b"x"
    [said] = [r.getMessage() for r in caplog.records if "tried to close" in r.getMessage()]
    assert said.startswith("warning: reward.path=range:f tried to close the run's fd "), said
    assert f"fd {read} (signal pipe)" in said or " more; " in said, said  # the held ones first
    assert said.endswith("; they are kept open (close only what your code opened)"), said


def test_a_close_of_a_runs_descriptor_raises_ebadf_as_a_second_close_would(runs_pipe):
    read, _ = runs_pipe
    with pytest.raises(OSError) as raised, fds_kept("reward.path=m:f"):
        os.close(read)
    assert raised.value.errno == errno.EBADF and f"fd {read} (signal pipe) is the run's" in str(raised.value)
    assert user_fds.identity(read) is not None


def test_a_dup2_onto_a_runs_descriptor_raises(runs_pipe):
    _, write = runs_pipe
    with pytest.raises(OSError, match="is the run's"), fds_kept("reward.path=m:f"):
        os.dup2(os.open(os.devnull, os.O_WRONLY), write)


def test_a_daemonizing_loop_that_swallows_errors_leaves_the_run_going(runs_pipe):
    read, write = runs_pipe
    with fds_kept("reward.path=loop:f"):
        for fd in range(3, 1024):
            try:
                os.close(fd)
            except OSError:
                pass
    assert user_fds.identity(read) is not None and user_fds.identity(write) is not None


def test_descriptors_the_users_code_opened_before_stay_its_own_to_close(runs_pipe):
    with fds_kept("reward.path=m:f"):  # opened in one call (its import), closed in a later one
        first = os.open(os.devnull, os.O_RDONLY)
    built = users_own(lambda: os.open(os.devnull, os.O_RDONLY), yours=True)  # an environment's __init__
    with fds_kept("reward.path=m:f"):
        os.close(first)
        os.close(built)
    assert user_fds.identity(first) is None and user_fds.identity(built) is None


def test_a_descriptor_the_run_opened_between_calls_is_kept(runs_pipe):
    run_file = os.open(os.devnull, os.O_RDONLY)  # as metrics.jsonl at the first log
    try:
        with pytest.raises(OSError), fds_kept("reward.path=m:f"):
            os.close(run_file)
    finally:
        os.close(run_file)


def test_the_runs_other_threads_close_their_own_through_a_call(runs_pipe):
    theirs = os.open(os.devnull, os.O_RDONLY)
    go, done = threading.Event(), threading.Event()

    def watcher():  # a thread of the run's, started before the call
        go.wait(5)
        os.close(theirs)
        done.set()

    threading.Thread(target=watcher, daemon=True).start()
    with fds_kept("reward.path=m:f"):
        go.set()
        assert done.wait(5)
    assert user_fds.identity(theirs) is None


def test_a_thread_the_call_starts_is_kept_from_the_runs_too(runs_pipe):
    read, _ = runs_pipe
    errors = []

    def work():
        try:
            os.close(read)
        except OSError as e:
            errors.append(e.errno)

    with fds_kept("env=g"):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert errors == [errno.EBADF] and user_fds.identity(read) is not None


def test_a_held_descriptor_closed_in_c_fails_the_call_in_one_line(runs_pipe):
    read, write = runs_pipe
    with pytest.raises(RunFdsLost) as raised, fds_kept("reward.path=m:f"):
        ctypes.CDLL(None).close(read)
        ctypes.CDLL(None).close(write)
    assert str(raised.value) == (
        f"reward.path=m:f: closed the run's fd {read}, {write} (signal pipe) (not through os.close: in C, or "
        "a file object on it); the run cannot go on without it: close only what your code opened"
    )


def test_the_runs_log_is_held_for_good(tmp_path):
    handler = logging.FileHandler(tmp_path / "app.log")
    logging.getLogger().addHandler(handler)
    try:
        fd = handler.stream.fileno()
        with (
            pytest.raises(RunFdsLost, match=f"fd {fd} \\(log {tmp_path / 'app.log'}\\)"),
            fds_kept("verifier=v:f"),
        ):
            ctypes.CDLL(None).close(fd)
    finally:
        logging.getLogger().removeHandler(handler)


def test_a_forked_child_closes_what_it_likes(runs_pipe):
    read, _ = runs_pipe
    with fds_kept("reward.path=m:f"):
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read)
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and user_fds.identity(read) is not None


def test_the_guard_is_gone_after_the_call(runs_pipe):
    real = os.close
    with fds_kept("reward.path=m:f"):
        assert os.close is not real
    assert os.close is real


def test_a_swallowed_truncation_of_a_runs_descriptor_is_said_as_a_truncation_not_a_close(runs_pipe, caplog):
    """Forty-fourth hunt, case 9: a call that caught the refusal of its os.ftruncate was said to have
    "tried to close" the run's file."""
    read, _ = runs_pipe
    with fds_kept("reward.path=cut:f"):
        with pytest.raises(OSError):
            os.ftruncate(read, 0)
    said = [r.getMessage() for r in caplog.records if "reward.path=cut:f tried to" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(
        "warning: reward.path=cut:f tried to truncate the run's fd "
    ), said
    assert said[0].endswith("; they are kept whole (truncate only what your code opened)"), said
