"""Issue 36 item 3: the peers' rollout-correction modes that had no key, each re-derived from the peer's
code at the commit named and checked against align_lab's loss and gradient (1e-6) on the batch of
conventions/peer_batch.py (lengths 4, 3, 2, 1; token ratios pi_old / pi_rollout up to e^3 and down to e^-10).
docs/off_policy.md has a row per test. Peers' newest stored code: verl-project/verl 1dda039 (2026-08-22),
volcengine/verl 9b718e1 (2026-01-14, the last commit with the per-token veto), huggingface/trl f2cd577
(2026-07-24), areal-project/AReaL cbff54d (2026-08-22), OpenRLHF/OpenRLHF 3c3be62 (2026-08-13)."""

import math

import pytest
import torch

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.gspo import GSPO
from align_lab.algorithms.parts import RatioClip
from align_lab.algorithms.reinforce_pp import ReinforcePP
from align_lab.algorithms.remax import ReMax
from tests.unit.algorithms.conventions.peer_batch import (
    CORR_ADVANTAGES,
    CORR_DELTA,
    CORR_MASK,
    CORR_OLD,
    CORR_ROLLOUT_RATIO,
)
from tests.unit.algorithms.conventions.test_verl import (
    verl_agg_loss,
    verl_is_weights,
    verl_masked_sum,
    verl_vanilla_loss,
)
from tests.unit.algorithms.flat_keys import algo_of
from tests.unit.algorithms.test_algorithms_group import rollout

VERL = "verl-project/verl@1dda039b9c6311889a9c9a26040677e1254814f9"


def batch_of(old=CORR_OLD, advantages=CORR_ADVANTAGES):
    """The batch of conventions/peer_batch.py, pi_old's log-probs `old` (the ratios kept), `advantages`."""
    batch = rollout([0.0] * 4, CORR_MASK, 2, logprobs=old, ref_logprobs=old - 0.2 * CORR_MASK)
    batch.advantages = advantages
    batch.rollout_logprobs = old - CORR_ROLLOUT_RATIO
    return batch


def same(algo, peer, batch=None):
    """algo's loss and gradient in pi_theta's log-probs (pi_old + CORR_DELTA) equal `peer(logp)`'s;
    returns the fraction of response tokens the correction rejected."""
    batch = batch or batch_of()
    ours_logp = (batch.logprobs + CORR_DELTA).requires_grad_()
    peer_logp = (batch.logprobs + CORR_DELTA).requires_grad_()
    ours, stats = algo.loss(batch, ours_logp, None)
    theirs = peer(peer_logp)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours_logp.grad, peer_logp.grad, rtol=1e-6, atol=1e-6)
    return stats.get("train/is_masked_frac", 0.0)


# ---- verl: rollout_rs options (k1 / k2 / k3; token, seq_sum, seq_mean, seq_max), several at once,
# with token or sequence TIS, batch-normalised weights, decoupled and bypass


def verl_rs_mask(log_ratio, mask, options, thresholds):
    """verl compute_rollout_rejection_mask (rollout_corr_helper.py L197-413): per option a statistic of
    the clamped log-ratio l (k1 = -l, k2 = l^2 / 2, k3 = e^l - 1 - l), per token or its masked sum, mean
    (/ count + 1e-8) or max per sequence (an empty one's 0); k1 kept in [log L, log H] ("L_H"), k2 / k3
    at most the threshold; every option must pass; response_mask times the product of the keeps."""
    safe = log_ratio.clamp(-20.0, 20.0)
    stats = {"k1": -safe, "k2": 0.5 * safe**2, "k3": torch.exp(safe) - 1.0 - safe}
    keep = torch.ones_like(mask)
    for option, spec in zip(options.split(","), thresholds.split(","), strict=True):
        level, k = option.rsplit("_", 1)
        stat = stats[k]
        if level == "seq_sum":
            stat = verl_masked_sum(stat, mask, -1).unsqueeze(-1)
        elif level == "seq_mean":
            stat = (verl_masked_sum(stat, mask, -1) / (mask.sum(-1) + 1e-8)).unsqueeze(-1)
        elif level == "seq_max":
            top = stat.masked_fill(~mask.bool(), float("-inf")).max(-1).values
            stat = torch.where(top == float("-inf"), 0.0, top).unsqueeze(-1)
        if k == "k1":
            lower, upper = (float(x) for x in spec.split("_"))
            ok = (stat >= math.log(lower)) & (stat <= math.log(upper))
        else:
            ok = stat <= float(spec)
        keep = keep * ok.expand_as(mask).to(mask.dtype)
    return mask * keep


