"""train/preemption.py's watcher: a signal that stops the run now is seen as it arrives, whatever the
main thread is doing (fourteenth hunt: rank 0 blocked in a collective never ran its handler for a second
SIGTERM); a process the user's code forks keeps its own signals out of it."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from align_lab.train.preemption import Interrupted, Interruption


def test_a_second_signal_while_steps_run_calls_the_runs_stop_hooks_from_the_watcher():
    stopped = threading.Event()
    with Interruption() as interruption:
        interruption.deferred = True  # Preemption.steps_begin()
        interruption.on_stop_now.append(stopped.set)
        os.kill(os.getpid(), signal.SIGTERM)
        assert not stopped.wait(1) and interruption.requested == "SIGTERM"  # the step finishes first
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(5)  # the handler raises here
        assert stopped.wait(5) and interruption.now == "SIGTERM"
    assert signal.set_wakeup_fd(-1) == -1  # left as it found it


def test_signals_in_a_process_the_users_code_forks_are_not_the_runs():
    with Interruption() as interruption:
        interruption.deferred = True
        for _ in range(2):  # a reward's Pool, terminated twice: the run's second SIGTERM, were they its
            child = os.fork()
            if child == 0:
                os.kill(os.getpid(), signal.SIGTERM)  # the handler's default in a fork: it ends
                os._exit(0)
            assert os.waitpid(child, 0)[1] == signal.SIGTERM
        threading.Event().wait(1)  # what the watcher would read, it has read
        assert interruption.now is None and interruption.requested is None


def test_a_quiet_interruption_notes_the_signal_and_says_nothing(capfd):
    """A spawned rank's (fifteenth hunt: the notice was printed once a rank)."""
    with Interruption(quiet=True) as interruption:
        interruption.deferred = True
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(0.2)
        assert interruption.requested == "SIGTERM"
    assert "SIGTERM" not in capfd.readouterr().err


def test_a_requeue_command_ended_by_the_requeues_own_sigterm_is_a_preemption_not_a_failure():
    """CI of 469f5e1: submitit's `scontrol requeue` was killed by the SIGTERM Slurm sends a requeued
    job's processes, and the requeued two-node run was called failed."""
    import subprocess

    from align_lab.train.submitit_signals import Preempted, Preemption

    def requeue(signum, frame):
        raise subprocess.CalledProcessError(-signal.SIGTERM, ["scontrol", "requeue", "42"])

    preemption = Preemption()
    preemption.previous, preemption.requested = requeue, (signal.SIGUSR2, None)
    saved = []
    with pytest.raises(Preempted) as e:
        preemption.after_step(lambda: saved.append(True))
    assert saved == [True] and str(e.value).endswith(
        "checkpointed (requeue: scontrol requeue 42 ended by SIGTERM); rerun to resume"
    )


def test_a_signal_while_the_run_stops_on_another_cuts_nothing_and_names_the_first():
    """Sixteenth hunt, case 25: SIGTERM during the SFT stage, then SIGINT as the run wrote its stop, ended
    rc 130 with a line naming SIGTERM; the second now waits (what the stop writes is not cut short), a
    third raises the first's stop again (the user's code swallowed it)."""
    with Interruption():
        with pytest.raises(Interrupted) as first:
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(5)
        os.kill(os.getpid(), signal.SIGINT)  # as the summary and the line are written
        threading.Event().wait(0.2)
        with pytest.raises(Interrupted) as third:
            os.kill(os.getpid(), signal.SIGINT)
            threading.Event().wait(5)
    assert first.value.signal_name == third.value.signal_name == "SIGTERM"
    assert third.value.exit_code == 128 + signal.SIGTERM


def test_a_signal_while_modules_are_imported_is_held_to_the_blocks_end_and_a_second_one_stops_it_now(capfd):
    """Seventeenth hunt: an Interrupted raised inside an import (torch's, during admission's build) was caught
    by the import machinery: the Ctrl-C was lost and the run completed, rc 0, or a module was left half-made
    for a later 60-120-line ImportError. The block (admission's build) now runs whole, then the stop."""
    from align_lab.train.preemption import held

    what = "the command stops once its components are built ({name} again: now)"
    done = []
    with Interruption():
        with pytest.raises(Interrupted) as e:
            with held(what):
                os.kill(os.getpid(), signal.SIGTERM)
                threading.Event().wait(0.3)  # an import under way: nothing is raised inside it
                done.append(True)
        assert done == [True] and e.value.signal_name == "SIGTERM"
    assert "align_lab: SIGTERM: the command stops once its components are built (SIGTERM again: now)" in (
        capfd.readouterr().err
    )
    with Interruption():
        with pytest.raises(Interrupted), held(what):
            os.kill(os.getpid(), signal.SIGINT)
            threading.Event().wait(0.2)
            os.kill(os.getpid(), signal.SIGINT)  # the user insists: now
            threading.Event().wait(5)
            done.append(False)
    assert done == [True]
    with held(what):  # outside any Interruption: nothing to hold
        done.append(True)


