"""OpenRLHF's conventions as align_lab keys: the KL clamp, reward clips (symmetric and --reward.clip_range),
the token-mean input to the adaptive KL controller (verl's too), and --algo.advantage.is_correction_type.
Each test re-derives the peer's formula in its comment or docstring, at the commit it names, and checks
align_lab's key against it on hand-derived numbers (docs/conventions.md)."""

import math

import pytest
import torch

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.ppo import PPO
from align_lab.algorithms.reinforce_pp import ReinforcePP
from align_lab.algorithms.rloo import RLOO
from align_lab.rl import clip_reward, kl_penalty, observed_kl
from tests.unit.algorithms.conventions.peer_batch import (
    CORR_ADVANTAGES,
    CORR_MASK,
    CORR_OLD,
    CORR_ROLLOUT_RATIO,
    same_loss,
)
from tests.unit.algorithms.flat_keys import algo_of
from tests.unit.algorithms.test_algorithms_group import close, lengths_mask, rollout, t


# ---- KL clamp (OpenRLHF: every estimator clamped to [-10, 10])
def test_kl_clamp_bounds_every_estimator():
    u = t([[15.0, -15.0, 0.5]])  # log pi - log pi_ref
    zero = torch.zeros_like(u)
    close(kl_penalty(u, zero, "k1", clamp=10.0), [[10.0, -10.0, 0.5]])
    close(kl_penalty(u, zero, "k2", clamp=10.0), [[10.0, 10.0, 0.125]])  # 15^2/2 = 112.5 -> 10
    # k3 = exp(-u) - 1 + u: u=15 -> 14.0000003 -> 10; u=-15 -> 3.27e6 -> 10; u=0.5 -> 0.606531 - 1 + 0.5
    close(kl_penalty(u, zero, "k3", clamp=10.0), [[10.0, 10.0, 0.10653066]])


def test_rloo_with_kl_clamp_shapes_its_reward_with_the_clamped_kl():
    # one group of 2, scores 0; row 0 has k1 KL 15 on its one token, clamped to 10.
    # R = -0.05 * [10, 0] = [-0.5, 0]; leave-one-out: A = [-0.5 - 0, 0 - (-0.5)] = [-0.5, 0.5]
    mask = lengths_mask([1, 1], 1)
    advantages, _ = RLOO(group_size=2, kl_coef=0.05, kl_clamp=10.0).advantages(
        rollout([0.0, 0.0], mask, 2, kl=[[15.0], [0.0]])
    )
    close(advantages, [[-0.5], [0.5]])
    plain = RLOO(group_size=2, kl_coef=0.05)
    unclamped, _ = plain.advantages(rollout([0.0, 0.0], mask, 2, kl=[[15.0], [0.0]]))
    close(unclamped, [[-0.75], [0.75]])  # the default (paper): no clamp


# ---- reward clip on RLOO and GRPO (OpenRLHF clamps the baselined reward)
def test_rloo_reward_clip_clamps_the_baselined_reward():
    # scores [30, 0], no KL: A = [30, -30] -> clamped to [10, -10]
    mask = lengths_mask([1, 1], 1)
    advantages, _ = RLOO(group_size=2, reward_clip=10.0).advantages(rollout([30.0, 0.0], mask, 2))
    close(advantages, [[10.0], [-10.0]])


def test_grpo_reward_clip_clamps_the_normalised_score():
    # scores [1, 0]: centred [0.5, -0.5], unbiased std sqrt(0.5) = 0.707107, A = +-0.5 / 0.707207 = +-0.707007
    mask = lengths_mask([1, 1], 1)
    close(GRPO(group_size=2).advantages(rollout([1.0, 0.0], mask, 2))[0], [[0.707007], [-0.707007]])
    close(GRPO(group_size=2, reward_clip=0.5).advantages(rollout([1.0, 0.0], mask, 2))[0], [[0.5], [-0.5]])