def verl_normalize(weights, mask, level):
    """verl compute_rollout_correction_weights with rollout_is_batch_normalize (L522-657, one process):
    the truncated weights over their masked mean (token) or the mean of per-sequence means (sequence)."""
    if level == "token":
        mean = verl_masked_sum(weights, mask) / (mask.sum() + 1e-8)
    else:
        per_sequence = verl_masked_sum(weights, mask, -1) / (mask.sum(-1) + 1e-8)
        rows = (mask.sum(-1) > 0).to(weights.dtype)
        mean = (per_sequence * rows).sum() / rows.sum().clamp_min(1e-8)
    return weights / mean if mean > 1e-8 else weights


def verl_icepop_weights(log_ratio, mask, lower, upper):
    """verl's "lower_upper" rollout_is_threshold (IcePop, L522-657): token weights 0 outside the bounds."""
    raw = torch.exp(log_ratio.clamp(-20.0, 20.0)) * mask
    return torch.where((raw >= lower) & (raw <= upper), raw, 0.0)


def verl_rule_keys(options, thresholds):
    """align_lab's keys for verl's rollout_rs / rollout_rs_threshold: one rule per option, k1's "L_H" as
    log L .. log H on k1 = -log r, k2 / k3's threshold as the upper bound; rejected tokens leave the
    denominators (verl replaces response_mask)."""
    lows, highs = [], []
    for option, spec in zip(options.split(","), thresholds.split(","), strict=True):
        bounds = (
            [math.log(float(x)) for x in spec.split("_")] if option.endswith("k1") else [None, float(spec)]
        )
        lows.append(bounds[0])
        highs.append(bounds[1])
    return {
        "reject": options.split(","),
        "reject_low": lows,
        "reject_high": highs,
        "masked_in_denominator": False,
    }


def verl_decoupled(rollout_is=None, rs=None, thresholds=None, normalize=False, icepop=None):
    """verl decoupled mode: weights and rejection from log pi_old - log pi_rollout on the whole batch
    (compute_rollout_correction_and_rejection_mask L786-901, compute_rollout_correction_and_add_to_batch
    L1013-1067), then compute_policy_loss_vanilla (core_algos.py L1286-1376: dual clip 3, token-mean)."""
    log_ratio = CORR_ROLLOUT_RATIO
    weights = None
    if icepop is not None:
        weights = verl_icepop_weights(log_ratio, CORR_MASK, *icepop)
    elif rollout_is is not None:
        weights = verl_is_weights(log_ratio, CORR_MASK, rollout_is, 2.0)
    if normalize:
        weights = verl_normalize(weights, CORR_MASK, rollout_is or "token")
    mask = CORR_MASK if rs is None else verl_rs_mask(log_ratio, CORR_MASK, rs, thresholds)
    return lambda logp: verl_vanilla_loss(CORR_OLD, logp, CORR_ADVANTAGES, mask, "token-mean", weights)


def verl_algo(**keys):
    return algo_of(ReinforcePP, kl_coef=0.0, clip=RatioClip(dual=3.0), loss_aggregation="token_mean", **keys)


TIS = {"rollout_correction": "tis"}
TIS_SEQ = {"rollout_correction": "tis", "correction_level": "sequence"}
DIVERGENCE_RULES = [
    ("token_k1", "0.5_2.0"),  # rejects row 0's e^3 and e^-10 tokens and row 3
    ("token_k2", "1.0"),  # l^2 / 2 > 1: the same three tokens
    ("token_k3", "0.06"),  # e^l - 1 - l: also row 1's third token (0.092)
    ("seq_sum_k2", "1.0"),  # rows 0 (54.5) and 3 (1.125)
    ("seq_mean_k1", "0.7_1.5"),  # decoupled_geo_rs's shape: rows 0 and 3
    ("seq_mean_k2", "0.05"),  # rows 0 and 3 (row 1: 0.048)
    ("seq_mean_k3", "0.1"),  # decoupled_k3_rs's shape: rows 0 and 3 (row 1: 0.054)
    ("seq_max_k2", "2.5"),  # row 0 only (row 3: 1.125)
    ("seq_max_k3", "0.08"),  # rows 0, 1 (0.092) and 3
]


