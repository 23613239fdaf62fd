"""verl's conventions as align_lab keys: REINFORCE++ without a reward clip, the default dual clip c = 3, and
its rollout correction in decoupled and bypass mode. The verl_* functions re-derive verl's code;
tests/unit/algorithms/test_peer_corrections.py uses them too. Each test re-derives the peer's formula in
its comment or docstring, at the commit it names, and checks align_lab's key against it on hand-derived
numbers (docs/conventions.md)."""

import math
from dataclasses import replace

import pytest
import torch

from align_lab.algorithms.parts import RatioClip
from align_lab.algorithms.reinforce_pp import ReinforcePP
from align_lab.algorithms.remax import ReMax
from tests.unit.algorithms.conventions.peer_batch import (
    CORR_ADVANTAGES,
    CORR_MASK,
    CORR_OLD,
    CORR_ROLLOUT_RATIO,
    same_loss,
)
from tests.unit.algorithms.flat_keys import algo_of
from tests.unit.algorithms.test_algorithms_group import close, lengths_mask, rollout, t


def test_reinforce_pp_reward_clip_null_is_verls_reinforce_pp():
    """verl's REINFORCE++ clips no reward; reward_clip=null whiten_unbiased=true reproduces it.

    Peer: volcengine/verl@b178a3cd56f58b2d502255daba591e92833930a7
    verl/trainer/ppo/ray_trainer.py L70-110 (apply_kl_penalty: rewards = scores - beta * k1 * mask);
    verl/trainer/ppo/core_algos.py L583-618 (G_t = r_t + gamma G_(t+1), reset after EOS; advantages =
    masked_whiten(G, mask) * mask); verl/utils/torch_functional.py L304-339 (masked_whiten:
    (G - mean) * rsqrt(var + 1e-8), var unbiased by default).
    """
    # scores [30, 0], mask [[1, 1], [1, 0]], k1 KL (old - ref) 2 on row 0's first token, beta 0.05.
    # rewards: row 0 [-0.05 * 2, 30] = [-0.1, 30], row 1 [0]; returns row 0 [29.9, 30], row 1 [0].
    # kept {29.9, 30, 0}: mean 59.9 / 3 = 19.966667; squared deviations 98.671111 + 100.667778 +
    # 398.667778 = 598.006667, / 2 = 299.003333 (unbiased), std 17.291713:
    # (29.9 - 19.966667) / 17.291713 = 0.574456, (30 - ...) = 0.580239, (0 - ...) = -1.154696
    mask = lengths_mask([2, 1], 2)
    batch = rollout([30.0, 0.0], mask, 1, kl=[[2.0, 0.0], [0.0, 0.0]])
    verl = ReinforcePP(kl_coef=0.05, reward_clip=None, whiten_unbiased=True)
    close(verl.advantages(batch)[0], [[0.574456, 0.580239], [-1.154696, 0.0]])
    # the default (OpenRLHF): score clamped to 10 -> returns {9.9, 10, 0}, mean 6.633333, population
    # variance (10.671111 + 11.334444 + 44.001111) / 3 = 22.002222, std 4.690653
    # -> 0.696421, 0.717739, -1.414160
    close(ReinforcePP(kl_coef=0.05).advantages(batch)[0], [[0.696421, 0.717739], [-1.414160, 0.0]])


def test_dual_clip_3_is_verls_default_loss():
    """verl dual-clips by default (c = 3); OpenRLHF does not (and nor does align_lab: null).

    Peer: volcengine/verl@b178a3cd56f58b2d502255daba591e92833930a7
    verl/trainer/config/actor/actor.yaml L79 (clip_ratio_c: 3.0); verl/trainer/ppo/core_algos.py
    L1159-1235 (compute_policy_loss_vanilla: for A < 0, min(-3 A, max(-rho A, -clip(rho) A))).
    Peer: OpenRLHF/OpenRLHF@3c3be6234e0cb353e76bb8019947db9dfe99fca7
    openrlhf/cli/train_ppo_ray.py L389 (--actor.dual_clip default None).
    """
    # rho = e^3 = 20.085537 with A = -1: max(20.085537, 1.2) = 20.085537, min(3, .) = 3;
    # rho = e^-3 = 0.049787 with A = -1: max(0.049787, 0.8) = 0.8 < 3 -> 0.8;
    # rho = e^3 with A = 1: max(-20.085537, -1.2) = -1.2 (A > 0: no dual clip).
    # token_mean: (3 + 0.8 - 1.2) / 3
    mask = lengths_mask([1, 1, 1], 1)
    batch = rollout([0.0] * 3, mask, 1, ref_logprobs=t([[0.0], [0.0], [0.0]]))
    batch.advantages = t([[-1.0], [-1.0], [1.0]])
    logprobs = t([[3.0], [-3.0], [3.0]])
    close(
        ReinforcePP(kl_coef=0.0, clip=RatioClip(dual=3.0)).loss(batch, logprobs, None)[0], (3 + 0.8 - 1.2) / 3
    )
    # align_lab's default, as OpenRLHF's: rho A unbounded for A < 0 -> (20.085537 + 0.8 - 1.2) / 3
    close(ReinforcePP(kl_coef=0.0).loss(batch, logprobs, None)[0], (math.exp(3) + 0.8 - 1.2) / 3)