def test_clip_reward_takes_an_asymmetric_range():
    x = t([-5.0, 3.0, 0.5])
    close(clip_reward(x, 2.0, 1.0), [-1.0, 2.0, 0.5])  # [-low, bound] = [-1, 2]
    close(clip_reward(x, 2.0), [-2.0, 2.0, 0.5])  # low None: symmetric
    close(clip_reward(x, None, 1.0), [-1.0, 3.0, 0.5])  # lower bound only
    close(clip_reward(x, None), [-5.0, 3.0, 0.5])
    close(clip_reward(x, 2.0, 0.0), [0.0, 2.0, 0.5])  # OpenRLHF --reward.clip_range 0 2


def test_asymmetric_reward_clip_is_openrlhfs_clip_range_on_rloo():
    """OpenRLHF's --reward.clip_range -1 5 is reward_clip_low=1 reward_clip=5 (rloo: token_level_kl=true).

    Peer: OpenRLHF/OpenRLHF@3c3be6234e0cb353e76bb8019947db9dfe99fca7
    openrlhf/cli/train_ppo_ray.py L437 (--reward.clip_range LOW HIGH, default -10 10);
    openrlhf/trainer/ppo_utils/experience_maker.py L264-266 (rloo baseline subtracted from the raw
    score), L276-282 (compute_reward); openrlhf/models/utils.py L98-125 (compute_reward: clamp to
    [LOW, HIGH], then -beta * KL_t per token); experience_maker.py L292-307 (return-to-go, gamma 1),
    L314-315 (only gae, reinforce and reinforce_baseline are normalised).
    """
    # one group of 2, scores [30, 0]: baselined [30 - 0, 0 - 30] = [30, -30] -> clamped [5, -1].
    # k1 KL 2 on row 0's first token, beta 0.05: rewards row 0 [-0.1, 5], row 1 [-1];
    # return-to-go: row 0 [4.9, 5], row 1 [-1]
    mask = lengths_mask([2, 1], 2)
    batch = rollout([30.0, 0.0], mask, 2, kl=[[2.0, 0.0], [0.0, 0.0]])
    algo = RLOO(group_size=2, kl_coef=0.05, token_level_kl=True, reward_clip=5.0, reward_clip_low=1.0)
    close(algo.advantages(batch)[0], [[4.9, 5.0], [-1.0, 0.0]])
    symmetric = RLOO(group_size=2, kl_coef=0.05, token_level_kl=True, reward_clip=5.0)
    close(symmetric.advantages(batch)[0], [[4.9, 5.0], [-5.0, 0.0]])


def test_asymmetric_reward_clip_on_ppo_reinforce_pp_and_grpo():
    """The same clamp on OpenRLHF's other estimators: gae and reinforce clamp the raw score,
    group_norm the normalised one, (r - mean) / (std + 1e-9) with torch's unbiased std.

    Peer: OpenRLHF/OpenRLHF@3c3be6234e0cb353e76bb8019947db9dfe99fca7
    openrlhf/models/utils.py L108-109; openrlhf/trainer/ppo_utils/experience_maker.py L269-270.
    """
    x = t([-5.0, 3.0, 0.5])
    close(PPO(reward_clip=2.0, reward_clip_low=1.0).process_scores(x), [-1.0, 2.0, 0.5])
    # REINFORCE++ (OpenRLHF reinforce): clamped [-1, 2, 0.5] on one token each, no KL; global whitening,
    # population variance: mean 0.5, var (2.25 + 2.25 + 0) / 3 = 1.5 -> +-1.5 / sqrt(1.5) = +-1.224745
    mask = lengths_mask([1, 1, 1], 1)
    algo = ReinforcePP(kl_coef=0.0, reward_clip=2.0, reward_clip_low=1.0)
    close(algo.advantages(rollout([-5.0, 3.0, 0.5], mask, 1))[0], [[-1.224745], [1.224745], [0.0]])
    # GRPO (OpenRLHF group_norm): scores [1, 0]: centred +-0.5, std sqrt(0.5) = 0.707107 -> +-0.707107;
    # clip_range -0.5 1 -> [0.707107, -0.5], on every kept token
    mask = lengths_mask([2, 1], 2)
    grpo = GRPO(group_size=2, eps=1e-9, reward_clip=1.0, reward_clip_low=0.5)
    close(grpo.advantages(rollout([1.0, 0.0], mask, 2))[0], [[0.707107, 0.707107], [-0.5, 0.0]])


