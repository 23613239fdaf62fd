"""align_lab/user_limits.py: a call of the user's code lowers a soft resource limit for its own time only,
and the run's hard limits stay (fortieth hunt, cases 10-11). Each in a fresh interpreter: a hard limit
lowered there is for good, and would be for a test worker too."""

from __future__ import annotations

import subprocess
import sys

import pytest

CALL = """
import logging, resource, sys
logging.basicConfig(stream=sys.stdout, format="%(message)s")
from align_lab.user_limits import RunLimitsLost, limits_kept
which = resource.RLIMIT_{name}
before = resource.getrlimit(which)
try:
    with limits_kept("reward.path=m:f"):
        {act}
        print("in the call", resource.getrlimit(which) != before)
except RunLimitsLost as e:
    print("lost:", e)
    print("log handlers' errors said:", logging.raiseExceptions)  # wandb's: 264 lines (41st hunt, 50)
print("after", resource.getrlimit(which) == before)
"""
CTYPES = """import ctypes
        class R(ctypes.Structure):
            _fields_ = [("cur", ctypes.c_ulong), ("max", ctypes.c_ulong)]
        ctypes.CDLL(None).setrlimit(which, ctypes.byref(R(1000, 1000)))"""


def called(name: str, act: str) -> list[str]:
    code = CALL.format(name=name, act=act)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize(
    "act",
    ["resource.setrlimit(which, (1000, 1000))", "resource.prlimit(0, which, (1000, 1000))"],
)
def test_a_calls_lowered_hard_limit_is_kept_and_its_soft_one_put_back(act):
    """A reward's setrlimit(RLIMIT_FSIZE, (1000, 1000)) left every later write failing at 1000 bytes (root
    without CAP_SYS_RESOURCE cannot raise a hard limit again) after a warning that said it was put back."""
    assert called("FSIZE", act) == [
        "in the call True",
        "warning: reward.path=m:f changed the process's RLIMIT_FSIZE limit unlimited -> 1000 (hard "
        "unlimited) (setrlimit lowers a soft limit only here: the hard ones asked were kept); the run's are "
        "put back after each call (its numbers, its own code and its lines depend on them)",
        "after True",
    ]


def test_a_soft_limit_lowered_is_put_back_and_said():
    lines = called("NOFILE", "resource.setrlimit(which, (100, before[1]))")
    assert lines[0] == "in the call True" and lines[-1] == "after True"
    assert lines[1].startswith("warning: reward.path=m:f changed the process's RLIMIT_NOFILE limit ")
    assert "-> 100 (hard " in lines[1] and "hard ones" not in lines[1]


def test_a_hard_limit_lowered_in_c_where_it_cannot_be_raised_again_is_one_line():
    """Past Python's resource module (ctypes): where the process may raise a hard limit again it is put back
    as any other; where not (no CAP_SYS_RESOURCE), the call fails in one line naming it."""
    probe = "import resource; r = resource.RLIMIT_CORE; h = resource.getrlimit(r)[1]\n"
    probe += "resource.setrlimit(r, (0, 0))\ntry:\n    resource.setrlimit(r, (0, h)); print('may')\n"
    probe += "except (ValueError, OSError): print('may not')"
    may = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip()
    lines = called("FSIZE", CTYPES)
    assert lines[0] == "in the call True"
    if may == "may":
        assert lines[-1] == "after True"
    else:
        assert lines == [
            "in the call True",
            "lost: reward.path=m:f lowered the process's hard RLIMIT_FSIZE limit unlimited -> 1000 for good "
            "(raising a hard limit again takes a privilege, CAP_SYS_RESOURCE, this process lacks): the run "
            "cannot go on under it; take the setrlimit call out",
            "log handlers' errors said: False",
            "after False",
        ]


LATER = """
import logging, resource, sys, threading
logging.basicConfig(stream=sys.stdout, format="%(message)s")
from align_lab.user_limits import RunLimitsLost, held, limits_kept
which = resource.RLIMIT_FSIZE
before, returned = resource.getrlimit(which), threading.Event()
def later():
    returned.wait()
    {act}
with limits_kept("reward.path=m:f"):
    thread = threading.Thread(target=later)
    thread.start()
returned.set()  # its setrlimit after the call returned
thread.join()
try:
    held()
except RunLimitsLost as e:
    print("lost:", e)
print("after", resource.getrlimit(which) == before)
"""


def later(act: str) -> list[str]:
    code = LATER.format(act=act.replace("\n", "\n    "))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_a_limit_a_calls_thread_lowers_after_it_returned_is_put_back_between_calls():
    """Forty-first hunt, case 49: a reward's thread lowering RLIMIT_FSIZE (1000, 1000) a second after its call
    returned failed the run's next write of metrics.jsonl in a 362-line traceback, summary.json `running`."""
    assert later("resource.setrlimit(which, (1000, 1000))") == [
        "warning: reward.path=m:f left code running (a thread or process of its) that changed the process's "
        "RLIMIT_FSIZE limit unlimited -> 1000 (hard unlimited) (setrlimit lowers a soft limit only here: the "
        "hard ones asked were kept); the run's are put back as each call begins and at each step's end (its "
        "numbers, its own code and its lines depend on them)",
        "after True",
    ]


def test_a_hard_limit_a_calls_thread_lowers_in_c_after_it_returned_is_one_line_naming_the_call():
    lines = later(CTYPES.replace("\n        ", "\n"))
    if lines == ["after True"]:  # this process may raise a hard limit again: put back as any other
        return
    assert lines == [
        "lost: reward.path=m:f left code running (a thread or process of its) that lowered the process's "
        "hard RLIMIT_FSIZE limit unlimited -> 1000 for good (raising a hard limit again takes a privilege, "
        "CAP_SYS_RESOURCE, this process lacks): the run cannot go on under it; take the setrlimit call out",
        "after False",
    ]


def test_a_limit_lowered_after_the_last_step_is_put_back_as_the_run_ends_and_a_lost_one_said():
    """Forty-fourth hunt, case 10: a reward's thread lowering RLIMIT_FSIZE after the last step's check failed
    the final checkpoint and summary.json in tracebacks; as a run ends the limits are put back, and a hard
    one lost for good is a warning (nothing is left to stop)."""
    code = LATER.replace("    held()\n", "    held_at_the_end()\n").replace(
        "import RunLimitsLost, held, limits_kept", "import RunLimitsLost, held_at_the_end, limits_kept"
    )
    for act, last in (("resource.setrlimit(which, (1000, 1000))", "after True"), (CTYPES, None)):
        done = subprocess.run(
            [sys.executable, "-c", code.format(act=act.replace("\n        ", "\n    "))],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert not any(x.startswith("lost:") for x in lines), lines  # never raised
        assert lines[0].startswith("warning: reward.path=m:f left code running"), lines
        if last:
            assert lines[-1] == last