def verl_masked_sum(values, mask, axis=None):
    return (torch.where(mask.bool(), values, 0.0) * mask).sum(axis)  # verl_F.masked_sum


def verl_is_weights(log_ratio, mask, level, threshold):
    """verl compute_rollout_correction_weights (rollout_corr_helper.py L481-598)."""
    if level == "token":
        weights = torch.exp(log_ratio.clamp(-20.0, 20.0))
    else:
        total = verl_masked_sum(log_ratio, mask, -1).unsqueeze(-1)
        weights = torch.exp(total.clamp(-20.0, 20.0)).expand_as(log_ratio)
    return (weights * mask).clamp(max=threshold).detach()


def verl_rejection_mask(log_ratio, mask, option, lower, upper):
    """verl compute_rollout_rejection_mask for one k1 option (L156-372): k1 = -log r, kept when
    log(lower) <= k1 <= log(upper), i.e. the bounds are on pi_rollout / pi_old."""
    k1 = -log_ratio.clamp(-20.0, 20.0)
    if option == "token_k1":
        stat = k1
    elif option == "seq_sum_k1":
        stat = verl_masked_sum(k1, mask, -1).unsqueeze(-1)
    else:  # seq_mean_k1
        stat = (verl_masked_sum(k1, mask, -1) / (mask.sum(-1) + 1e-8)).unsqueeze(-1)
    keep = (stat >= math.log(lower)) & (stat <= math.log(upper))
    return mask * keep.expand_as(mask).to(mask.dtype)


def verl_agg_loss(loss, mask, mode):
    """verl agg_loss (core_algos.py L1025-1081), one process."""
    if mode == "token-mean":
        return verl_masked_sum(loss, mask) / mask.sum()
    tokens = mask.sum(-1)
    per_sequence = (loss * mask).sum(-1) / (tokens + 1e-8)
    rows = (tokens > 0).to(loss.dtype)
    return verl_masked_sum(per_sequence, rows) / rows.sum()


def verl_vanilla_loss(old, logp, advantages, mask, mode, weights=None, clip=0.2, clip_c=3.0):
    """verl compute_policy_loss_vanilla (core_algos.py L1160-1251): dual clip c = 3 by default."""
    ratio = torch.exp((logp - old).clamp(-20.0, 20.0))
    pg1 = -advantages * ratio
    pg2 = -advantages * ratio.clamp(1 - clip, 1 + clip)
    clip1 = torch.maximum(pg1, pg2)
    clip2 = torch.min(-advantages * clip_c, clip1)
    pg = torch.where(advantages < 0, clip2, clip1)
    if weights is not None:
        pg = pg * weights
    return verl_agg_loss(pg, mask, mode)


def verl_decoupled(rollout_is=None, threshold=2.0, rs=None, bounds=None, mode="token-mean"):
    """verl's decoupled mode: IS weights and rejection from log pi_old - log pi_rollout
    (compute_rollout_correction_and_rejection_mask L716-831), the rejected tokens leave response_mask
    (compute_rollout_correction_and_add_to_batch L943-997), then the PPO loss on pi_theta / pi_old."""
    log_ratio = CORR_ROLLOUT_RATIO
    weights = None if rollout_is is None else verl_is_weights(log_ratio, CORR_MASK, rollout_is, threshold)
    mask = CORR_MASK if rs is None else verl_rejection_mask(log_ratio, CORR_MASK, rs, *bounds)
    return lambda logp: verl_vanilla_loss(CORR_OLD, logp, CORR_ADVANTAGES, mask, mode, weights)


