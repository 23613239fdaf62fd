"""A run whose reward clip flattened every score ends saying so (fortieth hunt, case 13)."""

from __future__ import annotations

import logging

from tests.conftest import run_in_process


def test_a_run_whose_reward_clip_clamped_every_score_ends_naming_the_clip(
    tmp_path, cache_dir, caplog, monkeypatch
):
    """A length reward (15-49) under reinforce_pp's default reward_clip=10 at temperature 1: every score 10,
    every gradient 0, and the end's line said the sampled tokens were certain, as a temperature near 0 makes
    them."""
    (tmp_path / "lengths.py").write_text(
        "def score(prompts, responses):\n    return [11.0 + len(r) for r in responses]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reward = ["reward=function", "reward.path=lengths:score"]
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        run_in_process(["algo=reinforce_pp", *reward], tmp_path / "run", cache_dir)
    [end] = [r.getMessage() for r in caplog.records if "ended where SFT started" in r.getMessage()]
    assert "algo.reward_clip clamped 100% of a step's scores to its bound" in end, end
    assert "temperature" not in end, end
