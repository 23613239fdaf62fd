"""run/execute.py ended_by_a_thread: a thread of the user's code that ends the run's process (user_threads.py)
as the run ends its own way (twenty-sixth hunt, case 2: one that fired as the run completed rewrote its
summary.json `failed` and said "ending it unfinished; resume from step 6")."""

from __future__ import annotations

import json
import os
import threading
import time

from align_lab.run import execute
from align_lab.run.run_folder import RunFolder
from align_lab.user_signals import ExitCalled


def in_a_child(tmp_path, body) -> tuple[int, str]:
    """body() in a forked child whose stderr is a file: its exit code and what it wrote there."""
    err = tmp_path / "stderr"
    pid = os.fork()
    if pid == 0:
        fd = os.open(err, os.O_WRONLY | os.O_CREAT)
        os.dup2(fd, 2)
        try:
            body()
        finally:
            os._exit(99)  # body() must end the process itself
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err.read_text()


def killed(tmp_path) -> ExitCalled:
    e = ExitCalled(1)
    e.call, e.thread = "signal.raise_signal(SIGKILL)", True
    e.rank_frames = [(str(tmp_path / "mine.py"), 7, "watch", "")]
    return e


def test_a_thread_that_ends_a_completed_run_leaves_it_completed(tmp_path):
    folder, summary = RunFolder(tmp_path), {"status": "completed", "gold": 0.5}
    end = [None, folder, summary, {}, [1.0], time.perf_counter()]
    code, err = in_a_child(tmp_path, lambda: execute.ended_by_a_thread(*end, killed(tmp_path)))
    assert code == 0, err
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["status"] == "completed" and written["gold"] == 0.5, written
    assert err == (
        f"align_lab: warning: {tmp_path / 'mine.py'}:7 (a thread of your code) called "
        "signal.raise_signal(SIGKILL) after the run ended (completed)\n"
    )


def test_a_thread_waits_for_the_runs_own_end_it_raced_and_then_says_that_end(tmp_path):
    """The run's main thread writes its end under ENDING: a thread that came meanwhile waits for it, reads
    the end written, and leaves it as it is, never `failed` over `completed`."""
    folder, summary = RunFolder(tmp_path), {"status": "running"}
    end = [None, folder, summary, {}, [1.0], time.perf_counter()]

    def race():
        execute.ENDING.acquire()  # the run's own end under way
        threading.Thread(target=execute.ended_by_a_thread, args=(*end, killed(tmp_path))).start()
        time.sleep(0.3)
        summary["status"] = "completed"
        folder.write_summary(summary)
        execute.ENDING.release()
        time.sleep(10)  # the thread ends the process

    code, err = in_a_child(tmp_path, race)
    assert code == 0 and "after the run ended (completed)" in err, (code, err)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"
