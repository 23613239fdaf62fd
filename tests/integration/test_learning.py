"""An algorithm learns on the toy world with its default config: gold reward above SFT's.

The test command checks, on seed 0, the algorithms of the four papers align_lab is built on
(`CORE`: PPO, PPO-max, REINFORCE, RLOO and RAFT against DPO from Back to Basics, REINFORCE++ and the
GRPO it is compared with, SAIL; about 4 of the suite's summed minutes). Every other algorithm runs
end to end in the suite (test_run.py's contract test, 3 steps) and has its loss checked against
hand-derived numbers; that its default config learns is checked by
`ALIGN_LAB_LEARNING_ALGOS=all bash scripts/test.sh tests/integration/test_learning.py` (all 31, about
12 summed minutes; or a comma-separated list of algo names), and
`ALIGN_LAB_LEARNING_SEEDS=0,1,2` checks three seeds (docs/testing.md).
"""

from __future__ import annotations

import os

import pytest

from align_lab import registry
from align_lab.run.admission import admit_spec, spec_from_config
from align_lab.run.execute import run
from tests.conftest import compose, full_but
from tests.integration.test_run import NEEDS

CORE = ("ppo", "ppo_max", "vanilla_pg", "rloo", "raft", "dpo", "reinforce_pp", "grpo", "sail_pr")
SEEDS = tuple(int(s) for s in os.environ.get("ALIGN_LAB_LEARNING_SEEDS", "0").split(","))


def learning_algos(value: str | None, known: list[str]) -> list[str]:
    """The algorithms ALIGN_LAB_LEARNING_ALGOS names: unset, CORE; "all", every registered one; else
    a comma-separated list of registered names (an unknown one is a one-line error naming it)."""
    if not value:  # CI's tier keeps one algorithm of each loop's kind; the full tier runs them all
        return full_but(list(CORE), {"ppo", "rloo", "grpo", "dpo"})
    if value == "all":
        return list(known)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        allowed = f"all, or of {', '.join(known)}"
        raise ValueError(
            f"ALIGN_LAB_LEARNING_ALGOS={value}: unknown {', '.join(unknown)}; allowed: {allowed}"
        )
    return names


def test_the_core_algorithms_are_registered() -> None:
    assert set(CORE) <= set(registry.choices("algo"))
    assert learning_algos("all", ["a", "b"]) == ["a", "b"] and learning_algos("b", ["a", "b"]) == ["b"]
    with pytest.raises(ValueError, match="unknown c; allowed: all, or of a, b"):
        learning_algos("a,c", ["a", "b"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "algo", learning_algos(os.environ.get("ALIGN_LAB_LEARNING_ALGOS"), registry.choices("algo"))
)
def test_default_config_beats_sft_gold_reward(algo, tmp_path, cache_dir):
    results = []
    for seed in SEEDS:
        overrides = [f"algo={algo}", *NEEDS.get(algo, []), f"seed={seed}", "tracker=none"]
        cfg, names = compose([*overrides, f"cache_dir={cache_dir}"])
        summary = run(admit_spec(spec_from_config(cfg, names), tmp_path / str(seed)))
        results.append((seed, summary["eval/gold_reward"], summary["eval/gold_reward_sft"]))
    assert all(gold > sft for _, gold, sft in results), results
