"""The 2025 zoo (issue 36) against the peers that ship it: each algo= choice, built from its YAML, gives
the loss and gradient of the peer's code re-derived below (never copied) on one random batch with
padding, to 1e-6 (float64). Peers read at:
  verl  volcengine/verl@b178a3cd56f58b2d502255daba591e92833930a7  verl/trainer/ppo/core_algos.py
  TRL   huggingface/trl@f2cd57710ae345ea6428ae95363267fcf38a3dc8  trl/trainer/grpo_trainer.py,
        trl/experimental/cpo/cpo_trainer.py, trl/experimental/orpo/orpo_trainer.py, trl/trainer/kto_trainer.py
"""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from align_lab.algorithms.dapo import DAPO
from align_lab.algorithms.parts import RatioClip
from align_lab.algorithms.preference import Pairs
from align_lab.config import build
from align_lab.rl.dapo import informative_groups, overlong_penalty
from tests.conftest import compose
from tests.unit.algorithms.test_algorithms_group import lengths_mask, rollout, t
from tests.unit.algorithms.test_multiturn_algorithms import MASK as MT_MASK
from tests.unit.algorithms.test_multiturn_algorithms import close, multi_turn

F64 = torch.float64
MASK = lengths_mask([7, 1, 4, 6, 2, 5], 7)  # (6, 7): no empty row (verl drops one from its means)
GEN = torch.Generator().manual_seed(36)
OLD = -torch.rand(6, 7, generator=GEN, dtype=F64) * 3  # (6, 7) pi_old's log-probs, padding included
DELTA = 0.3 * torch.randn(6, 7, generator=GEN, dtype=F64)  # log pi - log pi_old
DELTA[0, 0], DELTA[2, 1], DELTA[3, 4] = 2.0, -1.5, 0.9  # ratios e^2, e^-1.5, e^0.9: every clip binds
ADVANTAGES = (1.5 * torch.randn(6, 1, generator=GEN, dtype=F64)).expand(6, 7) * MASK  # (6, 7)


def algo(choice, *overrides):
    cfg, _ = compose([f"algo={choice}", "algo.kl_coef=0.0", *overrides])
    return build(cfg.algo, "algo")


def same_loss(ours, peer, seed=0):
    """ours' loss and its gradient in pi_theta's log-probs equal `peer(logp)`'s, from one RNG state."""
    batch = rollout([0.0] * 6, MASK, 2, logprobs=OLD, ref_logprobs=OLD)
    batch.advantages = ADVANTAGES
    mine, theirs = (OLD + DELTA).requires_grad_(), (OLD + DELTA).requires_grad_()
    torch.manual_seed(seed)
    loss, stats = ours.loss(batch, mine, None)
    torch.manual_seed(seed)
    peer_loss = peer(theirs)
    loss.backward()
    peer_loss.backward()
    torch.testing.assert_close(loss, peer_loss, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-6, atol=1e-7)
    return stats


def verl_agg(loss, mask, mode):
    """verl agg_loss (core_algos.py L1025-1081), one process."""
    if mode == "token-mean":
        return (loss * mask).sum() / mask.sum()
    tokens = mask.sum(-1)
    per_sequence = (loss * mask).sum(-1) / (tokens + 1e-8)
    rows = (tokens > 0).to(loss.dtype)
    return (per_sequence * rows).sum() / rows.sum()


def verl_gspo(logp, low=3e-4, high=4e-4):
    """verl compute_policy_loss_gspo (L1253-1326): sg[mean log-ratio] + log pi - sg[log pi], clamped
    above at 10, clipped per sequence, forced seq-mean-token-mean."""
    seq = ((logp - OLD) * MASK).sum(-1) / MASK.sum(-1).clamp(min=1)
    s = torch.exp((logp - logp.detach() + seq.detach()[:, None]).clamp(max=10.0))
    loss = torch.maximum(-ADVANTAGES * s, -ADVANTAGES * s.clamp(1 - low, 1 + high))
    return verl_agg(loss, MASK, "seq-mean-token-mean")


