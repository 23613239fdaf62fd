"""AReaL's decoupled PPO objective with rejection sampling as align_lab's rollout-correction keys. Each test
re-derives the peer's formula in its comment or docstring, at the commit it names, and checks align_lab's
key against it on hand-derived numbers (docs/conventions.md)."""

import pytest
import torch

from align_lab.algorithms.gspo import GSPO
from align_lab.algorithms.parts import RatioClip
from align_lab.algorithms.reinforce_pp import ReinforcePP
from tests.unit.algorithms.conventions.peer_batch import (
    CORR_ADVANTAGES,
    CORR_MASK,
    CORR_OLD,
    CORR_ROLLOUT_RATIO,
    same_loss,
)
from tests.unit.algorithms.flat_keys import algo_of
from tests.unit.algorithms.test_algorithms_group import lengths_mask, rollout


def areal_loss(level, action, upper=5.0, lower=None):
    """AReaL ppo_actor_loss_fn with use_decoupled_loss and a RejectionSamplingConfig (metric ratio,
    agg mean): pi_theta / pi_proximal clipped, times behave_imp_weight = pi_proximal / pi_behave; a
    masked token's weight and ratio are 0 and it stays in the denominator (the original count)."""

    def check(metric):
        return (metric >= lower) & (metric <= upper) if lower is not None else metric <= upper

    def loss(logp):
        count = CORR_MASK.count_nonzero()
        mask = CORR_MASK.bool()
        log_ratio = CORR_ROLLOUT_RATIO
        weight = torch.exp(log_ratio)
        if level == "sequence":
            seq_log_mean = torch.where(mask, log_ratio, 0.0).sum(-1, keepdim=True) / mask.sum(
                -1, keepdim=True
            )
            weight = torch.exp(seq_log_mean).expand_as(log_ratio)
            metric = torch.exp(seq_log_mean)
            if action == "mask":
                in_bounds = check(metric).expand_as(mask)
            else:
                out = (~check(metric)).expand_as(mask)
                weight = torch.where(out, weight.clamp(min=lower or 0.0, max=upper), weight)
        elif action == "mask":
            in_bounds = check(weight)
        else:
            weight = weight.clamp(min=lower if lower is not None else 0.0, max=upper)
        if action == "mask":
            mask = mask & in_bounds
        weight = torch.where(mask, weight, 0.0)
        ratio = torch.where(mask, torch.exp(logp - CORR_OLD), 0)
        pg = torch.max(-CORR_ADVANTAGES * ratio, -CORR_ADVANTAGES * ratio.clamp(0.8, 1.2)) * weight
        return torch.where(mask, pg, 0).sum() / count

    return loss


@pytest.mark.parametrize(
    "level,action,keys",
    [
        ("token", "mask", {"rollout_correction": "mis"}),
        ("sequence", "mask", {"rollout_correction": "mis", "correction_level": "sequence"}),
        ("token", "clamp", {"rollout_correction": "tis", "correction_low": 0.0}),
    ],
)
def test_areal_decoupled_loss(level, action, keys):
    """AReaL's decoupled PPO objective (behaviour vs proximal policy) with rejection_sampling (upper 5,
    no lower bound; ratio metric, agg mean: the geometric mean at sequence level). align_lab's
    decoupled correction is this objective: pi_old is the proximal policy (the trainer's log-probs at
    the weights that sampled), rollout.rollout_logprobs the behaviour policy's.

    Peer: inclusionAI/AReaL@4aef98d8d818af55b43621aaadba047ae10f4e77
    areal/utils/functional/functional.py L185-425 (apply_rejection_sampling), L429-559
    (ppo_actor_loss_fn: pg_loss * behave_imp_weight, / the original loss_mask count);
    areal/api/cli_args.py L1224-1320 (RejectionSamplingConfig: level token, action mask, metric ratio,
    agg mean, upper 5, lower None), L1485-1498 (use_decoupled_loss).
    """
    keys = {"sequence_ratio": "geometric_mean", "correction_high": 5.0} | keys
    same_loss(
        algo_of(
            ReinforcePP,
            kl_coef=0.0,
            clip=RatioClip(log_ratio_clamp=None),
            loss_aggregation="token_mean",
            **keys,
        ),
        areal_loss(level, action),
    )


