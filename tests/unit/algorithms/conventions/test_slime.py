"""slime's --use-tis (and its icepop function) as align_lab's rollout-correction keys. Each test re-derives
the peer's formula in its comment or docstring, at the commit it names, and checks align_lab's key against
it on hand-derived numbers (docs/conventions.md)."""

import pytest
import torch

from align_lab.algorithms.parts import RatioClip
from align_lab.algorithms.reinforce_pp import ReinforcePP
from tests.unit.algorithms.conventions.peer_batch import (
    CORR_ADVANTAGES,
    CORR_LENGTHS,
    CORR_MASK,
    CORR_OLD,
    CORR_ROLLOUT_RATIO,
    same_loss,
)
from tests.unit.algorithms.flat_keys import algo_of


@pytest.mark.parametrize(
    "function,keys",
    [
        ("vanilla_tis_function", {"rollout_correction": "tis"}),
        ("icepop_function", {"rollout_correction": "mis"}),
    ],
)
def test_slime_use_tis(function, keys):
    """slime --use-tis: token weights clamp(pi_old / pi_rollout, tis_clip_low 0, tis_clip 2) on the PPO
    loss (no log-ratio clamp), mean over samples of per-sample token means over the original loss masks;
    --custom-tis-function-path ...:icepop_function zeroes the weight outside [tis_clip_low, tis_clip].

    Peer: THUDM/slime@624b824a898ab0ec1fcb4d373004c7f3852bf515
    slime/backends/megatron_utils/loss.py L884-905 (vanilla_tis_function), L908-933 (icepop_function),
    L1067-1105 (pg_loss * tis_weights, reducer over the original masks), L1283-1360 (loss_function:
    / step_global_batch_size); slime/utils/ppo_utils.py L125-148 (compute_policy_loss);
    slime/backends/megatron_utils/cp_utils.py L47-81 (sum_of_sample_mean); slime/utils/arguments.py
    L1061-1078 (--tis-clip 2, --tis-clip-low 0).
    """
    tis = torch.exp(CORR_ROLLOUT_RATIO)
    if function == "vanilla_tis_function":
        weights = torch.clamp(tis, min=0.0, max=2.0)
    else:
        weights = torch.where((tis >= 0.0) & (tis <= 2.0), tis, torch.zeros_like(tis))

    def slime(logp):
        ppo_kl = CORR_OLD - logp
        ratio = (-ppo_kl).exp()
        pg = torch.maximum(-ratio * CORR_ADVANTAGES, -ratio.clamp(0.8, 1.2) * CORR_ADVANTAGES) * weights
        per_sample = (pg * CORR_MASK).sum(-1) / CORR_MASK.sum(-1).clamp(min=1)
        return per_sample.sum() / len(CORR_LENGTHS)

    keys = keys | {"correction_low": 0.0, "correction_high": 2.0}
    algo = algo_of(
        ReinforcePP,
        kl_coef=0.0,
        clip=RatioClip(log_ratio_clamp=None),
        loss_aggregation="seq_mean_token_mean",
        **keys,
    )
    same_loss(algo, slime)