def ppo_rollout(kl_rows, mask):
    """One PPO step's rollout: reference log-probs 0, so the old log-probs are the k1 KL; values 0."""
    batch = rollout([0.0, 0.0], mask, 1, logprobs=t(kl_rows), ref_logprobs=torch.zeros_like(mask))
    batch.values = torch.zeros_like(mask)
    return batch


# k1 KL per token: row 0 [0.1, 0.2, 0.3, 0.4], row 1 [0.5] then padding that must not count (9)
KL_ROWS = [[0.1, 0.2, 0.3, 0.4], [0.5, 9.0, 9.0, 9.0]]
KL_MASK = lengths_mask([4, 1], 4)


def test_observed_kl_is_the_sequence_sum_or_token_mean_averaged_over_the_batch():
    kl = t(KL_ROWS)
    assert math.isclose(observed_kl(kl, KL_MASK, "sum"), (1.0 + 0.5) / 2)  # sums 1.0, 0.5
    assert math.isclose(observed_kl(kl, KL_MASK, "token_mean"), (0.25 + 0.5) / 2)  # 1.0 / 4, 0.5 / 1


@pytest.mark.parametrize("controller_input,expected", [("sum", 0.052), ("token_mean", 0.049375)])
def test_adaptive_kl_controller_input_sum_or_token_mean(controller_input, expected):
    """token_mean is OpenRLHF's and verl's input to the Ziegler controller; sum (the default) is
    Ziegler et al. 2019's sequence KL and TRL's legacy PPOTrainer's.

    Peer: OpenRLHF/OpenRLHF@3c3be6234e0cb353e76bb8019947db9dfe99fca7
    openrlhf/trainer/ppo_utils/experience_maker.py L205-226 (info["kl"] = masked_mean(kl, mask, dim=-1)
    per sample); openrlhf/trainer/ray/ppo_actor.py L386-388 (a (B,) info is weighted per sample),
    L204-258 (sample-weighted mean over the batch);
    openrlhf/trainer/ppo_trainer.py L250-253 (kl_ctl.update(kl, rollout batch * n_samples_per_prompt));
    openrlhf/trainer/ppo_utils/kl_controller.py L15-19.
    Peer: volcengine/verl@b178a3cd56f58b2d502255daba591e92833930a7
    verl/trainer/ppo/ray_trainer.py L100-104 (masked_mean(kld, mask, axis=-1), mean over the batch,
    update(current_kl, n_steps=batch_size); its masked_mean divides by the count + 1e-8).
    Peer (sum): huggingface/trl@951ca1841f29114b969b57b26c7d3e80a39f75a0
    trl/trainer/ppo_trainer.py L1254-1255 (kl.sum(-1).mean()), L838-841 (kl_ctl.update).
    """
    # kl_coef 0.05, kl_target 0.4, horizon 10, n = 2 samples.
    # sum: KL_obs = (1.0 + 0.5) / 2 = 0.75, e = clip(0.75 / 0.4 - 1 = 0.875, +-0.2) = 0.2
    #   -> 0.05 * (1 + 0.2 * 2 / 10) = 0.052
    # token_mean: KL_obs = (0.25 + 0.5) / 2 = 0.375, e = 0.375 / 0.4 - 1 = -0.0625
    #   -> 0.05 * (1 - 0.0625 * 2 / 10) = 0.049375 (verl's + 1e-8 moves it by ~1e-12)
    algo = PPO(kl_coef=0.05, kl_target=0.4, kl_horizon=10, kl_controller_input=controller_input)
    algo.advantages(ppo_rollout(KL_ROWS, KL_MASK))
    assert math.isclose(algo.current_kl_coef, expected, abs_tol=1e-12)


