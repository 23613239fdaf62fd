"""A reward or verifier of the user's whose signature the run cannot call is said as it is loaded, before
any compute (thirty-ninth hunt, case 58: `f(response, answer)` as a verifier failed at its first call,
after the stages were built, its line align_lab's own call site)."""

from __future__ import annotations

import sys

import pytest

from align_lab.rewards.function import load_callable
from align_lab.tasks.verifiers import checker

SOURCE = """
def two(response, answer):
    return 1.0


def one(responses):
    return [1.0]


def many(*args):
    return 1.0
"""


@pytest.fixture
def module(tmp_path, monkeypatch):
    (tmp_path / "sig39.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "sig39"
    sys.modules.pop("sig39", None)


def test_a_verifier_of_two_arguments_is_refused_as_it_is_loaded(module):
    with pytest.raises(ValueError) as e:
        checker(f"{module}:two")
    assert str(e.value) == (
        f"verifier={module}:two: two(response, answer) cannot be called as the run calls it, "
        "f(response, answer, prompt) (too many positional arguments)"
    )
    assert checker(f"{module}:many")  # *args takes them


def test_a_reward_of_one_argument_is_refused_as_it_is_loaded(module):
    with pytest.raises(ValueError) as e:
        load_callable(f"{module}:one")
    assert str(e.value) == (
        f"path={module}:one: one(responses) cannot be called as the run calls it, f(prompts, responses) "
        "(too many positional arguments)"
    )
    assert load_callable(f"{module}:two")  # two arguments: a reward's