def trl_sequence(logp, low=3e-4, high=4e-4):
    """TRL GRPOTrainer._compute_loss (L3055-3128), importance_sampling_level=sequence, loss_type=grpo,
    beta 0: coef_1 = exp(masked mean log-ratio) (B, 1) with its gradient, unclamped."""
    coef_1 = torch.exp(((logp - OLD) * MASK).sum(-1, keepdim=True) / MASK.sum(-1, keepdim=True).clamp(min=1))
    coef_2 = coef_1.clamp(1 - low, 1 + high)
    per_token = -torch.min(coef_1 * ADVANTAGES[:, :1], coef_2 * ADVANTAGES[:, :1])
    return ((per_token * MASK).sum(-1) / MASK.sum(-1).clamp(min=1.0)).mean()


@pytest.mark.parametrize("peer", [verl_gspo, trl_sequence], ids=["verl_gspo", "trl_sequence"])
def test_gspo_is_verls_gspo_and_trls_sequence_level_grpo(peer):
    stats = same_loss(algo("gspo"), peer)
    assert 0 < stats["train/clip_frac"] < 1  # some sequences clipped at 1 +- 3e-4 / 4e-4, some not


def verl_cispo(logp, low=0.2, high=4.0):
    """verl compute_policy_loss_cispo (L1721-1779): -sg(clamp(rho, 1 - low, 1 + high)) A log pi,
    token-mean."""
    weight = torch.exp((logp - OLD).clamp(-20.0, 20.0)).clamp(1 - low, 1 + high).detach()
    return verl_agg(-weight * ADVANTAGES * logp, MASK, "token-mean")


def trl_cispo(logp, epsilon_high=5.0):
    """TRL loss_type=cispo (L3080-3082, L3139-3142): clamp(coef_1, max=epsilon_high) detached, no lower
    bound, summed over the tokens / the batch's token count."""
    per_token = -torch.exp(logp - OLD).clamp(max=epsilon_high).detach() * ADVANTAGES * logp
    return (per_token * MASK).sum() / MASK.sum()


def test_cispo_is_trls_cispo_with_epsilon_high_5():
    stats = same_loss(algo("cispo"), trl_cispo)  # clip_high 4: the cap 1 + 4 = TRL's epsilon_high 5
    assert stats["train/clip_frac"] > 0  # the e^2 token's weight is capped


def test_cispo_lower_clip_is_verls_cispo():
    same_loss(
        algo("cispo", "algo.lower_clip=true", "algo.clip_high=0.28"), lambda lp: verl_cispo(lp, 0.2, 0.28)
    )


def verl_sapo(logp, tau_pos=1.0, tau_neg=1.05, clamp=20.0):
    """verl compute_policy_loss_sapo (L1329-1411) and TRL loss_type=sapo (L3092-3095, L3124-3128,
    unclamped): gate sigmoid(tau (rho - 1)) 4 / tau, forced seq-mean-token-mean."""
    ratio = torch.exp((logp - OLD).clamp(-clamp, clamp))
    taus = torch.where(ADVANTAGES > 0, torch.tensor(tau_pos, dtype=F64), torch.tensor(tau_neg, dtype=F64))
    return verl_agg(
        -torch.sigmoid(taus * (ratio - 1.0)) * (4.0 / taus) * ADVANTAGES, MASK, "seq-mean-token-mean"
    )


def test_sapo_is_verls_and_trls_sapo():
    same_loss(algo("sapo"), verl_sapo)
    same_loss(algo("sapo", "algo.tau_pos=0.5", "algo.tau_neg=2.0"), lambda lp: verl_sapo(lp, 0.5, 2.0))


def verl_geo_mean(logp, low=0.4, high=0.4):
    """verl compute_policy_loss_geo_mean (L1635-1718): token log-ratios clipped by the sign of A, the
    geometric mean per sequence, -mean(A) * ratio averaged over the batch."""
    nkl = logp - OLD
    sgn = torch.sign(ADVANTAGES)
    kept = sgn * torch.min(sgn * nkl, sgn * nkl.clamp(-low, high))
    n = MASK.sum(-1)
    ratio = torch.exp((kept * MASK).sum(-1) / (n + 1e-8))
    return torch.mean(-(ADVANTAGES * MASK).sum(-1) / (n + 1e-8) * ratio)


