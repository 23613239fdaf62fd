"""Where in the user's code a run was stopped: the frame a sys.exit, a BaseException or a signal came
from, named in the stop's one line (run/summary.py)."""

from __future__ import annotations

import sysconfig
import traceback
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # align_lab's own folder
HANDLER = PACKAGE / "train" / "preemption.py"  # where the run's signal handler raises Interrupted
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


SAID_EXIT = PACKAGE / "user_signals.py"  # where ExitCalled is raised


def exited_where(e: SystemExit) -> str:
    """`file:line` of the innermost frame that raised `e` (the user's reward, verifier or environment: a
    sys.exit there would end the process with its code, rc 0 and no line)."""
    frames = getattr(e, "rank_frames", None) or traceback.extract_tb(e.__traceback__)  # train/launch.py
    # the innermost frame of code of the run's (yours): not an installed package's, which may wrap
    # sys.exit (wandb's exit hook), nor the standard library's
    own = [f for f in frames if not any(p in f[0] for p in ("site-packages", "dist-packages"))]
    own = [f for f in own if f[0] != str(SAID_EXIT)]  # user_signals.py's os._exit, raised for the caller
    own = [f for f in own if not Path(f[0]).resolve().is_relative_to(STDLIB)] or frames
    return f"{own[-1][0]}:{own[-1][1]}" if own else "the run's code"


def users_frame(e: BaseException) -> str | None:
    """`file:line` where the run's signal handler raised `e`, where that is the user's code (not
    align_lab's, an installed package's nor the standard library's, which may be under it: time.sleep's
    caller is); else None."""
    frames = traceback.extract_tb(e.__traceback__)
    if not frames or Path(frames[-1].filename).resolve() != HANDLER:  # not raised by a signal's handler
        return None
    while frames and Path(frames[-1].filename).resolve() == HANDLER:  # it ran where the signal came
        frames.pop()
    return users_of(frames)


def users_of(frames: list) -> str | None:
    """`file:line` of the innermost of `frames` (traceback.FrameSummary) that is the user's code, or None
    where align_lab's comes first."""
    for frame in reversed(frames):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(PACKAGE):
            return None
        if not (frame.filename.endswith(".py") and path.is_file()):  # a library's compiled code: scipy's
            continue  # `scipy/special/_ufuncs_extra_code.pxi` was "a call of your code" (43rd hunt, case 19)
        if not any(p in frame.filename for p in ("site-packages", "dist-packages", "<")):
            if not path.is_relative_to(STDLIB):
                return f"{frame.filename}:{frame.lineno}"
    return None
