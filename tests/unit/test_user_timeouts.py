"""user_timeouts.py: a call of the user's code past its bound is stopped where it is, in the main thread,
even where the user's code swallows every Exception (twenty-sixth hunt, case 12: a reward that never
returned left the run waiting with no line)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from align_lab import user_timeouts
from align_lab.user_timeouts import CallTimedOut, bounded


@pytest.fixture
def said_soon(monkeypatch):
    monkeypatch.setattr(user_timeouts, "SAY_AFTER_S", 0.2)
    monkeypatch.setitem(user_timeouts._STATE, "said", False)


def sleeps_forever() -> None:
    try:
        time.sleep(10**6)  # the line the call is stopped at
    except Exception:  # a user's catch-all: the stop is no Exception
        pass


def test_a_call_past_its_bound_is_stopped_at_its_line_after_one_waiting_line(said_soon, caplog):
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, "align_lab"), pytest.raises(CallTimedOut) as e:
        with bounded("reward.path=m:f", "reward.timeout_s", 0.6):
            sleeps_forever()
    assert 0.55 < time.monotonic() - start < 5
    assert str(e.value) == "reward.path=m:f: no answer in reward.timeout_s=0.6 s"
    assert e.value.stopped_at() == f"{__file__}:{sleeps_forever.__code__.co_firstlineno + 2}"
    assert [r.getMessage() for r in caplog.records] == [
        "warning: reward.path=m:f has not returned in 0.2 s; the run waits for it up to "
        "reward.timeout_s=0.6 s, then stops in one line"
    ]


def waits_on_a_future() -> None:
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    pool.submit(time.sleep, 5).result()  # the line: not the threading module's wait under it


def test_a_call_waiting_on_a_future_is_stopped_at_the_users_line(said_soon):
    """Thirty-fourth hunt, case 83: a reward scoring through a thread pool, stopped at its bound, was
    said stopped at the standard library's wait, in the threading module."""
    with pytest.raises(CallTimedOut) as e, bounded("reward.path=m:f", "reward.timeout_s", 0.3):
        waits_on_a_future()
    assert e.value.stopped_at() == f"{__file__}:{waits_on_a_future.__code__.co_firstlineno + 4}"


def test_a_call_within_its_bound_and_one_unbounded_or_off_the_main_thread_run_as_they_are(said_soon):
    with bounded("reward.path=m:f", "reward.timeout_s", 0.3):
        time.sleep(0.05)
    time.sleep(0.5)  # its watcher, had it fired late, would have raised by now
    with bounded("reward.path=m:f", "reward.timeout_s", None):
        time.sleep(0.4)
    done = []

    def elsewhere():
        with bounded("reward.path=m:f", "reward.timeout_s", 0.1):
            time.sleep(0.4)
        done.append(True)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert done == [True]


def test_a_users_verifier_past_its_bound_is_one_line_naming_the_key(tmp_path, monkeypatch):
    (tmp_path / "slow_check.py").write_text("import time\ndef check(r, a, p):\n    time.sleep(10**6)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from align_lab.tasks.verifiers import checker
    from align_lab.value_checks import UserCodeError

    with pytest.raises(UserCodeError) as e:
        checker("slow_check:check", 0.3)("r", "a", "p")
    assert str(e.value) == (
        f"task.verifier=slow_check:check: no answer in task.verifier_timeout_s=0.3 s, stopped at "
        f"{tmp_path / 'slow_check.py'}:3 (raise task.verifier_timeout_s if it needs longer)"
    )
    assert e.value.fixed_in_checked_inputs  # its resume allows the fixed module (thirty-second hunt, case 76)


def test_a_call_stuck_in_c_holding_the_gil_is_ended_in_one_line_naming_its_line(tmp_path):
    """Twenty-seventh hunt, case 4: a reward stuck in one C call that holds the GIL (a regex backtracking
    for ever) runs neither the signal's handler nor the watcher thread: no line, for good, and SIGTERM could
    not reach it either. Past the bound and its grace, faulthandler's C thread writes where it is and ends
    the process (rc 1); twenty-eighth hunt, case 3: that was a 25-line dump with no key and no resume
    command. hang_watch.py, told of the call, says the one line once the process has gone."""
    import subprocess
    import sys

    script = (
        "import re\n"
        "from align_lab import user_timeouts\n"
        "user_timeouts.C_GRACE_S = 0.5\n"
        "def stuck():\n"
        "    re.match(r'(a+)+$', 'a' * 60 + 'b')\n"
        "with user_timeouts.bounded('reward.path=m:f', 'reward.timeout_s', 0.5):\n"
        "    stuck()\n"
    )
    (tmp_path / "stuck.py").write_text(script)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(tmp_path / "stuck.py")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and time.monotonic() - start < 60, done.stderr[-2000:]
    assert done.stderr == (
        "align_lab: error: reward.path=m:f: no answer in reward.timeout_s=0.5 s, stuck at "
        f"{tmp_path}/stuck.py:5 in a call that holds Python's lock (no signal reaches it) or that caught the "
        "timeout raised in it (except BaseException, or a bare except): the process "
        "was ended 0.5 s later (raise reward.timeout_s if it needs longer)\n"
    )


def test_a_call_that_catches_its_timeout_is_ended_in_one_line_that_says_it_may_have(tmp_path):
    """Fourth hunt of 2026-12-04, v3: a verifier looping over `try: time.sleep(1) except BaseException:
    pass` caught the timeout raised in it and went on; it was ended past its grace as a call stuck in C,
    "no signal reaches it", when the signal had reached it. The line says both."""
    import subprocess
    import sys

    script = (
        "import time\n"
        "from align_lab import user_timeouts\n"
        "user_timeouts.C_GRACE_S = 0.5\n"
        "def swallows():\n"
        "    while True:\n"
        "        try:\n"
        "            time.sleep(0.1)\n"
        "        except BaseException:\n"
        "            pass\n"
        "with user_timeouts.bounded('task.verifier=m:f', 'task.verifier_timeout_s', 0.5):\n"
        "    swallows()\n"
    )
    (tmp_path / "swallows.py").write_text(script)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "swallows.py")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert done.stderr.startswith(
        "align_lab: error: task.verifier=m:f: no answer in task.verifier_timeout_s=0.5 s, stuck at "
        f"{tmp_path}/swallows.py:"
    )
    assert (
        " or that caught the timeout raised in it (except BaseException, or a bare except): the process "
        "was ended " in done.stderr
    )