def test_gmpo_is_verls_geo_mean():
    stats = same_loss(algo("gmpo"), verl_geo_mean)
    assert stats["train/clip_frac"] > 0  # the e^2, e^-1.5 and e^0.9 tokens leave (e^-0.4, e^0.4)


def verl_clip_cov(logp, ratio_k=0.2, lb=1.0, ub=5.0, low=0.2, high=0.2):
    """verl compute_policy_loss_clip_cov (L1450-1552): covariance on the unclipped response tokens, a
    torch.randperm draw of at most max(int(ratio_k * tokens), 1) of those in (lb, ub) detached."""
    ratio = torch.exp(logp - OLD)
    pg1, pg2 = -ADVANTAGES * ratio, -ADVANTAGES * ratio.clamp(1 - low, 1 + high)
    by_origin = (pg2 > pg1) & (MASK > 0)
    mean = lambda x: (x * MASK).sum() / (MASK.sum() + 1e-8)  # noqa: E731
    cov = (ADVANTAGES - mean(ADVANTAGES)) * (logp - mean(logp.detach()))
    cov = cov.masked_fill(MASK == 0, -math.inf).masked_fill(by_origin, -math.inf)
    idx = torch.nonzero((cov < ub) & (cov > lb) & (MASK > 0))
    corr = torch.ones_like(ADVANTAGES)
    if len(idx):
        idx = idx[torch.randperm(len(idx))[: max(int(ratio_k * MASK.sum().item()), 1)]]
        corr[idx[:, 0], idx[:, 1]] = 0
    return verl_agg(torch.maximum(pg1, pg2) * corr, MASK, "token-mean")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clip_cov_is_verls_clip_cov_for_the_same_random_draw(seed):
    # cov_ratio 0.2 of 25 tokens: 5 drawn among the candidates (the default 2e-4 draws 1)
    stats = same_loss(algo("clip_cov", "algo.cov_ratio=0.2"), verl_clip_cov, seed)
    assert stats["train/clip_frac"] > 0


def verl_kl_cov(logp, ratio_k=0.2, coef=1.0):
    """verl compute_policy_loss_kl_cov (L1555-1632): -A rho everywhere, + coef |log rho| on the top
    max(1, int(tokens * ratio_k)) tokens by centred covariance; no clip."""
    nkl = logp - OLD
    losses = -ADVANTAGES * torch.exp(nkl)
    valid = MASK > 0
    flat = torch.nonzero(valid.reshape(-1), as_tuple=True)[0]
    adv, lp = ADVANTAGES[valid].detach(), logp[valid].detach()
    cov = (adv - adv.mean()) * (lp - lp.mean())
    top = flat[torch.topk(cov, max(1, int(len(cov) * ratio_k)), largest=True).indices]
    rows, cols = top // 7, top % 7
    losses = losses.clone()
    losses[rows, cols] = (-ADVANTAGES * torch.exp(nkl) + coef * nkl.abs())[rows, cols]
    return verl_agg(losses, MASK, "token-mean")


def test_kl_cov_is_verls_kl_cov():
    same_loss(algo("kl_cov", "algo.cov_ratio=0.2"), verl_kl_cov)
    same_loss(
        algo("kl_cov", "algo.cov_ratio=0.2", "algo.cov_kl_coef=0.3"), lambda lp: verl_kl_cov(lp, 0.2, 0.3)
    )


def trl_dapo(logp, low=0.2, high=0.28):
    """TRL loss_type=dapo, beta 0 (L3083-3090, L3139-3142): two-sided clip, token sum / token count."""
    coef_1 = torch.exp(logp - OLD)
    per_token = -torch.min(coef_1 * ADVANTAGES, coef_1.clamp(1 - low, 1 + high) * ADVANTAGES)
    return (per_token * MASK).sum() / MASK.sum()


