"""The run's stages are a recipe (issue 27 item 1): build_stages builds them in one fixed order before the
seed and returns a frozen Stages; rewards read it and nothing trains on attribute access."""

from __future__ import annotations

import dataclasses

import pytest

from align_lab.cache import StageCache
from align_lab.models.tiny import TinyLM
from align_lab.rewards import GoldReward, LearnedRM, reward_models
from align_lab.rewards.function import Combined, FunctionReward
from align_lab.run.stages import build_stages
from align_lab.tasks.toy_prefs import ToyPrefs
from align_lab.train.sft import SFTConfig
from align_lab.value_checks import ArtifactMissing
from tests.conftest import Quiet

SMALL = dict(n_demonstrations=64, n_pairs=24)


def small_stages(cache_dir, **needs):
    sft = SFTConfig(epochs=1, batch_size=32)
    return build_stages(ToyPrefs(**SMALL), TinyLM(), sft, StageCache(cache_dir), Quiet, **needs)


def cache_entries(cache_dir) -> list[str]:
    """The stage folders of a cache (its lock files aside)."""
    return sorted(str(p.relative_to(cache_dir)) for p in cache_dir.glob("*/*") if p.suffix != ".lock")


def test_a_reward_names_the_reward_models_it_needs_before_any_stage_is_built():
    rm = LearnedRM(epochs=1)
    combined = Combined(
        components={
            "rm": {"weight": 1.0, "source": rm},
            "words": {"weight": -0.1, "source": FunctionReward(path="align_lab.rewards.function:word_count")},
        }
    )
    assert reward_models(rm) == (rm,) and reward_models(combined) == (rm,)
    assert reward_models(GoldReward()) == ()


def test_stages_are_built_in_a_fixed_order_frozen_and_read_without_building(tmp_path):
    rm = LearnedRM(epochs=1, batch_size=8)
    stages = small_stages(tmp_path, reward_models=(rm,))
    assert list(stages.results) == ["tokenizer", "sft", "preferences", "reward_model"]
    assert not any(r.hit for r in stages.results.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        stages.sft_path = tmp_path  # type: ignore[misc]
    built = cache_entries(tmp_path)
    # reading the stages (a reward's scorer, the policy, the reference) builds nothing
    score = rm.scorer(stages)
    assert score(["p"], ["a b"], [True]).shape == (1,)
    stages.load_policy(), stages.load_reference(), stages.preferences
    assert cache_entries(tmp_path) == built
    # a reward model that was not asked for is an error, never a build
    with pytest.raises(KeyError, match="no reward model stage"):
        LearnedRM(epochs=2).scorer(stages)
    assert cache_entries(tmp_path) == built
    # the same recipe again: every stage from the cache, under the same keys
    again = small_stages(tmp_path, reward_models=(rm,))
    assert {s: r.key for s, r in again.results.items()} == {s: r.key for s, r in stages.results.items()}
    assert all(r.hit for r in again.results.values()) and again.rm_metrics == stages.rm_metrics
    # a rank other than 0 only loads: served here, refused in one line where rank 0 built nothing (a
    # stage built on such a rank would be saved without weights: transformers saves on rank 0 only)
    assert (
        small_stages(tmp_path, reward_models=(rm,), may_build=False).results.keys() == stages.results.keys()
    )
    # seventeenth hunt: a ~100-line traceback that guessed a changed checkout where the entry was deleted
    with pytest.raises(ArtifactMissing, match=r"^stage tokenizer: key \w+ is not in .*, where rank 0 built"):
        small_stages(tmp_path / "empty", may_build=False)
    assert cache_entries(tmp_path / "empty") == []


def test_without_a_learned_reward_no_pairs_or_reward_model_are_built(tmp_path):
    stages = small_stages(tmp_path)
    assert list(stages.results) == ["tokenizer", "sft"] and stages.preferences is None
    assert stages.reward_models == {} and stages.rm_metrics == {}
