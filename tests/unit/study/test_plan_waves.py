"""A sweep's `plan:` is checked before anything runs (align_lab/study/waves.py): one-line
errors naming the key, its value and what is allowed."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from align_lab.config import ConfigError
from align_lab.results.sequential import Plan
from align_lab.study.waves import check_arms, plan_from, planned


def config(plan, claims=("rloo > ppo on eval/gold_reward",)):
    return OmegaConf.create({"plan": plan, "claims": list(claims)})


def test_a_null_plan_is_a_fixed_sweep_and_a_plan_is_read_with_its_defaults():
    assert not planned(config(None))
    assert planned(config({"start": 4, "wave": 4, "max_seeds": 24}))
    assert plan_from(config({"start": 4, "wave": 4, "max_seeds": 24})) == Plan(4, 4, 24, None, 0.05)
    # read as every integer key is (config.integer): 4.0 and "4" are 4 (4.0 was "must be an integer >= 1")
    assert plan_from(config({"start": 4.0, "wave": "4", "max_seeds": 24})) == Plan(4, 4, 24, None, 0.05)


@pytest.mark.parametrize(
    "plan, message",
    [
        (
            {"start": 4, "wave": 4, "max_seeds": 24, "waves": 3},
            "plan.waves: no such key; allowed: start, wave",
        ),
        ({"start": 4, "max_seeds": 24}, "plan.wave: missing"),
        ({"start": 1, "wave": 4, "max_seeds": 24}, "plan.start=1: must be >= 2"),
        ({"start": 4, "wave": 4, "max_seeds": 24, "budget_s": -5}, "plan.budget_s=-5: must be > 0"),
        ([4, 4, 24], "plan=[4, 4, 24]: must be a mapping"),
        # issue 73: plan=abc (OmegaConf's "Input cfg is not an OmegaConf config object"), a huge
        # max_seeds (OverflowError at 1e23, MemoryError at 1e12: every look was listed)
        ("abc", "plan=abc: must be a mapping of start, wave, max_seeds, budget_s, alpha (or null"),
        ({"start": 2, "wave": 2, "max_seeds": 10**23}, f"plan.max_seeds={10**23}: must be <= 10000 (each"),
        ({"start": 2, "wave": 2, "max_seeds": 10**12}, "plan.max_seeds=1000000000000: must be <= 10000"),
        ({"start": 2.5, "wave": 2, "max_seeds": 6}, "plan.start=2.5: must be an integer >= 1"),
        ({"start": "abc", "wave": 2, "max_seeds": 6}, "plan.start=abc: must be an integer >= 1"),
    ],
)
def test_bad_plans_are_one_line_errors(plan, message):
    with pytest.raises(ConfigError) as e:
        plan_from(config(plan))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_the_sweep_must_leave_the_seeds_to_the_plan_and_have_claims():
    plan = {"start": 4, "wave": 4, "max_seeds": 24}
    assert check_arms([["algo=ppo"], ["algo=rloo"]], config(plan)) == [["algo=ppo"], ["algo=rloo"]]
    with pytest.raises(ConfigError, match=r"^seed=0: a plan chooses the seeds"):
        check_arms([["algo=ppo", "seed=0"]], config(plan))
    with pytest.raises(ConfigError, match="needs claims"):
        check_arms([["algo=ppo"]], config(plan, claims=()))


def test_the_plan_stops_when_decided_at_max_seeds_or_out_of_budget():
    from align_lab.results.claims import parse_claims
    from align_lab.study.waves import _stop_reason

    claims = parse_claims(["rloo > ppo on eval/gold_reward"])
    plan = Plan(4, 4, 12, budget_s=100.0)  # looks at 4, 8, 12 seeds
    open_look = {"decided": [""]}
    state = {"claims": [str(claims[0])], "looks": [open_look], "elapsed_s": 50.0}
    assert _stop_reason(state, plan, claims, 0) == ""
    assert _stop_reason({**state, "elapsed_s": 100.0}, plan, claims, 0) == "plan.budget_s=100 spent (100 s)"
    assert _stop_reason({**state, "looks": [open_look] * 3}, plan, claims, 2) == "plan.max_seeds=12 reached"
    decided = {**state, "looks": [open_look, {"decided": ["reproduced"]}]}
    assert _stop_reason(decided, plan, claims, 1) == "every claim decided"
    assert _stop_reason(decided, plan, claims, 0) == ""  # a replay of wave 1 sees look 1 only