def verl_vanilla_dual(logp, low=0.2, high=0.28, clip_c=3.0):
    """verl compute_policy_loss_vanilla (L1160-1251) with clip_ratio_high 0.28, token-mean, dual clip 3."""
    ratio = torch.exp((logp - OLD).clamp(-20.0, 20.0))
    clip1 = torch.maximum(-ADVANTAGES * ratio, -ADVANTAGES * ratio.clamp(1 - low, 1 + high))
    pg = torch.where(ADVANTAGES < 0, torch.min(-ADVANTAGES * clip_c, clip1), clip1)
    return verl_agg(pg, MASK, "token-mean")


def test_dapo_loss_is_trls_dapo_and_verls_clip_higher():
    same_loss(algo("dapo"), trl_dapo)
    same_loss(algo("dapo", "algo.dual_clip=3.0"), verl_vanilla_dual)


def test_dapo_drops_groups_whose_rewards_are_all_equal():
    # groups of 3: [1, 1, 1] all equal, [0, 1, 0] mixed, [0, 0, 0] all equal, [0.5, 0.5, 0.25] mixed
    scores = t([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.25])
    assert informative_groups(scores, 3).tolist() == [False, True, False, True]


def test_dapo_overlong_penalty_is_verls_dapo_reward_manager():
    # verl reward_manager/dapo.py L117-121: min(-(len - (max_len - buffer)) / buffer * factor, 0);
    # max_len 20, buffer 4: lengths 10 and 16 unpunished, 18 -> -2/4 = -0.5, 20 -> -1 (times 0.5)
    lengths = torch.tensor([10, 16, 18, 20])
    expected = [min(-(n - 16) / 4 * 0.5, 0.0) for n in lengths.tolist()]
    assert overlong_penalty(lengths, 20, 4, 0.5).tolist() == expected == [0.0, 0.0, -0.25, -0.5]


# DAPO on multi-turn: verl (b178a3cd56f5) reward_manager/dapo.py L77 and reward_loop/reward_manager/dapo.py
# L51-52 take the length from the response's attention_mask, which agent_loop.py L420/L586 sets to 1 on
# every non-pad response token, tool observations included; max_resp_len is data.max_response_length,
# the whole multi-turn response's budget. align_lab: attend (policy + observation tokens) and max_len =
# env.max_conversation_tokens, as Dr. GRPO's L_max (docs/conventions.md#multi-turn).
CALCULATOR = ["env=calculator", "task=arith_word", "reward=verifier", "model=hf", "model.name_or_path=x"]


@pytest.mark.parametrize(
    "overrides,limit",
    [
        ([], 12),  # the toy task's generation limit
        (CALCULATOR, 256),  # env.max_conversation_tokens, not one turn's model.max_response_tokens 64
        ([*CALCULATOR, "env.max_conversation_tokens=100"], 100),
        (["task=guess_number", "env=guess_number"], 24),  # not one guess's limit 3
    ],
)
def test_dapo_max_len_is_the_response_budget_the_conversations_on_multi_turn(overrides, limit):
    cfg, _ = compose(["algo=dapo", *overrides])
    assert cfg.algo.max_len == limit
    too_long = compose(["algo=dapo", f"algo.overlong_buffer={limit + 1}", *overrides])[0].algo
    refusal = rf"^algo.overlong_buffer={limit + 1}: must be in \[1, algo.max_len={limit}\]"
    with pytest.raises(ValueError, match=refusal):
        build(too_long, "algo")