@pytest.mark.parametrize("option,threshold", DIVERGENCE_RULES)
@pytest.mark.parametrize("weights", [None, "token"], ids=["rs_only", "token_tis"])
def test_verl_divergence_rejection(option, threshold, weights):
    """verl rollout_rs=<option> rollout_rs_threshold=<threshold>, alone (decoupled_k3_rs) or with token
    TIS 2 (decoupled_k3_rs_token_tis, decoupled_geo_rs_token_tis).

    Peer: verl-project/verl@1dda039b9c6311889a9c9a26040677e1254814f9
    verl/trainer/ppo/rollout_corr_helper.py L132-194 (thresholds), L197-413 (compute_rollout_rejection_mask),
    L522-657, L786-901, L1013-1067; verl/trainer/config/algorithm.py L448-530 (geo / k3 presets);
    verl/trainer/ppo/core_algos.py L1286-1376, L1140-1206 (agg_loss).
    """
    keys = verl_rule_keys(option, threshold) | (TIS if weights else {})
    rejected = same(verl_algo(**keys), verl_decoupled(weights, option, threshold))
    assert 0 < rejected < 1


@pytest.mark.parametrize(
    "options,thresholds",
    [("token_k1,seq_max_k2", "0.6_1.6,2.5"), ("token_k3,seq_mean_k1,seq_max_k2", "0.06,0.7_1.5,50.0")],
)
def test_verl_several_rejection_rules_in_one_run(options, thresholds):
    """verl's comma-separated rollout_rs (every option must pass) with token TIS 2: the first pair is
    examples/rollout_correction/run_qwen2_5_7b_fsdp_multi_rs.sh's. Peer: as test_verl_divergence_rejection."""
    same(
        verl_algo(**verl_rule_keys(options, thresholds), **TIS), verl_decoupled("token", options, thresholds)
    )


@pytest.mark.parametrize(
    "keys,peer",
    [
        (TIS, verl_decoupled("token", normalize=True)),
        (TIS_SEQ, verl_decoupled("sequence", normalize=True)),
        (
            TIS | verl_rule_keys("seq_mean_k1", "0.7_1.5"),
            verl_decoupled("token", "seq_mean_k1", "0.7_1.5", normalize=True),
        ),
        (
            {"rollout_correction": "mis", "correction_low": 0.5, "correction_high": 5.0},
            verl_decoupled(icepop=(0.5, 5.0), normalize=True),
        ),
    ],
    ids=["token", "sequence", "token_geo_rs", "icepop"],
)
def test_verl_batch_normalised_weights(keys, peer):
    """verl rollout_is_batch_normalize=true: the weights (truncated at 2; IcePop's zeroed outside
    "0.5_5.0") divided by their mean over the batch, before rejection (mean over the original mask).
    Peer: verl-project/verl@1dda039b9c6311889a9c9a26040677e1254814f9 rollout_corr_helper.py L522-657
    (compute_rollout_correction_weights), L197-233 (decoupled_token_icepop in config/algorithm.py)."""
    same(verl_algo(normalize_weights=True, **keys), peer)


def test_verl_bypass_token_tis_with_geometric_rejection():
    """verl bypass_pg_geo_rs_token_tis (REINFORCE) and the multi-rs example's bypass PPO-clip: weights
    and rejection from pi_theta / pi_rollout under no_grad, old_log_probs := rollout_log_probs.

    Peer: verl-project/verl@1dda039b9c6311889a9c9a26040677e1254814f9 core_algos.py L2332-2409
    (compute_policy_loss_reinforce: -A log pi w), L2413-2548 (compute_policy_loss_bypass_mode);
    rollout_corr_helper.py L1109-1144 (apply_bypass_mode); config/algorithm.py L501-528.
    """
    behaviour = CORR_OLD - CORR_ROLLOUT_RATIO

    def reinforce(logp):
        log_ratio = (logp - behaviour).detach()
        weights = verl_is_weights(log_ratio, CORR_MASK, "token", 2.0)
        mask = verl_rs_mask(log_ratio, CORR_MASK, "seq_mean_k1", "0.7_1.5")
        return verl_agg_loss(-CORR_ADVANTAGES * logp * weights, mask, "token-mean")

    keys = TIS | {"correction_ratio": "current"} | verl_rule_keys("seq_mean_k1", "0.7_1.5")
    same(algo_of(ReMax, kl_coef=0.0, loss_aggregation="token_mean", **keys), reinforce)

    def ppo_clip(logp):
        mask = verl_rs_mask((logp - behaviour).detach(), CORR_MASK, "token_k1,seq_max_k2", "0.6_1.6,2.5")
        return verl_vanilla_loss(behaviour, logp, CORR_ADVANTAGES, mask, "token-mean")

    keys = {"correction_ratio": "current", "ppo_anchor": "rollout"} | verl_rule_keys(
        "token_k1,seq_max_k2", "0.6_1.6,2.5"
    )
    same(verl_algo(**keys), ppo_clip)


