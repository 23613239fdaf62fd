"""What an algorithm declares it needs of the run, refused at admission in one line naming the keys
(run/fit.py check_needs; issue 59 item 2). Each setting below was accepted before: it trained nothing to
the end, or failed only after the SFT and reward-model stages were built."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.grpo import GRPO
from align_lab.config import ConfigError
from align_lab.run.admission import spec_from_config
from align_lab.run.cross_checks import check_run
from tests.conftest import compose


def refusal(overrides: list[str]) -> str | None:
    try:
        check_run(spec_from_config(*compose(overrides)), here=False)
    except ConfigError as e:
        return str(e)
    return None


TOP_K_1 = (
    "rollout.top_k=1: algo={algo} compares {what}, and top_k=1 samples every response to a prompt the same "
    "(the greedy one), so every step would train nothing; use rollout.top_k=0 or >= 2"
)


@pytest.mark.parametrize(
    "algo,what",
    [
        ("grpo", "each reward with its group's mean"),
        ("dapo", "each reward with its group's mean"),
        ("rloo", "each reward with the mean of the other k - 1"),
        ("reinforce_pp_baseline", "each reward with its group's mean"),
        ("raft", "the rewards of a group, to keep its best response"),
        ("remax", "each reward with the greedy response's"),
        ("online_dpo", "the two sampled responses of a pair"),
    ],
)
def test_an_algorithm_that_compares_a_prompts_responses_refuses_top_k_1(algo: str, what: str) -> None:
    assert refusal([f"algo={algo}", "rollout.top_k=1"]) == TOP_K_1.format(algo=algo, what=what)
    assert refusal([f"algo={algo}", "rollout.top_k=2"]) is None  # following the hint admits it


@pytest.mark.parametrize("algo", ["ppo", "reinforce_pp", "dpo", "sail_pp"])
def test_top_k_1_is_left_to_algorithms_that_compare_no_responses(algo: str) -> None:
    # PPO's critic and REINFORCE++'s batch whitening still move a greedy policy; DPO and SAIL-PP train on
    # the preferences stage's pairs (SAIL-PP: 70% of them, p = 0.3)
    assert refusal([f"algo={algo}", "rollout.top_k=1"]) is None


def test_identical_responses_give_grpo_zero_advantages() -> None:
    # why top_k=1 trains nothing: G = 2 responses of one prompt scored 0.7 and 0.7: mean 0.7, so
    # (0.7 - 0.7) / (std 0 + eps) = 0 on every token; the KL term's gradient is 0 at pi = pi_ref
    zeros = torch.zeros(2, 3)
    rollout = Rollout(
        prompt_ids=torch.ones(2, 1, dtype=torch.long),
        prompt_attn=torch.ones(2, 1),
        response_ids=torch.ones(2, 3, dtype=torch.long),
        mask=torch.ones(2, 3),
        logprobs=zeros,
        scores=torch.tensor([0.7, 0.7]),
        signals={"reference": zeros},
    )
    advantages, _ = GRPO(group_size=2).advantages(rollout)
    assert torch.equal(advantages, torch.zeros(2, 3))


@pytest.mark.parametrize(
    "overrides,why",
    [
        (["train.max_staleness=1"], "train.max_staleness=1: must be 0 with dynamic sampling"),
        (
            ["hardware.processes=2", "rollout.seed_per_sample=true"],
            "hardware.processes=2: must be 1 with dynamic sampling",
        ),
    ],
)
def test_dynamic_sampling_off_policy_or_data_parallel_is_refused_at_admission(overrides, why) -> None:
    # before: accepted, then a ValueError when the online loop was set up, after the SFT and RM stages
    assert refusal(["algo=dapo", *overrides]).startswith(f"algo.dynamic_sampling=true: {why}")


def test_ptx_on_a_task_without_demonstrations_names_the_key(tmp_path, hf_assets) -> None:
    # before: "task.response_column=None: SFT needs demonstrations" when the loop was set up, after the
    # stages, naming SFT where the run had asked for none
    path = tmp_path / "p.parquet"
    pd.DataFrame([{"prompt": f"p{i}", "answer": f"a{i}"} for i in range(4)]).to_parquet(path)
    world = ["task=hf_prompts", f"task.path={path}", "model=hf", f"model.name_or_path={hf_assets.policy}"]
    world += ["reward=function", "reward.path=align_lab.rewards.function:word_count", "algo=ppo"]
    assert refusal([*world, "algo.ptx_coef=0.1"]) == (
        "algo.ptx_coef=0.1: adds the NLL of the task's demonstrations, and task=hf_prompts has none "
        "(task.response_column=null); name them, or set algo.ptx_coef=0"
    )
    assert refusal([*world, "algo.ptx_coef=0.1", "task.response_column=answer"]) is None