def test_dapo_penalises_the_conversations_length_observations_included():
    # test_multiturn_algorithms' group: row 0 `p EOS o o p EOS` (4 policy tokens, 6 after the prompt),
    # return 0.4 + turn 0.5 = 0.9; row 1 `p EOS o p EOS` (4, 5), return 0.5. max_len 8, buffer 4: the
    # ramp starts at 4. Conversation lengths 6, 5: penalties -(6-4)/4 = -0.5, -(5-4)/4 = -0.25 (verl's
    # valid_response_length); returns 0.4, 0.25, mean 0.325: A = +-0.075 (scale_by_std off). Policy
    # tokens alone (4, 4) would punish neither: returns 0.9, 0.5, A = +-0.2 (the single-turn reading).
    dapo = DAPO(group_size=2, scale_by_std=False, max_len=8, overlong_buffer=4)
    episodes = multi_turn()
    close(dapo.advantages(episodes)[0], torch.tensor([[0.075], [-0.075]]) * MT_MASK)
    single = dataclasses.replace(episodes, attend=None)  # single turn: attend is the mask, length 4
    close(dapo.advantages(single)[0], torch.tensor([[0.2], [-0.2]]) * MT_MASK)


# ---- offline: SimPO, ORPO, KTO against TRL's losses on per-pair log-probs
N = 5
CHOSEN = -0.2 - torch.rand(N, generator=GEN, dtype=F64)  # per-token averages (SimPO, ORPO): log P < 0
REJECTED = -0.2 - torch.rand(N, generator=GEN, dtype=F64)
REF_CHOSEN, REF_REJECTED = CHOSEN - 0.3 * torch.randn(N, generator=GEN, dtype=F64), REJECTED - 0.4


def pairwise(choice, peer, *overrides, ref=(REF_CHOSEN, REF_REJECTED)):
    cfg, _ = compose([f"algo={choice}", *overrides])
    ours = build(cfg.algo, "algo")
    mine = [x.clone().requires_grad_() for x in (CHOSEN, REJECTED)]
    theirs = [x.clone().requires_grad_() for x in (CHOSEN, REJECTED)]
    loss, stats = ours.loss(Pairs(*mine, *ref, ours.routes(N)))
    peer_loss = peer(*theirs)
    loss.backward()
    peer_loss.backward()
    torch.testing.assert_close(loss, peer_loss, rtol=1e-6, atol=1e-7)
    for m, p in zip(mine, theirs, strict=True):
        torch.testing.assert_close(m.grad, p.grad, rtol=1e-6, atol=1e-7)
    return ours, stats


def test_simpo_is_trls_cpo_simpo_loss():
    def trl_simpo(chosen, rejected, beta=2.0, simpo_gamma=1.0):
        """CPOTrainer.cpo_loss, loss_type=simpo, label_smoothing 0, cpo_alpha 0 (cpo_trainer.py L700-720)."""
        logits = (chosen - rejected) - simpo_gamma / beta
        return -F.logsigmoid(beta * logits).mean()

    ours, _ = pairwise("simpo", trl_simpo)  # gamma_beta_ratio 0.5 * beta 2 = simpo_gamma 1
    assert not ours.uses_reference and ours.length_normalize


def test_orpo_is_trls_odds_ratio_loss_plus_the_chosen_nll():
    def trl_orpo(chosen, rejected, beta=0.1):
        """ORPOTrainer.odds_ratio_loss (orpo_trainer.py L673-705), loss = nll - mean(beta * ratio)
        (L851); the NLL here is the chosen responses' mean of per-token means (equal-length responses:
        TRL's token mean; TRL's also covers the prompt tokens, docs/conventions.md)."""
        log_odds = (chosen - rejected) - (torch.log(-torch.expm1(chosen)) - torch.log(-torch.expm1(rejected)))
        return -chosen.mean() - (beta * F.logsigmoid(log_odds)).mean()

    ours, stats = pairwise("orpo", trl_orpo)
    assert not ours.uses_reference and "train/nll_loss" in stats


