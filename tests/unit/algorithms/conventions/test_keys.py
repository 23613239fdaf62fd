"""The convention keys shared by every peer (docs/conventions.md): each in every YAML it concerns, at the
paper's (or align_lab's earlier) default, checked in one line, reaching the loss; and each key the peers
disagree on moves the loss on the peers' batch (peer_batch.py). The peers' own conventions are in
test_trl.py, test_openrlhf.py, test_verl.py, test_slime.py and test_areal.py."""

import re

import pytest

from align_lab.algorithms.base import clip_bounds
from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.parts import RatioClip
from align_lab.algorithms.ppo import PPO
from align_lab.algorithms.reinforce_pp import ReinforcePP
from align_lab.algorithms.rloo import RLOO
from align_lab.config import build
from align_lab.value_checks import ConfigError
from tests.conftest import compose
from tests.unit.algorithms.conventions.peer_batch import (
    CORR_DELTA,
    CORR_OLD,
    corr_batch,
)
from tests.unit.algorithms.flat_keys import algo_of
from tests.unit.algorithms.test_algorithms_group import close, lengths_mask, rollout, t

KL_ALGOS = ["ppo", "ppo_max", "vanilla_pg", "reinforce_ma", "rloo", "raft", "remax", "grpo", "dr_grpo"]
KL_ALGOS += ["reinforce_pp", "reinforce_pp_baseline"]
CLIP_ALGOS = ["ppo", "ppo_max", "rloo", "grpo", "dr_grpo", "reinforce_pp"]


# ---- clip-higher and dual-clip on every ratio-clipped algorithm
@pytest.mark.parametrize("algo", CLIP_ALGOS)
def test_every_ratio_clipped_algorithm_exposes_clip_high_and_dual_clip(algo):
    cfg, _ = compose(
        [f"algo={algo}", "algo.clip_high=0.28", "algo.dual_clip=3.0", "algo.log_ratio_clamp=null"]
    )
    built = build(cfg.algo, "algo")
    assert clip_bounds(built) == (built.clip.low, 0.28, 3.0, None)


def test_clip_high_and_dual_clip_reach_the_surrogate():
    # clip 0.2, clip_high 0.28, dual_clip 3. Row 0: rho = 1.5, A = 1 -> min(1.5, 1.28) -> loss -1.28
    # (-1.2 without clip_high). Row 1: rho = 5, A = -1 -> -min(-5, -1.2) = 5, capped at -3 * -1 = 3.
    mask = lengths_mask([1, 1], 1)
    batch = rollout([0.0, 0.0], mask, 1, ref_logprobs=t([[0.0], [0.0]]))
    batch.advantages = t([[1.0], [-1.0]])
    logprobs = t([[1.5], [5.0]]).log()
    plain = ReinforcePP(kl_coef=0.0)
    both = ReinforcePP(kl_coef=0.0, clip=RatioClip(high=0.28, dual=3.0))
    # token_mean over two tokens: (-1.2 + 5) / 2 = 1.9 and (-1.28 + 3) / 2 = 0.86
    close(plain.loss(batch, logprobs, None)[0], 1.9)
    close(both.loss(batch, logprobs, None)[0], 0.86)


# ---- every key in every YAML it concerns, at the paper's default, and checked
@pytest.mark.parametrize("algo", KL_ALGOS)
def test_every_kl_algorithm_has_kl_clamp_off_by_default(algo):
    cfg, _ = compose([f"algo={algo}"])
    assert "kl_clamp" in cfg.algo and cfg.algo.kl_clamp is None