def test_a_signal_the_command_holds_stops_the_next_interruptions_block_as_it_begins(capfd):
    """Eighteenth hunt: SIGTERM, SIGHUP, SIGUSR1 as the command imported (before any run's handling) killed
    it with no line; raised there, a signal was swallowed inside an import (the run completed, rc 0) or
    left a module half made. The command's own Interruption (deferred) holds it and says so; the next
    Interruption's block stops as it begins, where nothing is half done; without one, its holder says it."""
    from align_lab.train.preemption import STARTING

    with Interruption(deferred=True, waiting=STARTING) as command_s:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # a handler runs between bytecodes
            pass
        assert command_s.requested == "SIGTERM"
        entered = []
        with pytest.raises(Interrupted) as stop:
            with Interruption():
                entered.append(True)
        assert stop.value.signal_name == "SIGTERM" and not entered and command_s.stopped == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.default_int_handler)
    said = capfd.readouterr().err
    assert said.count("align_lab: SIGTERM: the command stops as soon as it can") == 1, said


def test_a_signal_the_command_takes_while_the_next_block_takes_the_signals_over_stops_that_block(
    capfd, monkeypatch
):
    """CI of 768a3f1: a SIGTERM just after a local sweep said "submitted 2 runs" reached the command's
    handler while the wait's Interruption was taking the signals over (past its check of a held signal):
    held, never raised, and both runs trained on (3000 steps, the test's 120 s ran out). A signal the
    command takes before the block's own handlers are in stops the block as it begins."""
    from align_lab.train import preemption
    from align_lab.train.preemption import STARTING

    real, sent = signal.getsignal, []

    def getsignal_then_a_signal(signum):  # the signal lands inside __enter__, past its first check
        if not sent:
            sent.append(os.kill(os.getpid(), signal.SIGTERM))  # os.kill runs the handler before returning
        return real(signum)

    with Interruption(deferred=True, waiting=STARTING) as command_s:
        monkeypatch.setattr(preemption.signal, "getsignal", getsignal_then_a_signal)
        entered = []
        with pytest.raises(Interrupted) as stop:
            with Interruption():
                entered.append(True)
        monkeypatch.undo()
        assert sent and stop.value.signal_name == "SIGTERM" and not entered, command_s.requested
        assert signal.getsignal(signal.SIGTERM).__self__ is command_s  # the block's handlers taken back
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.default_int_handler)
    assert signal.set_wakeup_fd(-1) == -1  # and its watcher's pipe
    said = capfd.readouterr().err
    assert said.count("align_lab: SIGTERM: the command stops as soon as it can") == 1, said


