"""Every algorithm learns on the toy world with its default config: gold reward above SFT's.

The test command checks seed 0 of every algorithm (about 3.5 min of the suite on two workers);
`ALIGN_LAB_LEARNING_SEEDS=0,1,2 bash scripts/test.sh tests/integration/test_learning.py` checks three
seeds, as this test did before it cost 11 of the suite's minutes (docs/testing.md).
"""

from __future__ import annotations

import os

import pytest

from align_lab import registry
from align_lab.admission import admit_spec, spec_from_config
from align_lab.study.run import run
from tests.conftest import compose

SEEDS = tuple(int(s) for s in os.environ.get("ALIGN_LAB_LEARNING_SEEDS", "0").split(","))


@pytest.mark.slow
@pytest.mark.parametrize("algo", registry.choices("algo"))
def test_default_config_beats_sft_gold_reward(algo, tmp_path, cache_dir):
    results = []
    for seed in SEEDS:
        cfg, names = compose([f"algo={algo}", f"seed={seed}", "tracker=none", f"cache_dir={cache_dir}"])
        summary = run(admit_spec(spec_from_config(cfg, names), tmp_path / str(seed)))
        results.append((seed, summary["eval/gold_reward"], summary["eval/gold_reward_sft"]))
    assert all(gold > sft for _, gold, sft in results), results