def test_new_keys_default_to_the_papers_behaviour():
    grpo = compose(["algo=grpo"])[0].algo
    assert (grpo.std_scope, grpo.reward_clip, grpo.use_bias_correction_kl) == ("group", None, False)
    rloo = compose(["algo=rloo"])[0].algo
    assert (rloo.reward_clip, rloo.normalize_advantages) == (None, False)
    for algo in CLIP_ALGOS:
        a = compose([f"algo={algo}"])[0].algo
        assert (a.clip.high, a.clip.dual) == (None, None), algo
        assert a.clip.log_ratio_clamp == 20.0, algo  # as before the key existed (OpenRLHF, verl)
        assert a.reward_clip_low is None, algo  # symmetric, as before
    assert compose(["algo=ppo"])[0].algo.kl_controller_input == "sum"  # Ziegler et al. 2019
    assert compose(["algo=reinforce_pp"])[0].algo.reward_clip == 10.0  # as before (OpenRLHF)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: PPO(kl_clamp=0.0), "kl_clamp=0.0: must be > 0 or null"),
        (lambda: GRPO(clip=RatioClip(dual=1.0)), "clip.dual=1.0: must be > 1 or null"),
        (lambda: RLOO(clip=RatioClip(high=-0.1)), "clip.high=-0.1: must be > 0 or null"),
        (lambda: GRPO(std_scope="global"), "std_scope=global: must be one of ('group', 'batch')"),
        (lambda: RLOO(token_level_kl=True, normalize_advantages=True), "normalize_advantages=true"),
        (lambda: ReinforcePP(reward_clip=0.0), "reward_clip=0.0: must be > 0 or null"),
        (
            lambda: RLOO(reward_clip=1.0, reward_clip_low=-1.0),
            "reward_clip_low=-1.0: must be > -reward_clip = -1.0",
        ),
        (lambda: GRPO(clip=RatioClip(log_ratio_clamp=0.0)), "clip.log_ratio_clamp=0.0: must be > 0 or null"),
        (
            lambda: PPO(kl_controller_input="mean"),
            "kl_controller_input=mean: must be one of ('sum', 'token_mean')",
        ),
    ],
)
def test_bad_values_are_one_line_errors(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_new_keys_are_checked_at_build_from_the_command_line():
    cfg, _ = compose(["algo=reinforce_pp", "algo.reward_clip=null", "algo.log_ratio_clamp=null"])
    built = build(cfg.algo, "algo")
    assert (built.reward_clip, built.clip.log_ratio_clamp) == (None, None)
    cfg, _ = compose(["algo=ppo", "algo.kl_controller_input=mean"])
    message = "algo.kl_controller_input=mean: must be one of ('sum', 'token_mean')"
    with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
        build(cfg.algo, "algo")
    cfg, _ = compose(["algo=grpo", "algo.reward_clip=5", "algo.reward_clip_low=-10"])
    with pytest.raises(ConfigError, match=r"^algo\.reward_clip_low=-10\.0: must be > -reward_clip = -5\.0"):
        build(cfg.algo, "algo")
    # OpenRLHF --reward.clip_range 1 10: a positive lower bound
    cfg, _ = compose(["algo=reinforce_pp", "algo.reward_clip_low=-1"])
    built = build(cfg.algo, "algo")
    assert (built.reward_clip, built.reward_clip_low) == (10.0, -1.0)
    close(
        PPO(reward_clip=10.0, reward_clip_low=-1.0).process_scores(t([-3.0, 0.5, 4.0, 12.0])),
        [1.0, 1.0, 4.0, 10.0],
    )


def test_the_five_disagreements_each_move_the_loss_by_far_more_than_rounding():
    """Each key the peers disagree on, flipped alone on the batch above, changes the loss by > 1e-3."""
    masked = {"rollout_correction": "mis", "correction_level": "sequence", "correction_low": 0.5}
    truncated = {"rollout_correction": "tis", "correction_low": 0.5}

    def loss(keys):
        algo = algo_of(ReinforcePP, kl_coef=0.0, **{"loss_aggregation": "token_mean", **keys})
        return algo.loss(corr_batch(), CORR_OLD + CORR_DELTA, None)[0].item()

    flips = [
        (masked, {"sequence_ratio": "geometric_mean"}),  # product (verl, TRL) | geometric mean (OpenRLHF)
        (masked, {"rollout_correction": "tis"}),  # mask | truncate
        (truncated, {"correction_low": None}),  # the lower bound: e^-10 weighs 0.5 or 4.5e-5
        (masked, {"masked_in_denominator": False}),  # the denominator (verl rejection)
        (masked, {"correction_ratio": "current"}),  # old / rollout | current / rollout (verl bypass)
        (masked, {"ppo_anchor": "rollout"}),  # the PPO ratio on pi_rollout (verl bypass)
        (masked, {"loss_aggregation": "seq_mean_token_mean"}),  # the aggregation the weight enters
    ]
    for base, keys in flips:
        assert abs(loss(base | keys) - loss(base)) > 1e-3, keys
