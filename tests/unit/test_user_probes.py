"""user_probes.py and run/probe_check.py: the rows the user's scorers scored last, asked again on resume;
other scores refused (or allowed, said), a scorer of its own randomness or one that raises said, never
refused."""

from __future__ import annotations

import logging

import pytest

from align_lab import user_probes
from align_lab.config import ConfigError
from align_lab.run.probe_check import check_probes
from align_lab.user_probes import PROBE_ROWS, asked_again, same, scored_batch, scored_row, shown


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(user_probes, "_LIVE", {})
    monkeypatch.setattr(user_probes, "_LAST", {})


def test_a_reward_keeps_its_last_call_whole_and_a_verifier_its_last_rows():
    scored_batch("reward.path=m:f", (["p1", "p2"], ["a", "bb"]), [0.1, 0.2])
    scored_batch("reward.path=m:f", (["p3"], ["ccc"]), [0.3])  # the last call only
    for i in range(PROBE_ROWS + 3):
        scored_row("task.verifier=m:v", (f"r{i}", "42", f"q{i}"), float(i % 2))
    saved = user_probes.probes()
    assert saved["reward.path=m:f"] == {"calls": [[["p3"], ["ccc"]]], "scores": [[0.3]]}
    assert [c[0] for c in saved["task.verifier=m:v"]["calls"]] == [f"r{i}" for i in range(3, PROBE_ROWS + 3)]
    user_probes.forget_scored()
    assert user_probes.probes() == {}


def test_scores_compare_within_a_thread_counts_rounding_and_nan_equals_nan():
    assert same([[0.1, float("nan")]], [[0.1 + 1e-7, float("nan")]])  # a sum's rounding, other threads
    assert same([[0.0]], [[4e-7]]) and not same([[0.0]], [[1e-3]])
    assert not same([[0.1, 0.2]], [[0.1, 0.25]])
    assert not same([[0.1]], [[0.1, 0.2]])
    assert same([1.0, 0.0], [1.0, 0.0]) and not same([1.0, 0.0], [1.0, 1.0])  # a verifier's rows
    assert shown([[1.125, 0.5, 0.8125, 0.75, 2.0]]) == "1.125, 0.5, 0.8125, 0.75 ..."


def test_a_scorer_not_loaded_now_is_not_asked():
    assert asked_again("reward.path=m:f", {"calls": [[["p"], ["r"]]], "scores": [[1.0]]}) is None
    assert check_probes({"reward.path=m:f": {"calls": [[["p"], ["r"]]], "scores": [[1.0]]}}, "ck") == {}
    assert check_probes(None, "ck") == {}  # a checkpoint of before probes


def test_other_scores_are_refused_in_one_line_or_allowed_and_said(caplog, tmp_path):
    weight = [1.0]
    user_probes.loaded("reward.path=m:f", lambda p, r: [weight[0] * len(x) for x in r])
    saved = {"reward.path=m:f": {"calls": [[["p", "q"], ["ab", "abc"]]], "scores": [[2.0, 3.0]]}}
    assert check_probes(saved, tmp_path) == {}  # the same scores: nothing said
    weight[0] = 10.0
    with pytest.raises(ConfigError) as e:
        check_probes(saved, tmp_path)
    assert str(e.value) == (
        "resume_changed_inputs=false: reward.path=m:f scores the responses it scored last before the "
        f"checkpoint in {tmp_path} otherwise now (2, 3 then, 20, 30 now): something it reads (a file, a "
        "variable, a server) changed since, or it depends on its process (what it keeps in memory, a "
        "calibration on its first call; Python's hash() of a text, salted per process); a resume would train "
        "one run on two rewards: put it back as it was, set resume_changed_inputs=true to resume anyway, or "
        "choose another hydra.run.dir"
    )
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        changed = check_probes(saved, tmp_path, allow=True)
    assert changed == {"scores reward.path=m:f": ({"scores": "2, 3"}, {"scores": "20, 30"})}
    assert "resume_changed_inputs=true" in caplog.text


def test_a_scorer_whose_change_was_said_is_said_moved_by_it(caplog, tmp_path):
    """Fifty-second hunt, case 8: reward module edited, resumed with resume_changed_inputs=true: after the
    line naming the module's change, a second sent the user to look for another (a file, a variable, a
    server) it reads."""
    user_probes.loaded("reward.path=m:f", lambda p, r: [10.0 * len(x) for x in r])
    saved = {"reward.path=m:f": {"calls": [[["p", "q"], ["ab", "abc"]]], "scores": [[2.0, 3.0]]}}
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        changed = check_probes(saved, tmp_path, allow=True, named=("reward.path",))
    assert changed == {"scores reward.path=m:f": ({"scores": "2, 3"}, {"scores": "20, 30"})}
    assert caplog.messages == [
        "align_lab: warning: resuming with reward.path=m:f, which scores the responses it scored last "
        "otherwise now (2, 3 then, 20, 30 now), as its change said above does: resume_changed_inputs=true"
    ]


def test_a_scorer_of_its_own_randomness_or_that_raises_is_said_not_refused(caplog, tmp_path):
    calls = [0]

    def sampled(prompts, responses):
        calls[0] += 1
        return [float(calls[0])] * len(responses)

    def gone(response, gold, prompt):
        raise FileNotFoundError("w.json")

    user_probes.loaded("reward.path=m:sampled", sampled)
    user_probes.loaded("task.verifier=m:gone", gone)
    saved = {
        "reward.path=m:sampled": {"calls": [[["p"], ["r"]]], "scores": [[0.0]]},
        "task.verifier=m:gone": {"calls": [["r", "42", "q"]], "scores": [1.0]},
    }
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        assert check_probes(saved, tmp_path) == {}
    assert "reward.path=m:sampled gave other answers to the same rows twice in a row" in caplog.text
    # fifteenth hunt: it said only that a check was skipped, not that this resume may not be exact
    assert "is not in the checkpoint, so this resumed run may differ from an uninterrupted one" in caplog.text
    assert "task.verifier=m:gone raised FileNotFoundError: w.json when asked again" in caplog.text