@pytest.mark.parametrize(
    "verl,keys",
    [
        # decoupled_token_is(): token TIS, threshold 2
        (verl_decoupled("token"), {"rollout_correction": "tis"}),
        # decoupled_seq_is(): the product of the token ratios, threshold 2
        (verl_decoupled("sequence"), {"rollout_correction": "tis", "correction_level": "sequence"}),
        # decoupled_seq_is_rs(): sequence IS + seq_sum_k1 "0.5_2.0" (rows 0, 1, 3 rejected)
        (
            verl_decoupled("sequence", rs="seq_sum_k1", bounds=(0.5, 2.0)),
            {"rollout_correction": "mis", "correction_level": "sequence", "correction_low": 0.5}
            | {"masked_in_denominator": False},
        ),
        # the same under seq-mean-token-mean: rejected sequences leave the sequence count too
        (
            verl_decoupled("sequence", rs="seq_sum_k1", bounds=(0.5, 2.0), mode="seq-mean-token-mean"),
            {"rollout_correction": "mis", "correction_level": "sequence", "correction_low": 0.5}
            | {"masked_in_denominator": False, "loss_aggregation": "seq_mean_token_mean"},
        ),
        # decoupled_geo_rs("0.7_1.5"): geometric mean, ratio bounds [1/1.5, 1/0.7] (rows 0, 3 rejected)
        (
            verl_decoupled(rs="seq_mean_k1", bounds=(0.7, 1.5)),
            {"rollout_correction": "seq_mask", "sequence_ratio": "geometric_mean"}
            | {"correction_low": 1 / 1.5, "correction_high": 1 / 0.7, "masked_in_denominator": False},
        ),
        # token rejection token_k1 "0.5_2.0" + token IS 2 (decoupled_geo_rs_token_tis's shape)
        (
            verl_decoupled("token", rs="token_k1", bounds=(0.5, 2.0)),
            {"rollout_correction": "mis", "correction_low": 0.5, "masked_in_denominator": False},
        ),
    ],
)
def test_verl_rollout_correction_decoupled_mode(verl, keys):
    """verl's rollout correction in decoupled mode (every preset's default): weights from pi_old /
    pi_rollout, truncated from above only (cap 2, no lower bound), and rejected tokens removed from
    response_mask, so they leave the token-mean denominator and an emptied sequence the sequence mean.

    Peer: volcengine/verl@b178a3cd56f58b2d502255daba591e92833930a7
    verl/trainer/ppo/rollout_corr_helper.py L156-372 (compute_rollout_rejection_mask: k1 = -log r),
    L481-598 (compute_rollout_correction_weights: exp(clamp(log r, +-20)) * mask, clamp(max=threshold),
    detach), L716-831, L943-997 (response_mask replaced by the rejection mask);
    verl/trainer/config/algorithm.py L182-255 (the presets);
    verl/trainer/ppo/core_algos.py L1160-1251 (compute_policy_loss_vanilla: dual clip c = 3, then
    pg_losses * rollout_is_weights), L1025-1081 (agg_loss).
    verl's k1 bounds are on pi_rollout / pi_old: "LOW_HIGH" is align_lab's [1 / HIGH, 1 / LOW].
    """
    same_loss(
        algo_of(
            ReinforcePP, kl_coef=0.0, clip=RatioClip(dual=3.0), **{"loss_aggregation": "token_mean", **keys}
        ),
        verl,
    )


def test_verl_rollout_correction_bypass_mode():
    """verl's bypass mode: pi_old := pi_rollout. REINFORCE (bypass_pg_is): -A log pi_theta w with
    w = min(pi_theta / pi_rollout, 2) per sequence, detached; PPO-clip (bypass_ppo_clip_geo_rs): the PPO
    ratio on pi_rollout, no IS weight, geometric rejection from pi_theta / pi_rollout.

    Peer: volcengine/verl@b178a3cd56f58b2d502255daba591e92833930a7
    verl/trainer/ppo/core_algos.py L1984-2061 (compute_policy_loss_reinforce: -A * log_prob * w),
    L2064-2200 (compute_policy_loss_bypass_mode: weights and rejection from log_prob - rollout_log_prob
    under no_grad; ppo_clip passes rollout_is_weights=None); rollout_corr_helper.py L1039-1074
    (apply_bypass_mode: old_log_probs = rollout_log_probs); verl/trainer/config/algorithm.py L258-345.
    """
    behaviour = CORR_OLD - CORR_ROLLOUT_RATIO

    def reinforce(logp):
        weights = verl_is_weights((logp - behaviour).detach(), CORR_MASK, "sequence", 2.0)
        return verl_agg_loss(-CORR_ADVANTAGES * logp * weights, CORR_MASK, "token-mean")

    bypass_pg = algo_of(ReMax, kl_coef=0.0, loss_aggregation="token_mean", rollout_correction="tis")
    bypass_pg = replace(
        bypass_pg, correction=replace(bypass_pg.correction, level="sequence", ratio="current")
    )
    same_loss(bypass_pg, reinforce)

    def ppo_clip(logp):
        mask = verl_rejection_mask((logp - behaviour).detach(), CORR_MASK, "seq_mean_k1", 0.7, 1.5)
        return verl_vanilla_loss(behaviour, logp, CORR_ADVANTAGES, mask, "token-mean")

    keys = {
        "rollout_correction": "seq_mask",
        "sequence_ratio": "geometric_mean",
        "correction_ratio": "current",
    }
    keys |= {"correction_low": 1 / 1.5, "correction_high": 1 / 0.7, "masked_in_denominator": False}
    same_loss(
        algo_of(ReinforcePP, kl_coef=0.0, clip=RatioClip(dual=3.0), ppo_anchor="rollout", **keys), ppo_clip
    )
