"""stages.seed: shared stages built once for every run seed (default), or per run seed, so that a
study's CIs cover the whole pipeline; and the report says which randomness its CIs cover."""

from __future__ import annotations

from pathlib import Path

import pytest

from align_lab.config import ConfigError
from align_lab.results.notes import config_differences, stage_randomness
from align_lab.results.runs import Run
from align_lab.run.admission import spec_from_config
from tests.conftest import compose


def _spec(overrides):
    cfg, names = compose(overrides)
    return spec_from_config(cfg, names)


def test_shared_stages_keep_their_own_seeds_for_every_run_seed():
    spec = _spec(["seed=3", "sft.seed=7"])
    assert spec.sft.seed == 7 and spec.reward.seed == 0
    assert spec.config["stages"]["seed"] == "shared"


def test_per_run_stages_take_the_run_seed_including_a_combined_rewards_model():
    spec = _spec(["seed=3", "stages.seed=per_run"])
    assert spec.sft.seed == 3 and spec.reward.seed == 3
    assert spec.config["sft"]["seed"] == 3  # the run record says what the stages were built from
    combined = _spec(["seed=5", "stages.seed=per_run", "reward=combined"])
    assert combined.reward.components["rm"]["source"].seed == 5


def test_an_unknown_stage_seed_setting_is_one_line():
    with pytest.raises(ConfigError, match="^stages.seed=each: must be one of shared, per_run$"):
        _spec(["stages.seed=each"])


def _run(seed: int, setting: str | None) -> Run:
    config = {"seed": seed, "sft": {"seed": seed if setting == "per_run" else 0, "lr": 1e-3}}
    if setting:
        config["stages"] = {"seed": setting}
    return Run(folder=Path(f"/r{seed}"), status="completed", summary={"status": "completed"}, config=config)


def test_per_run_stage_seeds_are_not_a_config_difference_and_the_report_says_what_cis_cover():
    per_run = [_run(0, "per_run"), _run(1, "per_run")]
    assert config_differences(per_run, lambda r: "g") == {}
    assert "cover the whole pipeline" in stage_randomness(per_run)
    shared = [_run(0, "shared"), _run(1, None)]  # a run from before the key counts as shared
    assert "policy optimisation's randomness only" in stage_randomness(shared)
    mixed = [_run(0, "shared"), _run(1, "per_run")]
    assert stage_randomness(mixed).startswith("WARNING")
    assert config_differences(mixed, lambda r: "g") == {"g": ["sft.seed", "stages.seed"]}