def test_the_stuck_calls_line_names_the_users_frame_and_the_runs_resume(tmp_path):
    """hang_watch.py: the innermost frame of the dump outside the interpreter's and align_lab's folders,
    the step `checkpoints/last` names, and summary.json `failed` with the line and the dump."""
    import json

    from align_lab.hang_watch import ended_line, said_in_summary, step, stuck_line, user_frame

    dump = (
        "Timeout (0:00:40)!\n"
        "Thread 0x00007fb248e647c0 (most recent call first):\n"
        '  File "/usr/lib/python3.11/re/__init__.py", line 166 in match\n'
        '  File "/home/me/hx.py", line 8 in regex_hang\n'
        '  File "/venv/align_lab/rewards/function.py", line 89 in _scores\n'
    )
    assert user_frame(dump, ["/usr/lib/python3.11", "/venv/align_lab"]) == "/home/me/hx.py:8"
    assert user_frame(dump, ["/usr", "/home", "/venv"]) == "/usr/lib/python3.11/re/__init__.py:166"
    assert user_frame("", []) == "an unknown line"
    (tmp_path / "last").write_text("state-00000020.pt\n")
    assert step(str(tmp_path / "last")) == 20 and step(str(tmp_path / "gone")) == 0
    call = {"where": "reward.path=hx:f", "key": "reward.timeout_s", "timeout_s": 10, "grace_s": 10.0}
    run = {"pointer": str(tmp_path / "last"), "command": "cd /w && python -m align_lab x=1"}
    assert stuck_line({**call, "run": run}, "/home/me/hx.py:8") == (
        "reward.path=hx:f: no answer in reward.timeout_s=10 s, stuck at /home/me/hx.py:8 in a call that "
        "holds Python's lock (no signal reaches it) or that caught the timeout raised in it (except "
        "BaseException, or a bare except): the process was ended 10 s later (raise "
        "reward.timeout_s if it needs longer); fix it, then resume from step 20 with: cd /w && python -m "
        "align_lab x=1 resume_changed_inputs=true"  # the fix is the code's: a file a resume checks
    )
    killed = ended_line({**call, "run": run}, "", [])  # no dump: a kill from outside, most often
    assert killed.endswith("; resume from step 20 with: cd /w && python -m align_lab x=1"), killed
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"status": "running", "seed": 3}))
    said_in_summary(str(summary), "the line", dump)
    assert json.loads(summary.read_text()) == {
        "status": "failed",
        "seed": 3,
        "error": "the line",
        "traceback": dump,
    }


def test_a_combined_sources_bound_is_named_by_its_own_key():
    """Twenty-seventh hunt, case 24: a hanging reward=combined source said "raise reward.timeout_s", a key
    reward=combined does not have; its own is reward.components.<name>.source.timeout_s."""
    from align_lab.rewards.function import Combined, FunctionReward

    source = FunctionReward(path="align_lab.rewards.function:word_count")
    assert source.timeout_key() == "reward.timeout_s"
    Combined(components={"brevity": {"weight": 1.0, "source": source}})
    assert source.timeout_key() == "reward.components.brevity.source.timeout_s"