def test_verl_legacy_per_token_veto():
    """verl's rollout_token_veto_threshold (removed in 97eac90): a sequence with any token whose
    pi_old / pi_rollout is below the threshold leaves response_mask, here with token TIS 2. The veto v is
    the rule seq_max_k1 with upper bound -log v (k1 = -log r): row 0's e^-10 < 1e-4 vetoes it.

    Peer: volcengine/verl@9b718e1a7e55fbd974ae13a543e9e6cb89f1f735 verl/trainer/ppo/rollout_corr_helper.py
    L656-681 (Step 4: log_ratio < log(veto) on any valid token -> the sequence's mask 0).
    """
    vetoed = ((CORR_ROLLOUT_RATIO < math.log(1e-4)) & CORR_MASK.bool()).any(-1, keepdim=True)
    mask = CORR_MASK * (~vetoed).to(CORR_MASK.dtype)
    weights = verl_is_weights(CORR_ROLLOUT_RATIO, CORR_MASK, "token", 2.0)
    keys = TIS | {"reject": ["seq_max_k1"], "reject_high": [-math.log(1e-4)], "masked_in_denominator": False}
    rejected = same(
        verl_algo(**keys),
        lambda logp: verl_vanilla_loss(CORR_OLD, logp, CORR_ADVANTAGES, mask, "token-mean", weights),
    )
    assert rejected == pytest.approx(4 / 10)


# ---- TRL GRPOTrainer: off-policy sequence masking (OPSM, DeepSeek-V3.2), on TRL's default loss


def trl_dapo_loss(advantages, opsm=None, is_mode=None, clip_max=3.0):
    """TRL GRPOTrainer._compute_loss with its defaults (loss_type dapo, beta 0, token ratio, epsilon 0.2):
    the clipped surrogate, times the off-policy mask (get_off_policy_mask: keep a sequence if A >= 0 or
    mean_t(log pi_sampling - log pi_theta) <= delta, pi_theta detached), times the vLLM IS ratio; sum over
    tokens / the batch's token count (num_items_in_batch, one process)."""
    sampling = CORR_OLD - CORR_ROLLOUT_RATIO
    a = advantages[:, :1]  # (B, 1) TRL's advantages are one per sequence
    is_ratio = 1.0
    if is_mode == "sequence_mask":
        is_ratio = torch.exp((CORR_ROLLOUT_RATIO * CORR_MASK).sum(-1, keepdim=True))
        is_ratio = is_ratio.masked_fill(is_ratio > clip_max, 0.0)

    def loss(logp):
        coef_1 = torch.exp(logp - CORR_OLD)
        per_token = -torch.min(coef_1 * a, torch.clamp(coef_1, 0.8, 1.2) * a)
        if opsm is not None:
            kl = sampling - logp.detach()
            mean_kl = (kl * CORR_MASK).sum(1, keepdim=True) / CORR_MASK.sum(1, keepdim=True).clamp(min=1.0)
            per_token = per_token * ((a >= 0) | (mean_kl <= opsm)).to(CORR_MASK.dtype)
        per_token = per_token * is_ratio
        return (per_token * CORR_MASK).sum() / CORR_MASK.sum().clamp(min=1.0)

    return loss


UNCLAMPED = RatioClip(log_ratio_clamp=None)  # TRL, AReaL: the log-ratio exponentiated unclamped
OPSM = {
    "reject": ["seq_mean_k1"],
    "reject_high": [0.5],
    "reject_ratio": "current",
    "reject_negative_only": True,
}


@pytest.mark.parametrize(
    "is_mode,keys",
    [
        (None, {}),  # vllm_importance_sampling_correction=False
        (
            "sequence_mask",
            {"rollout_correction": "mis", "correction_level": "sequence", "correction_high": 3.0},
        ),
    ],
)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_trl_off_policy_sequence_masking(is_mode, keys, sign):
    """TRL off_policy_mask_threshold=0.5 on its default loss (dapo, beta 0 = token_mean, kl_coef 0, no
    log-ratio clamp), alone or with the default vLLM IS (sequence_mask, clip 3, from pi_old). The mask
    reads pi_theta (detached) against the sampling policy: reject_ratio=current. Row 0's mean
    log pi_theta / pi_rollout is -1.75: with A = 1 it is kept, with the advantages negated it is masked.

    Peer: huggingface/trl@f2cd57710ae345ea6428ae95363267fcf38a3dc8 trl/trainer/grpo_trainer.py L2919-2940
    (get_off_policy_mask), L3039-3052, L3111-3144 (the mask, the IS ratio, dapo's normalizer);
    trl/trainer/grpo_config.py L671-674 (beta 0), L791-792 (loss_type dapo), L953-956.
    """
    advantages = sign * CORR_ADVANTAGES
    algo = algo_of(
        GRPO, group_size=2, kl_coef=0.0, clip=UNCLAMPED, loss_aggregation="token_mean", **OPSM, **keys
    )
    rejected = same(algo, trl_dapo_loss(advantages, 0.5, is_mode), batch_of(advantages=advantages))
    row_3 = 1 / 10 if is_mode else 0.0  # sequence_mask: e^1.5 > 3
    assert rejected == pytest.approx(row_3 + (4 / 10 if sign < 0 else 0.0))


