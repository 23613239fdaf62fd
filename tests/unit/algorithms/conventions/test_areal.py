"""AReaL's decoupled PPO objective with rejection sampling as align_lab's rollout-correction keys. Each test
re-derives the peer's formula in its comment or docstring, at the commit it names, and checks align_lab's
key against it on hand-derived numbers (docs/conventions.md)."""

import pytest
import torch

from align_lab.algorithms.reinforce_pp import ReinforcePP
from tests.unit.algorithms.conventions.peer_batch import (
    CORR_ADVANTAGES,
    CORR_MASK,
    CORR_OLD,
    CORR_ROLLOUT_RATIO,
    same_loss,
)


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
        ReinforcePP(kl_coef=0.0, log_ratio_clamp=None, loss_aggregation="token_mean", **keys),
        areal_loss(level, action),
    )