@pytest.mark.slow  # over 1.5 s of CPU: CI's tier (docs/testing.md, the fast tier)
def test_a_components_class_whose_import_is_stuck_in_c_is_one_line_naming_it(tmp_path):
    """Thirtieth hunt, case 4: an environment class's module stuck in C as it was imported (`env._target_`):
    no output for good. Past IMPORT_STUCK_S (and as long again, at most 30 s) the process ends with the
    line a stuck call of the user's gets, naming the key and the user's line."""
    import subprocess
    import sys

    (tmp_path / "stuckmod.py").write_text("import re\nre.match(r'(a+)+$', 'a' * 60 + 'b')\n")
    script = (
        f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\n"
        "from omegaconf import OmegaConf\n"
        "import align_lab.config as config\n"
        "config.IMPORT_STUCK_S = 0.5\n"
        "config.build(OmegaConf.create({'_target_': 'stuckmod.G'}), 'env')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.splitlines()[-1] == (
        f"align_lab: error: env._target_=stuckmod.G: importing it: no answer in 0.5 s, stuck at "
        f"{tmp_path / 'stuckmod.py'}:2 in a call that holds Python's lock (no signal reaches it) or that "
        "caught the timeout raised in it (except BaseException, or a bare except): the "
        "process was ended 1 s later"
    ), done.stderr[-2000:]


@pytest.mark.parametrize(
    "act, rc, said",
    [
        (
            "os.kill(os.getpid(), signal.SIGKILL)",
            -9,
            "the process was killed in this call with no word from Python: SIGKILL (the system's "
            "out-of-memory killer, a kill -9, or the call's own os.kill), or an exit that skips Python's "
            "(os._exit in a thread, exit in C)",
        ),
        ("os.abort()", -6, "the process crashed (Aborted) in this call, at {module}:3"),
        ("ctypes.string_at(0)", -11, "the process crashed (Segmentation fault) in this call, at {module}:3"),
    ],
    ids=["sigkill", "abort", "segfault"],
)
def test_a_components_module_that_ends_the_process_as_it_is_imported_is_one_line(tmp_path, act, rc, said):
    """Thirtieth hunt, case 2: a module of the user's that kills its own process (SIGKILL), aborts, or
    crashes in C as it is imported (`env._target_`): rc 137 or 134 and not a word. hang_watch.py, told of
    the call, says it once the process has gone: with the user's line where faulthandler could write it
    (a fatal signal's), else what can end a process with no word."""
    import subprocess
    import sys

    module = tmp_path / "endsmod.py"
    module.write_text(f"import ctypes, os, signal\n\n{act}\n")
    script = (
        f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\n"
        "from omegaconf import OmegaConf\n"
        "import align_lab.config as config\n"
        "config.build(OmegaConf.create({'_target_': 'endsmod.G'}), 'env')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == rc and done.stderr == (
        f"align_lab: error: env._target_=endsmod.G: importing it: {said.format(module=module)}\n"
    ), done.stderr[-2000:]


def test_a_crash_outside_any_call_of_the_users_is_shown_as_faulthandler_wrote_it(tmp_path):
    """hang_watch.py takes faulthandler's file for fatal signals once it is started: a crash of align_lab's
    own (or a library's) outside a call of the user's is shown whole, as faulthandler would have, never
    lost with the file."""
    import subprocess
    import sys

    script = (
        "import ctypes\nfrom align_lab import user_timeouts\n"
        "with user_timeouts.bounded('reward.path=m:f', 'reward.timeout_s', 60):\n"
        "    pass\n"
        "ctypes.string_at(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -11 and done.stderr.startswith("Fatal Python error: Segmentation fault"), (
        done.stderr[-2000:]
    )
    assert 'File "<string>", line 5 in <module>' in done.stderr and "align_lab: error" not in done.stderr


def test_a_run_killed_with_its_watch_leaves_no_dump_file_in_the_temp_folder(tmp_path):
    """hang_watch.py's dump file (faulthandler's) was removed only by the watch as the run ended: a kill -9
    of the group (a scheduler's, a test's) left an empty align_lab-stuck-*.txt each time (68 in a day)."""
    import os
    import subprocess
    import sys

    code = (
        "import os, sys, time\nfrom align_lab.user_timeouts import watching\n"
        "fd = watching()[2]\npath = os.readlink(f'/proc/self/fd/{fd}').removesuffix(' (deleted)')\n"
        "print(path, flush=True)\nfor _ in range(100):\n"
        "    if not os.path.exists(path): break\n    time.sleep(0.1)\n"
        "os.killpg(0, 9)\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=60,
    )
    assert done.returncode == -9 and done.stdout.startswith(str(tmp_path)), done
    assert not os.path.exists(done.stdout.strip()), list(tmp_path.iterdir())