# ---- AReaL: rejection_sampling with metric ratio (agg sum), kl_k3 (agg mean) and binary_kl (KPop)


def areal_k3(proximal, behave):
    """AReaL KLEstimator._compute_approx_kl(proximal, behave, "k3", apply_clamp=False) (utils/data.py):
    with l = log pi_proximal - log pi_behave, e^-l - 1 + l."""
    log_ratio = -(proximal - behave)
    return log_ratio.exp() - 1 - log_ratio


def areal_binary_kl(log_p, log_q, eps=1e-8):
    """AReaL compute_binary_kl_divergence (functional.py L440-449)."""
    p, q = torch.clamp(torch.exp(log_p), eps, 1 - eps), torch.clamp(torch.exp(log_q), eps, 1 - eps)
    return p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))


def areal_loss(old, metric, level, agg, upper, lower=None):
    """AReaL ppo_actor_loss_fn (functional.py L452-596, use_decoupled_loss, token-level PPO ratio, eps 0.2)
    after apply_rejection_sampling (L185-437, 2D, action mask): ratio metrics aggregate log-ratios (a
    sequence's weight is then its geometric mean), KL metrics their values; kept when lower <= m <= upper;
    weights 0 on the rejected tokens; / the original token count."""
    behave, mask = old - CORR_ROLLOUT_RATIO, CORR_MASK.bool()
    log_ratio = old - behave
    weight = torch.exp(log_ratio)
    if metric == "ratio":
        value = log_ratio
    elif metric == "kl_k3":
        value = areal_k3(old, behave)
    else:
        value = torch.maximum(areal_binary_kl(old, behave), areal_binary_kl(behave, old))
    if level == "sequence":
        masked = torch.where(mask, value, 0.0)
        count = CORR_MASK.sum(-1, keepdim=True).clamp(min=1)
        if metric == "ratio":
            weight = torch.exp(masked.sum(-1, keepdim=True) / count).expand_as(log_ratio)
        value = masked.sum(-1, keepdim=True) if agg == "sum" else masked.sum(-1, keepdim=True) / count
    if metric == "ratio":
        value = torch.exp(value)
    in_bounds = (value <= upper) & (value >= lower if lower is not None else True)
    kept = mask & in_bounds.expand_as(mask)
    weight = torch.where(kept, weight, 0.0)

    def loss(logp):
        ratio = torch.where(mask, torch.exp(logp - old), 0)
        pg = torch.max(-CORR_ADVANTAGES * ratio, -CORR_ADVANTAGES * ratio.clamp(0.8, 1.2)) * weight
        return torch.where(kept, pg, 0).sum() / CORR_MASK.count_nonzero()

    return loss


RAW_WEIGHTS = {"rollout_correction": "mis", "correction_low": None, "correction_high": None}


