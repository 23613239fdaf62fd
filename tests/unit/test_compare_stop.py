"""compare.py signals_stop: a SIGINT whose Stopped was raised inside a finalizer (a weakref callback during
a garbage collection) was ignored there ("Exception ignored in: ... Stopped: SIGINT") and compare wrote its
report and ended 0 (the full suite at a257869, test_compare_damaged's SIGINT case under load)."""

from __future__ import annotations

import signal

import pytest

from align_lab.compare import Stopped, signals_stop


def test_a_stop_swallowed_where_it_was_raised_is_raised_again_as_the_block_ends():
    with pytest.raises(Stopped, match="SIGINT"):
        with signals_stop():
            try:
                signal.raise_signal(signal.SIGINT)
            except Stopped:  # as Python ignores an exception raised in a finalizer
                pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_block_with_no_signal_ends_as_it_would():
    with signals_stop():
        value = 3
    assert value == 3


def test_a_stop_raised_in_a_finalizer_is_not_printed_there(monkeypatch):
    """The CI of 749b1cf, under load: the stop raised in a weakref's callback printed Python's 5 lines
    ("Exception ignored in: <function WeakKeyDictionary...remove> ... Stopped: SIGINT") before compare's
    own line. Raised again as the block ends, unsaid where it was ignored."""
    import gc
    import sys
    import weakref

    said = []
    monkeypatch.setattr(sys, "unraisablehook", said.append)  # what Python prints them with

    class Held:
        pass

    with pytest.raises(Stopped, match="SIGINT"), signals_stop():
        held = Held()
        weakref.finalize(held, signal.raise_signal, signal.SIGINT)  # runs as it is collected
        del held
        gc.collect()
    assert said == [] and sys.unraisablehook == said.append
