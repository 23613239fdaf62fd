"""align_lab/user_pulse.py: how long the hang watch waits on a process that runs no Python."""

from __future__ import annotations

import logging

from align_lab.user_pulse import HELD_S, held_s


def test_a_wrong_held_s_is_said_once_a_process_and_the_default_taken(caplog):
    """Seventh hunt of 2026-12-04: ALIGN_LAB_HELD_S=-5 was warned twice, by admission and the run's start."""
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        assert held_s("-5") == held_s("-5") == HELD_S
        assert held_s("nope") == HELD_S
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        f"align_lab: warning: ALIGN_LAB_HELD_S=-5: not a number of seconds > 0; {HELD_S:g} s taken",
        f"align_lab: warning: ALIGN_LAB_HELD_S=nope: not a number of seconds > 0; {HELD_S:g} s taken",
    ], said
    assert held_s(None) == HELD_S and held_s("3") == 3.0
