"""Every algorithm learns on the toy world with its default config: gold reward above SFT's, 3 seeds."""

from __future__ import annotations

import pytest

from align_lab import registry
from align_lab.app import spec_from_config
from align_lab.study.run import run
from tests.conftest import compose


@pytest.mark.slow
@pytest.mark.parametrize("algo", registry.choices("algo"))
def test_default_config_beats_sft_gold_reward_on_three_seeds(algo, tmp_path, cache_dir):
    results = []
    for seed in (0, 1, 2):
        cfg, names = compose([f"algo={algo}", f"seed={seed}", "tracker=none", f"cache_dir={cache_dir}"])
        summary = run(spec_from_config(cfg, names), tmp_path / str(seed))
        results.append((summary["eval/gold_reward"], summary["eval/gold_reward_sft"]))
    assert all(gold > sft for gold, sft in results), results