@pytest.mark.parametrize(
    "shift,peer,keys",
    [
        (  # level sequence, metric ratio, agg sum: the product in [0.01, 2] keeps row 2 only
            0.0,
            ("ratio", "sequence", "sum", 2.0, 0.01),
            RAW_WEIGHTS
            | {"correction_level": "sequence", "sequence_ratio": "geometric_mean"}
            | {"reject": ["seq_sum_k1"], "reject_low": [-math.log(2.0)], "reject_high": [-math.log(0.01)]},
        ),
        (  # metric kl_k3, agg mean, upper 0.1: rows 0 (5504) and 3 (0.72) rejected
            0.0,
            ("kl_k3", "sequence", "mean", 0.1),
            RAW_WEIGHTS | {"reject": ["seq_mean_k3_inverse"], "reject_high": [0.1]},
        ),
        (  # KPop: metric binary_kl, level token, upper 0.01 (valid log-probs: both policies' shifted by -9)
            -9.0,
            ("binary_kl", "token", "mean", 0.01),
            RAW_WEIGHTS | {"reject": ["token_binary_kl"], "reject_high": [0.01]},
        ),
    ],
    ids=["product_filter_geometric_weight", "k3_mean_sequence_mask", "kpop_token_mask"],
)
def test_areal_rejection_sampling_metrics(shift, peer, keys):
    """AReaL's decoupled loss with actor.rejection_sampling (action mask; masked tokens stay in the
    denominator). The sequence filter on the ratio's product weighs by the geometric mean (a rule on
    seq_sum_k1 beside sequence_ratio=geometric_mean); kl_k3 is AReaL's k3 of pi_behave / pi_proximal
    (k3_inverse); KPop's binary KL needs the log-probs, not only their ratio.

    Peer: areal-project/AReaL@cbff54d645d2cd8ee1f1c358a82f3f473588433d areal/utils/functional/functional.py
    L167-182 (_check_bounds), L185-437 (apply_rejection_sampling), L440-449, L452-596 (ppo_actor_loss_fn);
    areal/utils/data.py (KLEstimator._compute_approx_kl); areal/api/cli_args.py L1505-1671
    (RejectionSamplingConfig: metric ratio | kl_k1 | kl_k2 | kl_k3 | binary_kl, agg sum | mean | max).
    """
    old = CORR_OLD + shift * CORR_MASK
    algo = algo_of(ReinforcePP, kl_coef=0.0, clip=UNCLAMPED, loss_aggregation="token_mean", **keys)
    rejected = same(algo, areal_loss(old, *peer), batch_of(old=old))
    assert 0 < rejected < 1


# ---- GSPO's two corrections: AReaL's GSPO with a rejection mask, OpenRLHF's GSPO with vLLM IS

GSPO_CLIPS = [(3e-4, 4e-4), (0.2, 0.28)]  # the paper's; a token-scale clip that leaves some rows unclipped


# Advantages that vary within a sequence (signs too, as KL-shaped returns can): row means over all tokens
# 0.625, -0.333.., 0.5, -1.5; over row 0's kept tokens (its e^3 one rejected) (-2 + 0.5 + 3) / 3 = 0.5
VARYING_ADVANTAGES = (
    torch.tensor(
        [[1.0, -2.0, 0.5, 3.0], [-0.5, 1.0, -1.5, 0.0], [2.0, -1.0, 0.0, 0.0], [-1.5, 0.0, 0.0, 0.0]],
        dtype=CORR_MASK.dtype,
    )
    * CORR_MASK
)
ADVANTAGES = {"constant": CORR_ADVANTAGES, "varying": VARYING_ADVANTAGES}


def areal_gspo_masked(lower, upper, clip_low, clip_high, advantages=CORR_ADVANTAGES):
    """AReaL ppo_actor_loss_fn with importance_sampling_level=sequence after apply_rejection_sampling
    (level token, action mask, metric ratio): the kept tokens are those whose pi_proximal / pi_behave lies
    in [lower, upper]; GSPO's geometric-mean ratio and the sequence's mean advantage are taken over the
    kept tokens (_compute_sequence_level_ratio_and_advantages on the narrowed loss_mask), each kept token's
    loss is weighted by its raw ratio, and the sum is divided by the ORIGINAL token count."""
    log_behave = CORR_OLD - CORR_ROLLOUT_RATIO
    weight = torch.exp(CORR_OLD - log_behave)
    in_bounds = (weight <= upper) & (weight >= lower if lower is not None else True)
    kept = CORR_MASK.bool() & in_bounds
    weight = torch.where(kept, weight, 0.0)
    count = CORR_MASK.count_nonzero()

    def loss(logp):
        log_ratio = logp - CORR_OLD
        seq = torch.where(kept, log_ratio, 0.0).sum(1) / kept.sum(1).clamp(min=1)
        ratio = torch.where(kept, torch.exp(seq.unsqueeze(1).expand_as(log_ratio)), 0.0)
        count_kept = kept.sum(-1, keepdim=True).clamp(min=1)
        adv = torch.where(kept, advantages, 0.0).sum(-1, keepdim=True) / count_kept
        adv = torch.where(kept, adv.expand_as(log_ratio), 0.0)
        pg = torch.max(-adv * ratio, -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)) * weight
        return torch.where(kept, pg, 0).sum() / count

    return loss


AREAL_GSPO = {"loss_aggregation": "token_mean", "ratio_form": "sequence"}
AREAL_GSPO |= {"advantage_form": "sequence_mean"}