# ---- AReaL's GSPO: one advantage per sequence, the mean over the kept tokens (issue 58 item 5)


def test_areal_gspo_weighs_each_sequence_by_its_mean_advantage_over_the_kept_tokens():
    """AReaL GSPO (importance_sampling_level=sequence) with rejection_sampling level=token action=mask
    metric=ratio upper 5: per sequence i, A_i = mean of the advantages over the kept tokens, s_i = exp(mean
    over them of log pi - log pi_prox); loss = sum over kept tokens of -min(s_i A_i, clip(s_i) A_i) w_t,
    w_t = pi_prox / pi_behave raw, / the ORIGINAL token count N.

    Two sequences, pi_theta = pi_prox (s_i = 1, inside any clip), N = 5:
      row 0: mask [1, 1, 1] w [2, 10, 0.5], A [1, -3, 3]: 10 > 5 rejected, 0 and 2 kept: A_0 = (1 + 3) / 2 = 2
      row 1: mask [1, 1, 0] w [1, 4, -], A [2, 2, -]: both kept; A_1 = 2 (constant: both keys agree)
    loss = -(2 * (2 + 0.5) + 2 * (1 + 4)) / 5 = -15 / 5 = -3
    d loss / d log pi_u = -A_i (sum of the kept w) s_i / n_i / N (s_i = exp of a mean over n_i kept tokens):
      row 0: -2 * 2.5 / 2 / 5 = -0.5 on tokens 0 and 2, 0 on the rejected one; row 1: -2 * 5 / 2 / 5 = -1
    advantage_form=token (each token's own A) instead: loss -(1 * 2 + 3 * 0.5 + 2 * 1 + 2 * 4) / 5 = -2.7,
      row 0's gradient -(1 * 2 + 3 * 0.5) / 2 / 5 = -0.35; row 1's the same -1.

    Peer: areal-project/AReaL@cbff54d645d2cd8ee1f1c358a82f3f473588433d areal/utils/functional/functional.py
    L56-149 (_compute_sequence_level_ratio_and_advantages: the 2D branch L132-147, masked advantage sum
    / count clamped at 1), L452-596 (ppo_actor_loss_fn: the GSPO branch L530-535 on the rejection-narrowed
    loss_mask, pg_loss * behave_imp_weight, / loss_mask_count taken before rejection). AReaL has averaged
    since its GSPO was added (981e3f6, 2025-11-03).
    """
    old = torch.full((2, 3), -1.0, dtype=torch.float64)
    mask = lengths_mask([3, 2], 3)
    batch = rollout([0.0, 0.0], mask, 2, logprobs=old, ref_logprobs=old)
    batch.advantages = torch.tensor([[1.0, -3.0, 3.0], [2.0, 2.0, 0.0]], dtype=torch.float64)
    weights = torch.tensor([[2.0, 10.0, 0.5], [1.0, 4.0, 1.0]], dtype=torch.float64)  # pi_prox / pi_behave
    batch.rollout_logprobs = old - torch.log(weights)
    areal = {
        "clip": RatioClip(log_ratio_clamp=None),
        "loss_aggregation": "token_mean",
        "ratio_form": "sequence",
    }
    areal |= {"rollout_correction": "mis", "correction_high": 5.0}
    expected = {
        "sequence_mean": (-3.0, [[-0.5, 0.0, -0.5], [-1.0, -1.0, 0.0]]),
        "token": (-2.7, [[-0.35, 0.0, -0.35], [-1.0, -1.0, 0.0]]),
    }
    for form, (loss_value, grad) in expected.items():
        algo = algo_of(GSPO, group_size=2, kl_coef=0.0, advantage_form=form, **areal)
        logprobs = old.clone().requires_grad_()
        loss, _ = algo.loss(batch, logprobs, None)
        loss.backward()
        assert loss.item() == pytest.approx(loss_value, abs=1e-12), form
        torch.testing.assert_close(logprobs.grad, torch.tensor(grad, dtype=torch.float64), rtol=0, atol=1e-12)