def test_a_signal_after_the_command_finished_says_so_and_ends_it():
    """Eighteenth hunt's notes: a SIGTERM as a finished sweep's process ended killed it with no line."""
    import subprocess
    import sys

    code = (
        "import os, signal, sys; from align_lab.__main__ import finished; "
        "finished(('SIGTERM', 'SIGINT')); print('done', flush=True); os.kill(os.getpid(), signal.SIGTERM); "
        "[None for _ in range(10**6)]; sys.exit(0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + signal.SIGTERM and done.stdout == "done\n", done.stderr
    assert done.stderr == "align_lab: SIGTERM: the command had finished; it ends now\n"


def test_the_commands_end_runs_the_exit_handlers_without_torchs_exit_time_statistics():
    """Twentieth hunt, case 47: a sweep's stop line was followed by three `[HYDRA] FakeTensor cache stats`
    lines (torch's exit handler logging at INFO through Hydra's root logger); the exit handlers still run."""
    import subprocess
    import sys

    code = (
        "import atexit, logging, sys; logging.basicConfig(level=logging.INFO); "
        "import torch._subclasses.fake_tensor; from align_lab.__main__ import end; "
        "logging.getLogger('torch').setLevel(logging.NOTSET); "  # as Hydra's logging config leaves it
        "atexit.register(lambda: print('handlers ran', flush=True)); print('the line', file=sys.stderr); "
        "end(3)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and done.stdout == "handlers ran\n", (done.stdout, done.stderr)
    assert done.stderr == "the line\n", done.stderr


NAMES = ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2")


@pytest.fixture
def default_signals():
    """The run's signals at their default actions for the test, as a command's process starts with them
    (an earlier test in this worker may have left its own: a job manager's is kept by a run), then back."""
    import signal

    before = {n: signal.getsignal(getattr(signal, n)) for n in NAMES}
    for n in NAMES:
        signal.signal(getattr(signal, n), signal.default_int_handler if n == "SIGINT" else signal.SIG_DFL)
    yield
    for n, handler in before.items():
        signal.signal(getattr(signal, n), handler)


def test_a_runs_usr2_handler_is_put_back_as_its_block_ends(default_signals):
    """A run in a process that goes on (a test's, a benchmark's) left Preemption's USR2 handler behind for
    whatever ran next (found beside the fork test below, which then failed in a full suite's worker)."""
    import signal

    from align_lab.train.preemption import Interruption
    from align_lab.train.submitit_signals import Preemption

    with Interruption() as interruption:
        preemption = Preemption(interruption=interruption).install()
        assert signal.getsignal(signal.SIGUSR2) == preemption._note
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


def test_a_process_forked_inside_a_run_gets_the_default_signal_actions(default_signals):
    """Twenty-fourth hunt, case 44: a reward's fork Pool worker kept the run's SIGTERM handler, so its
    Pool's terminate() did not end it as it waited on a lock (in C), and the run waited for it forever."""
    import signal
    import threading

    from align_lab.train.preemption import STOPPING, Interruption
    from align_lab.train.submitit_signals import Preemption

    before = signal.getsignal(signal.SIGUSR2)
    with Interruption() as interruption:
        Preemption(interruption=interruption).install()
        pid = os.fork()
        if pid == 0:  # the child: every one of the run's signals back at its default action, none held
            names = (*Interruption.SIGNALS, "SIGUSR2")
            handlers = {n: signal.getsignal(getattr(signal, n)) for n in names}
            defaults = {n: signal.default_int_handler if n == "SIGINT" else signal.SIG_DFL for n in names}
            held = signal.pthread_sigmask(signal.SIG_BLOCK, []) & STOPPING
            os._exit(0 if handlers == defaults and not held else 1)
        _, status = os.waitpid(pid, 0)
        # and one sent as the child starts (twenty-fifth hunt, case 9: a Pool's terminate() in the
        # window before its handlers were its own was dropped, and the run waited for it forever)
        pid = os.fork()
        if pid == 0:
            threading.Event().wait(30)
            os._exit(3)
        os.kill(pid, signal.SIGTERM)
        _, ended = os.waitpid(pid, 0)
        signal.signal(signal.SIGUSR2, before)  # as the test found it
        assert not signal.pthread_sigmask(signal.SIG_BLOCK, []) & STOPPING  # the parent's let go too
    assert os.waitstatus_to_exitcode(status) == 0
    assert os.waitstatus_to_exitcode(ended) == -signal.SIGTERM


def test_a_signal_while_the_stopped_run_ends_says_the_command_ends_with_it(capfd):
    """Fortieth hunt, case 45: a single run's two SIGTERMs 20 ms apart: the first said "SIGTERM again: it
    stops now"; the second, taken by the command's own Interruption as the stopped run wrote its summary,
    said "at the next run's start or its own end", of a command with no next run."""
    from align_lab.train.preemption import STARTING

    with Interruption(deferred=True, waiting=STARTING) as command_s:
        with pytest.raises(Interrupted):
            with Interruption() as run_s:
                raise run_s.stop("SIGTERM")
        os.kill(os.getpid(), signal.SIGTERM)  # as the run's summary is written
        for _ in range(1000):
            pass
        assert command_s.requested == "SIGTERM"
    said = capfd.readouterr().err
    assert "the next run's start" not in said, said
    assert "align_lab: SIGTERM: the command ends once the stopped run has written its summary and" in said