def test_a_combined_source_is_asked_and_named_by_its_own_key():
    """Twelfth hunt: a reward=combined source's function was refused as `reward.path=rpar11:score`, a key
    the user never typed (its errors name reward.components.<name>.source.path since the eighth hunt)."""
    from align_lab.rewards.function import Combined, FunctionReward

    source = FunctionReward(path="align_lab.rewards.function:word_count")
    Combined({"brevity": {"weight": -0.01, "source": source}})
    key = "reward.components.brevity.source.path=align_lab.rewards.function:word_count"
    assert source.probe_key == key and list(user_probes._LIVE) == [key]
    assert asked_again(key, {"calls": [[["p"], ["a b c"]]], "scores": [[3.0]]}) == [[3.0]]


def test_an_environments_answers_compare_their_texts_exactly():
    said = [["higher", 0.0, False, "7"]]
    assert same(said, [["higher", 0.0, False, "7"]])
    assert not same(said, [["lower", 0.0, False, "7"]]) and not same([["1", 0.0]], [[1.0, 0.0]])
    assert shown([["higher", 0.5, True, "x" * 30]]) == "'higher', 0.5, 1, 'xxxxxxxxxxxxxxxxxxxxx...'"


def test_an_environments_episode_is_replayed_turn_by_turn_on_a_replica_and_closed():
    from align_lab.envs.base import REPLAYED, probe_key, replayable, replayed
    from align_lab.envs.calculator import Calculator

    env = Calculator()  # a call answered with its result, then the answer ends the episode
    turns = ["<calc>6*7</calc>", "42"]
    assert replayed("calculator", env, "What is 6 times 7?", turns, True) == [
        "42",
        0.0,
        False,
        "",
        0.0,
        True,
        "42",
    ]
    assert replayed("calculator", env, "q", turns[:1], False) == ["42", 0.0, False]  # cut: no answer()

    class Counting:
        multi_turn, max_turns, step_timeout_s = True, 1, 5.0
        started = 0

        def start(self, prompt):
            self.started += 1
            return env.start(prompt)

    counting = Counting()
    replayable("mine", counting)
    scored_row(probe_key("mine"), ("q", ["3"], True), ["", 0.0, True, "3"], REPLAYED)
    saved = user_probes.probes()
    assert saved["env=mine"]["said"] == REPLAYED
    assert asked_again("env=mine", saved["env=mine"]) == [["", 0.0, True, "3"]]
    assert counting.started == 0  # the run's own environment keeps its state
    replayable("single", type("One", (), {"multi_turn": False})())
    assert "env=single" not in user_probes._LIVE


def test_a_reward_that_empties_or_appends_to_its_lists_is_asked_again_on_the_rows_it_was_given(
    tmp_path, monkeypatch, caplog
):
    """Thirteenth hunt: a reward emptying the list it was given after scoring was refused on resume (the
    probe kept the emptied list), one appending "</s>" in place was called random (each ask appended
    again). Each call gets lists of its own, so the rows kept are the ones it scored."""
    from types import SimpleNamespace

    from align_lab.rewards.function import FunctionReward

    (tmp_path / "probes_mutating13.py").write_text(
        "def emptying(prompts, responses):\n"
        "    scores = [float(len(r)) for r in responses]\n"
        "    responses.clear()\n"
        "    return scores\n\n\n"
        "def appending(prompts, responses):\n"
        "    for i in range(len(responses)):\n"
        "        responses[i] += '</s>'\n"
        "    return [float(len(r)) for r in responses]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("emptying", "appending"):
        reward = FunctionReward(path=f"probes_mutating13:{name}")
        reward.scorer(SimpleNamespace(raw_prompt=lambda p: p))(["p", "q"], ["ab", "abc"], [True, True])
        saved = user_probes.probes()[f"reward.path=probes_mutating13:{name}"]
        assert saved["calls"] == [[["p", "q"], ["ab", "abc"]]], name
        with caplog.at_level(logging.WARNING, logger="align_lab"):
            assert check_probes(user_probes.probes(), tmp_path) == {}
        assert "twice in a row" not in caplog.text


def test_a_scorer_that_exits_cancels_or_changes_folder_when_asked_again_is_said_and_moves_nothing(
    caplog, tmp_path, monkeypatch
):
    """Thirteenth hunt: a reward calling sys.exit(0) when asked again ended the resume with rc 0 and no
    line; one raising asyncio's CancelledError (a BaseException) gave a traceback; one calling os.chdir
    moved the run's relative cache_dir (its stages built again in the code's folder)."""
    import asyncio
    import os
    import sys

    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "code"
    elsewhere.mkdir()

    def exiting(prompts, responses):
        sys.exit(0)

    def cancelled(prompts, responses):
        raise asyncio.CancelledError("judge request cancelled")

    def moving(prompts, responses):
        os.chdir(elsewhere)
        return [1.0]

    saved = {}
    for name, fn in (("exiting", exiting), ("cancelled", cancelled), ("moving", moving)):
        user_probes.loaded(f"reward.path=m:{name}", fn)
        saved[f"reward.path=m:{name}"] = {"calls": [[["p"], ["r"]]], "scores": [[1.0]]}
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        assert check_probes(saved, tmp_path) == {}
    assert "reward.path=m:exiting raised SystemExit" in caplog.text
    assert "reward.path=m:cancelled raised CancelledError: judge request cancelled" in caplog.text
    assert os.getcwd() == str(tmp_path)