@pytest.mark.parametrize("advantages", ADVANTAGES)
@pytest.mark.parametrize("lower", [None, 0.5])
@pytest.mark.parametrize("clips", GSPO_CLIPS, ids=["paper_clip", "token_clip"])
def test_areal_gspo_with_a_token_mask(lower, clips, advantages):
    """AReaL GSPO (importance_sampling_level=sequence) with rejection_sampling level=token action=mask
    metric=ratio (upper 5, lower none or 0.5): algo=gspo with mis over [lower, 5], the sequence ratio
    averaged over the kept tokens, token_mean over all tokens, ratio_form=sequence (AReaL's ratio carries
    the gradient of all the kept tokens, so the token-varying weights mix). Row 0's e^3 token is rejected
    (and its e^-10 one with lower 0.5): its ratio is the mean over the other tokens, and so is its
    advantage (advantage_form=sequence_mean: AReaL's one advantage per sequence, checked on advantages
    constant per sequence and on advantages that vary within one).

    Peer: areal-project/AReaL@cbff54d645d2cd8ee1f1c358a82f3f473588433d areal/utils/functional/functional.py
    L56-149 (_compute_sequence_level_ratio_and_advantages), L167-182, L185-437 (apply_rejection_sampling),
    L452-596 (ppo_actor_loss_fn: loss_mask_count before rejection, the sequence ratio on the narrowed mask).
    """
    keys = AREAL_GSPO | {"rollout_correction": "mis", "correction_low": lower, "correction_high": 5.0}
    algo = algo_of(GSPO, group_size=2, kl_coef=0.0, clip=RatioClip(*clips, log_ratio_clamp=None), **keys)
    table = ADVANTAGES[advantages]
    rejected = same(algo, areal_gspo_masked(lower, 5.0, *clips, table), batch_of(advantages=table))
    assert rejected == pytest.approx((2 if lower else 1) / 10)


def grads(algo, batch):
    """algo's loss and its gradient in pi_theta's log-probs (pi_old + CORR_DELTA) on `batch`."""
    logp = (batch.logprobs + CORR_DELTA).requires_grad_()
    loss, _ = algo.loss(batch, logp, None)
    loss.backward()
    return loss.detach(), logp.grad


