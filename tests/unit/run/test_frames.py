"""align_lab/run/frames.py: which frame of a signal's traceback is the user's code."""

from __future__ import annotations

import traceback

from align_lab.run.frames import users_of


def frame(filename: str, lineno: int = 3) -> traceback.FrameSummary:
    return traceback.FrameSummary(filename, lineno, "f", lookup_line=False)


def test_a_librarys_compiled_source_is_not_the_users_code(tmp_path):
    """Forty-third hunt, case 19: SIGTERM in the SFT stage of a run with no code of the user's was
    "interrupted by SIGTERM in a call of your code, at scipy/special/_ufuncs_extra_code.pxi:3"."""
    mine = tmp_path / "myreward.py"
    mine.write_text("def f(): pass\n")
    assert users_of([frame("scipy/special/_ufuncs_extra_code.pxi")]) is None
    assert users_of([frame(str(mine), 7), frame("scipy/special/_ufuncs_extra_code.pxi")]) == f"{mine}:7"
    assert users_of([frame(str(tmp_path / "gone.py"))]) is None  # no such file: not code of a module
