"""verl's 2026 losses as align_lab choices: DPPO (dppo_tv, dppo_kl), DRO (dro) and GDPO (adv_estimator
gdpo), each re-derived below from verl's code and checked on identical fixed tensors.

Peer: volcengine/verl, verl/trainer/ppo/core_algos.py compute_policy_loss_dppo_tv, compute_policy_loss_dppo_kl
(DPPO, arXiv 2602.04879; verl's DPPO doc page "Last updated 02/25/2026") and compute_gdpo_outcome_advantage
(arXiv 2601.05242), read through the code search index's copy of core_algos.py (a fork carrying them; the
index records no upstream commit for it). The newest upstream snapshot this machine could fetch,
volcengine/verl@b178a3cd56f58b2d502255daba591e92833930a7 (2026-01-29), predates all three; its
verl/utils/torch_functional.py L287-339 (masked_mean, masked_var unbiased, masked_whiten with 1e-8) is
what GDPO's whitening calls. DRO: verl's `dro` policy loss (its Tinker adapter) as its own test states it,
-(log pi A - 0.5 beta (log pi - log pi_old)^2) per token (the loss function's body was not in the index;
ms-swift's twinkle DROLoss, which says it matches verl's, writes the same)."""

import torch

from align_lab.algorithms.dppo import DPPO
from align_lab.algorithms.dro import DRO
from align_lab.algorithms.gdpo import GDPO
from align_lab.algorithms.parts import RatioClip
from align_lab.algorithms.signals import SourceScores
from tests.unit.algorithms.conventions.peer_batch import CORR_ADVANTAGES, CORR_MASK, CORR_OLD, corr_batch
from tests.unit.algorithms.test_algorithms_group import lengths_mask, rollout, t

# peer_batch's CORR_DELTA with row 3's +1.2 (log pi > 0: not a probability) replaced by -0.5
DELTA = t([[0.1, -0.3, 0.05, 0.25], [-0.1, 0.3, 0.0, 2.0], [0.2, -0.05, 2.0, 2.0], [-0.5, 2.0, 2.0, 2.0]])


def verl_token_mean(loss, mask):
    return (loss * mask).sum() / (mask.sum() + 1e-8)  # verl agg_loss token-mean (verl_F.masked_mean)


def verl_dppo(old, logp, adv, mask, low, high, kind, clip_ratio_c=20.0):
    """compute_policy_loss_dppo_tv / _kl: the log-ratio clamped to +-20, ratio truncated at clip_ratio_c
    and detached; valid (detached) by TV p - p_old <= high (A > 0) / >= -low, or by binary KL
    p_old (log p_old - log p) + (1 - p_old) log((1 - p_old + 1e-8) / (1 - p + 1e-8)) <= high unless p <= p_old
    (A > 0), <= low unless p >= p_old; loss -A * ratio * log p * valid, token-mean."""
    ratio = torch.exp(torch.clamp(logp - old, min=-20.0, max=20.0))
    truncated = torch.clamp(ratio, max=clip_ratio_c).detach()
    prob, old_prob = torch.exp(logp), torch.exp(old)
    if kind == "tv":
        pos, neg = (prob - old_prob) <= high, (prob - old_prob) >= -low
    else:
        bkl = old_prob * (old - logp) + (1 - old_prob) * torch.log(
            (1.0 - old_prob + 1e-8) / (1.0 - prob + 1e-8)
        )
        pos, neg = (bkl <= high) | (prob <= old_prob), (bkl <= low) | (prob >= old_prob)
    valid = torch.where(adv > 0, pos, neg).detach().float()
    return verl_token_mean(-adv * truncated * logp * valid, mask)


def same(algo, peer):
    """algo's loss and gradient equal the peer's on corr_batch with log pi = CORR_OLD + DELTA."""
    batch = corr_batch()
    ours_logp, peer_logp = (CORR_OLD + DELTA).requires_grad_(), (CORR_OLD + DELTA).requires_grad_()
    ours, stats = algo.loss(batch, ours_logp, None)
    theirs = peer(peer_logp)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours_logp.grad, peer_logp.grad, rtol=1e-6, atol=1e-6)
    return stats


def test_dppo_tv_is_verls_dppo_tv():
    # clip 0.1 / clip_high 0.05 mask row 0's last token (p +0.064, A = 1), row 2's first (+0.164, A = 2)
    # and row 3's (0.4066 -> 0.2466, -0.160, A = -1.5): 3 of the 10 kept tokens
    algo = DPPO(kl_coef=0.0, clip=RatioClip(0.1, 0.05))
    stats = same(algo, lambda lp: verl_dppo(CORR_OLD, lp, CORR_ADVANTAGES, CORR_MASK, 0.1, 0.05, "tv"))
    assert abs(stats["train/clip_frac"] - 0.3) < 1e-6


def test_dppo_binary_kl_is_verls_dppo_kl():
    # verl adds 1e-8 to 1 - p; align_lab clamps p to [1e-8, 1 - 1e-8]: equal to ~1e-8 on these tokens
    algo = DPPO(kl_coef=0.0, divergence="binary_kl", clip=RatioClip(0.01, 0.005))
    same(algo, lambda lp: verl_dppo(CORR_OLD, lp, CORR_ADVANTAGES, CORR_MASK, 0.01, 0.005, "binary_kl"))


def test_dro_is_verls_dro():
    beta = 0.5

    def verl_dro(lp):
        return verl_token_mean(-(lp * CORR_ADVANTAGES - 0.5 * beta * (lp - CORR_OLD).square()), CORR_MASK)

    same(DRO(kl_coef=0.0, dro_beta=beta), verl_dro)


def verl_grpo(scores, index, epsilon):
    """compute_grpo_outcome_advantage: (s - mean) / (torch.std + epsilon) per uid."""
    out = scores.clone()
    for uid in set(index):
        rows = [i for i, u in enumerate(index) if u == uid]
        group = scores[rows]
        out[rows] = (group - group.mean()) / (torch.std(group) + epsilon)
    return out


def verl_gdpo(sources, weights, index, mask, epsilon=1e-6):
    """compute_gdpo_outcome_advantage: sum_k w_k grpo(r_k) broadcast on the mask, then
    masked_whiten(x, mask) * mask (token-weighted mean, unbiased var, rsqrt(var + 1e-8))."""
    summed = sum(w * verl_grpo(sources[:, k], index, epsilon)[:, None] * mask for k, w in enumerate(weights))
    mean = (summed * mask).sum() / (mask.sum() + 1e-8)
    var = (((summed - mean) ** 2) * mask).sum() / (mask.sum() + 1e-8) * mask.sum() / (mask.sum() - 1)
    return (summed - mean) * torch.rsqrt(var + 1e-8) * mask


def test_gdpo_is_verls_gdpo():
    # 3 prompts x G = 2, two sources (weights 1 and 0.3), responses of 3, 1, 2, 2, 1, 3 tokens: the
    # whitening is token-weighted, so the lengths matter
    mask = lengths_mask([3, 1, 2, 2, 1, 3], 3)
    sources = t([[1.0, 0.2], [0.0, 0.9], [1.0, 0.5], [1.0, 0.1], [0.0, 0.3], [1.0, 0.8]])
    batch = rollout([0.0] * 6, mask, 2)
    batch.signals["reward_sources"] = SourceScores(sources, ("acc", "fmt"), (1.0, 0.3))
    ours, _ = GDPO(group_size=2, eps=1e-6).advantages(batch)
    theirs = verl_gdpo(sources, (1.0, 0.3), [0, 0, 1, 1, 2, 2], mask)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