def test_kto_batch_reference_point_is_trls_kto_loss_given_the_batch_as_kl_batch():
    def trl_kto(chosen, rejected, beta=0.1):
        """KTOTrainer._compute_loss (kto_trainer.py L1552-1590, L1657): kl = mean(KL_logps -
        ref_KL_logps).clamp(min=0), detached; 1 - sigmoid(beta (r - kl)) and 1 - sigmoid(beta (kl - r)),
        desirable first, nanmean. Here the KL batch is the batch itself (align_lab's z_0), not TRL's
        rotated (prompt_i, completion_{i-1}) pairs."""
        kl_logps, ref_kl_logps = torch.cat([chosen, rejected]), torch.cat([REF_CHOSEN, REF_REJECTED])
        kl = (kl_logps - ref_kl_logps).mean().detach().clamp(min=0)
        chosen_losses = 1 - torch.sigmoid(beta * ((chosen - REF_CHOSEN) - kl))
        rejected_losses = 1 - torch.sigmoid(beta * (kl - (rejected - REF_REJECTED)))
        return torch.cat((chosen_losses, rejected_losses)).nanmean()

    _, stats = pairwise("kto", trl_kto, "algo.kl_reference_point=batch")
    assert stats["train/kto_kl"] > 0  # the reference point is active (not clamped to 0) on this batch


# ---- issue 36 item 6: every new key's range check is one line naming the key, the value, what is allowed
@pytest.mark.parametrize(
    "target,keys,message",
    [
        ("gspo.GSPO", {"ratio_form": "tokens"}, "ratio_form=tokens: must be one of ('token', 'sequence')"),
        (
            "cispo.CISPO",
            {"clip": RatioClip(high=None)},
            "clip.high=null: must be > 0 for CISPO (the weight's cap)",
        ),
        (
            "cispo.CISPO",
            {"clip": RatioClip(high=4.0, dual=3.0)},
            "clip.dual=3.0: must be null for CISPO (the weight is detached)",
        ),
        ("sapo.SAPO", {"tau_pos": 0.0}, "tau_pos=0.0: must be > 0"),
        ("sapo.SAPO", {"tau_neg": -1.05}, "tau_neg=-1.05: must be > 0"),
        (
            "sapo.SAPO",
            {"clip": RatioClip(high=0.28)},
            "clip.high=0.28: must be null for SAPO (the gate replaces the clip)",
        ),
        ("gmpo.GMPO", {"clip": RatioClip(dual=3.0)}, "clip.dual=3.0: must be null for GMPO"),
        ("covariance.ClipCov", {"cov_ratio": 0.0}, "cov_ratio=0.0: must be in (0, 1]"),
        ("covariance.ClipCov", {"cov_low": 5.0}, "cov_low=5.0: must be < cov_high=5.0"),
        ("covariance.KLCov", {"cov_ratio": 1.5}, "cov_ratio=1.5: must be in (0, 1]"),
        ("covariance.KLCov", {"cov_kl_coef": -0.1}, "cov_kl_coef=-0.1: must be >= 0"),
        ("dapo.DAPO", {"max_resample_rounds": -1}, "max_resample_rounds=-1: must be >= 0"),
        ("dapo.DAPO", {"overlong_penalty": -1.0}, "overlong_penalty=-1.0: must be >= 0"),
        (
            "dapo.DAPO",
            {"overlong_buffer": 13, "max_len": 12},
            "overlong_buffer=13: must be in [1, max_len=12] (max_len: the generation limit; multi-turn: "
            "env.max_conversation_tokens) or null",
        ),
        ("simpo.SimPO", {"beta": 0.0}, "beta=0.0: must be > 0"),
        ("simpo.SimPO", {"gamma_beta_ratio": -0.5}, "gamma_beta_ratio=-0.5: must be >= 0"),
        ("orpo.ORPO", {"lam": -0.1}, "lam=-0.1: must be >= 0"),
        ("kto.KTO", {"desirable_weight": 0.0}, "desirable_weight=0.0: must be > 0"),
        ("kto.KTO", {"undesirable_weight": -1.0}, "undesirable_weight=-1.0: must be > 0"),
        (
            "kto.KTO",
            {"kl_reference_point": "rotated"},
            "kl_reference_point=rotated: must be one of ('mismatched', 'batch')",
        ),
    ],
)
def test_a_new_keys_bad_value_is_one_line(target, keys, message):
    module, name = target.rsplit(".", 1)
    cls = getattr(__import__(f"align_lab.algorithms.{module}", fromlist=[name]), name)
    with pytest.raises(ValueError) as e:
        cls(**keys)
    assert str(e.value) == message