def openrlhf_policy_loss(kind, token_level_loss=True, low=0.5, high=5.0):
    """OpenRLHF PolicyLoss.forward, policy_loss_type ppo, dual_clip None (loss.py L116-230; aggregate_loss
    L11-38): -min(r A, clip(r) A) on pi_theta / pi_old, times the vLLM IS correction of
    exp(log pi_old - log pi_rollout); masked tokens stay in action_mask."""
    rollout_log_ratio = CORR_ROLLOUT_RATIO

    def loss(logp):
        ratio = (logp - CORR_OLD).clamp(-20.0, 20.0).exp()
        per_token = -torch.min(ratio * CORR_ADVANTAGES, ratio.clamp(0.8, 1.2) * CORR_ADVANTAGES)
        if kind == "icepop":
            vllm_is = torch.exp(rollout_log_ratio).detach()
            per_token = vllm_is * ((vllm_is >= low) & (vllm_is <= high)) * per_token
        elif kind == "seq-mask-tis":
            seq_is = torch.exp((rollout_log_ratio * CORR_MASK).sum(-1) / CORR_MASK.sum(-1))
            seq_mask = (seq_is >= low) & (seq_is <= high)
            per_token = seq_mask.unsqueeze(-1) * torch.exp(rollout_log_ratio).detach() * per_token
        else:  # tis
            per_token = torch.exp(rollout_log_ratio).clamp(min=low, max=high).detach() * per_token
        if token_level_loss:
            return (per_token * CORR_MASK).sum() / CORR_MASK.sum()
        counts = CORR_MASK.sum(-1)
        per_sequence = (per_token * CORR_MASK).sum(-1) / (counts + 1e-8)
        rows = (counts > 0).to(per_token.dtype)
        return (per_sequence * rows).sum() / rows.sum()

    return loss


OPENRLHF_BOUNDS = {"correction_low": 0.5, "correction_high": 5.0}


@pytest.mark.parametrize(
    "kind,keys",
    [
        ("tis", {"rollout_correction": "tis"}),
        ("icepop", {"rollout_correction": "mis"}),
        (
            "seq-mask-tis",
            {"rollout_correction": "seq_mask", "sequence_ratio": "geometric_mean", "mask_is_weight": True},
        ),
    ],
)
@pytest.mark.parametrize(
    "token_level_loss,aggregation", [(True, "token_mean"), (False, "seq_mean_token_mean")]
)
def test_openrlhf_is_correction_type(kind, keys, token_level_loss, aggregation):
    """OpenRLHF --algo.advantage.is_correction_type tis | icepop | seq-mask-tis with its default
    thresholds [0.5, 5]: tis clamps both sides, icepop zeroes the token outside, seq-mask-tis zeroes a
    sequence whose geometric-mean ratio is outside and weighs the rest by the raw token ratio; zeroed
    tokens still count in the denominators.

    Peer: OpenRLHF/OpenRLHF@3c3be6234e0cb353e76bb8019947db9dfe99fca7
    openrlhf/models/loss.py L116-230 (PolicyLoss), L11-38 (aggregate_loss); openrlhf/models/utils.py
    L166-169 (masked_mean); openrlhf/cli/train_ppo_ray.py L257-271 (is_correction_threshold 0.5 5,
    is_correction_type tis).
    """
    algo = algo_of(ReinforcePP, kl_coef=0.0, loss_aggregation=aggregation, **OPENRLHF_BOUNDS, **keys)
    same_loss(algo, openrlhf_policy_loss(kind, token_level_loss))