@pytest.mark.parametrize("clips", GSPO_CLIPS, ids=["paper_clip", "token_clip"])
def test_gspo_advantage_forms_differ_only_where_advantages_vary_within_a_sequence(clips):
    """advantage_form=token (each token's own advantage: verl, TRL, OpenRLHF) is not AReaL's GSPO once
    the advantages vary within a sequence (loss or gradient off by more than 1e-3), and gives the same
    loss and gradient as sequence_mean when they are constant per sequence."""
    keys = AREAL_GSPO | {"rollout_correction": "mis", "correction_high": 5.0}
    token, mean = (
        algo_of(
            GSPO,
            group_size=2,
            kl_coef=0.0,
            clip=RatioClip(*clips, log_ratio_clamp=None),
            **keys | {"advantage_form": form},
        )
        for form in ("token", "sequence_mean")
    )
    loss, grad = grads(token, batch_of(advantages=VARYING_ADVANTAGES))
    peer_logp = (CORR_OLD + CORR_DELTA).requires_grad_()
    peer = areal_gspo_masked(None, 5.0, *clips, VARYING_ADVANTAGES)(peer_logp)
    peer.backward()
    assert max((loss - peer).abs().item(), (grad - peer_logp.grad).abs().max().item()) > 1e-3
    for ours, theirs in zip(grads(token, batch_of()), grads(mean, batch_of()), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_gspo_token_form_differs_from_areal_under_token_weights():
    """ratio_form=token (verl's GSPO-token) gives AReaL's loss value but another gradient when the
    correction's weights vary within a sequence: the key is a real disagreement."""
    keys = AREAL_GSPO | {"rollout_correction": "mis", "correction_high": 5.0, "ratio_form": "token"}
    algo = algo_of(GSPO, group_size=2, kl_coef=0.0, clip=RatioClip(0.2, 0.28, log_ratio_clamp=None), **keys)
    ours, theirs = (CORR_OLD + CORR_DELTA).requires_grad_(), (CORR_OLD + CORR_DELTA).requires_grad_()
    loss, _ = algo.loss(batch_of(), ours, None)
    peer = areal_gspo_masked(None, 5.0, 0.2, 0.28)(theirs)
    loss.backward()
    peer.backward()
    torch.testing.assert_close(loss, peer, rtol=1e-6, atol=1e-6)
    assert (ours.grad - theirs.grad).abs().max() > 1e-3


def openrlhf_gspo_is(clip_low, clip_high, advantages=CORR_ADVANTAGES):
    """OpenRLHF PolicyLoss(policy_loss_type="gspo", enable_vllm_is_correction=True): the log-ratio is
    log pi_theta - rollout_log_probs (the engine's), its masked mean over the response (count clamped at
    1) exponentiated as one ratio per sequence, clipped, no IS weight (the tis / icepop / seq-mask-tis
    branch runs only for ppo); GSPO forces token_level_loss=False: the per-sequence token means
    (/ count + 1e-8) averaged over the non-empty sequences."""
    log_rollout = CORR_OLD - CORR_ROLLOUT_RATIO

    def loss(logp):
        log_ratio = logp - log_rollout
        ratio = (log_ratio * CORR_MASK).sum(-1) / CORR_MASK.sum(-1).clamp(min=1)
        ratio = ratio.exp().unsqueeze(-1) * CORR_MASK
        surr1 = ratio * advantages
        surr2 = ratio.clamp(1 - clip_low, 1 + clip_high) * advantages
        per_token = -torch.min(surr1, surr2)
        counts = CORR_MASK.sum(-1)
        per_sequence = (per_token * CORR_MASK).sum(-1) / (counts + 1e-8)
        rows = (counts > 0).to(per_token.dtype)
        return (per_sequence * rows).sum() / rows.sum()

    return loss


@pytest.mark.parametrize("advantages", ADVANTAGES)
@pytest.mark.parametrize("clips", GSPO_CLIPS, ids=["paper_clip", "token_clip"])
def test_openrlhf_gspo_importance_sampling(clips, advantages):
    """OpenRLHF --actor.policy_loss_type gspo with --algo.advantage.is_correction_enable: GSPO's ratio
    anchored at the engine's log-probs (ppo_anchor=rollout), no weight, no log-ratio clamp, each token's
    own advantage times the sequence ratio, whose gradient reaches all the sequence's tokens
    (ratio_form=sequence).

    Peer: OpenRLHF/OpenRLHF@3c3be6234e0cb353e76bb8019947db9dfe99fca7 openrlhf/models/loss.py L11-38
    (aggregate_loss), L142-144 (gspo: token_level_loss False), L166-193 (the gspo ratio; surr1 = ratio *
    advantages per token), L195-218 (the vLLM IS weights only for ppo); openrlhf/trainer/ray/ppo_actor.py
    L76-88, L305-313.
    """
    keys = {"ppo_anchor": "rollout", "ratio_form": "sequence"}
    algo = algo_of(GSPO, group_size=2, kl_coef=0.0, clip=RatioClip(*clips, log_ratio_clamp=None), **keys)
    table = ADVANTAGES[advantages]
    same(algo, openrlhf_gspo_is(*clips, table), batch_of(advantages=table))


@pytest.mark.parametrize("clips", GSPO_CLIPS, ids=["paper_clip", "token_clip"])
def test_openrlhf_gspo_needs_the_sequence_ratio_form_where_advantages_vary(clips):
    """ratio_form=token (verl's GSPO-token) is OpenRLHF's GSPO while the advantages are constant per
    sequence (no per-token weight here), and its gradient is off by more than 1e-3 once they vary."""
    keys = {"ppo_anchor": "rollout", "ratio_form": "token"}
    algo = algo_of(GSPO, group_size=2, kl_coef=0.0, clip=RatioClip(*clips, log_ratio_clamp=None), **keys)
    same(algo, openrlhf_gspo_is(*clips))
    _, grad = grads(algo, batch_of(advantages=VARYING_ADVANTAGES))
    peer_logp = (CORR_OLD + CORR_DELTA).requires_grad_()
    openrlhf_gspo_is(*clips, VARYING_ADVANTAGES)(peer_logp).backward()
    assert (grad - peer_logp.grad).abs().max() > 1e-3


def test_gspo_refuses_an_unknown_ratio_form_in_one_line():
    with pytest.raises(ValueError, match=r"^ratio_form=per_token: must be one of \('token', 'sequence'\)$"):
        GSPO(ratio_form="per_token")


def test_gspo_refuses_an_unknown_advantage_form_in_one_line():
    allowed = r"\('token', 'sequence_mean'\)"
    with pytest.raises(ValueError, match=rf"^advantage_form=row_mean: must be one of {allowed}$"):
        GSPO(advantage_form="row_mean")
