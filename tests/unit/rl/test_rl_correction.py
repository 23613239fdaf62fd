"""rl/correction.py and the RolloutCorrection part (algorithms/parts.py), against hand-derived numbers
(issue 26 item 4).

One batch throughout: log pi_target - log pi_rollout per token, three rows of lengths 3, 2, 1, padding
holding a log-ratio of 7 that must never count:
  row 0: [3, -10, 0.5]  token ratios e^3 = 20.085537, e^-10 = 4.539993e-5, e^0.5 = 1.648721
         product e^-6.5 = 0.001503439, geometric mean e^(-6.5/3) = 0.114559
  row 1: [0.2, -0.4]    e^0.2 = 1.221403, e^-0.4 = 0.670320; product e^-0.2 = 0.818731,
         geometric mean e^-0.1 = 0.904837
  row 2: [1]            e^1 = 2.718282 (product = geometric mean)
"""

import math
import re

import pytest
import torch

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.remax import ReMax
from align_lab.config import build
from align_lab.rl import aggregate_loss
from align_lab.rl.correction import correction_weights, sequence_log_ratio
from align_lab.value_checks import ConfigError
from tests.conftest import compose
from tests.unit.algorithms.flat_keys import algo_of
from tests.unit.algorithms.test_algorithms_group import close, lengths_mask, rollout, t

LOG_RATIO = t([[3.0, -10.0, 0.5], [0.2, -0.4, 7.0], [1.0, 7.0, 7.0]])
MASK = lengths_mask([3, 2, 1], 3)
E = math.exp


def weights(mode, **keys):
    return correction_weights(LOG_RATIO, MASK, mode, **keys)


def test_sequence_log_ratio_is_the_sum_or_the_mean_of_the_kept_tokens():
    close(sequence_log_ratio(LOG_RATIO, MASK, "product"), [[-6.5], [-0.2], [1.0]])
    close(sequence_log_ratio(LOG_RATIO, MASK, "geometric_mean"), [[-6.5 / 3], [-0.1], [1.0]])
    close(sequence_log_ratio(LOG_RATIO, torch.zeros_like(MASK), "geometric_mean"), [[0.0]] * 3)


def test_none_weighs_every_response_token_one_and_padding_zero():
    w, rejected = weights("none")
    close(w, MASK)
    assert not rejected.any()


def test_tis_truncates_each_token_ratio_from_above_only_by_default():
    # verl: min(rho_t, 2); e^-10 stays (no lower bound)
    w, rejected = weights("tis", high=2.0)
    close(w, [[2.0, E(-10), E(0.5)], [E(0.2), E(-0.4), 0.0], [2.0, 0.0, 0.0]])
    assert not rejected.any()


def test_tis_with_a_lower_bound_clamps_both_sides():
    # OpenRLHF [0.5, 5]: e^3 -> 5, e^-10 -> 0.5, e^1 stays
    w, _ = weights("tis", low=0.5, high=5.0)
    close(w, [[5.0, 0.5, E(0.5)], [E(0.2), E(-0.4), 0.0], [E(1), 0.0, 0.0]])


def test_sequence_tis_puts_one_truncated_ratio_on_every_token():
    w, _ = weights("tis", level="sequence", high=2.0)  # product: e^-6.5, e^-0.2, e^1 -> 2
    close(w, [[E(-6.5)] * 3, [E(-0.2), E(-0.2), 0.0], [2.0, 0.0, 0.0]])
    w, _ = weights("tis", level="sequence", sequence_ratio="geometric_mean", high=2.0)
    close(w, [[E(-6.5 / 3)] * 3, [E(-0.1), E(-0.1), 0.0], [2.0, 0.0, 0.0]])


def test_mis_keeps_the_ratio_inside_the_bounds_and_rejects_the_rest():
    # [0.5, 2]: e^3, e^-10 and e^1 leave it
    w, rejected = weights("mis", low=0.5, high=2.0)
    close(w, [[0.0, 0.0, E(0.5)], [E(0.2), E(-0.4), 0.0], [0.0, 0.0, 0.0]])
    assert rejected.tolist() == [[True, True, False], [False, False, False], [True, False, False]]


def test_sequence_mis_rejects_whole_sequences():
    # geometric means 0.114559 (< 0.5: rejected), 0.904837 (kept), 2.718282 (> 2: rejected)
    w, rejected = weights("mis", level="sequence", sequence_ratio="geometric_mean", low=0.5, high=2.0)
    close(w, [[0.0] * 3, [E(-0.1), E(-0.1), 0.0], [0.0] * 3])
    assert rejected.tolist() == [[True] * 3, [False] * 3, [True, False, False]]


def test_token_mask_rejects_tokens_with_weight_one_elsewhere():
    # no lower bound (TRL): only e^3 and e^1 leave (-inf, 2]
    w, rejected = weights("token_mask", high=2.0)
    close(w, [[0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert rejected.tolist() == [[True, False, False], [False, False, False], [True, False, False]]


def test_seq_mask_rejects_sequences_and_optionally_weighs_the_kept_tokens():
    # products e^-6.5 (< 0.5) and e^1 (> 2) rejected; e^-0.2 kept
    w, rejected = weights("seq_mask", low=0.5, high=2.0)
    close(w, [[0.0] * 3, [1.0, 1.0, 0.0], [0.0] * 3])
    assert rejected.sum() == 4  # 3 + 1 response tokens
    w, _ = weights("seq_mask", low=0.5, high=2.0, mask_is_weight=True)  # OpenRLHF seq-mask-tis
    close(w, [[0.0] * 3, [E(0.2), E(-0.4), 0.0], [0.0] * 3])


def test_log_ratios_are_clamped_to_20_before_exp():
    w, _ = correction_weights(t([[25.0, -25.0]]), t([[1.0, 1.0]]), "tis", high=None)
    close(w, [[E(20), E(-20)]])


def test_weights_carry_no_gradient():
    log_ratio = LOG_RATIO.clone().requires_grad_()
    w, _ = correction_weights(log_ratio, MASK, "tis")
    assert not w.requires_grad


def test_aggregate_loss_rows_leave_emptied_sequences_out_of_the_sequence_means():
    # per-sequence token means 2 and 0 (row 1 emptied): rows=None -> (2 + 0) / 2; rows -> 2 / 1
    loss = t([[2.0, 2.0], [5.0, 5.0]])
    mask = t([[1.0, 1.0], [0.0, 0.0]])
    close(aggregate_loss(loss, mask, "seq_mean_token_mean"), 1.0)
    close(aggregate_loss(loss, mask, "seq_mean_token_mean", rows=torch.tensor([True, False])), 2.0)
    close(aggregate_loss(loss, mask, "seq_mean_token_sum", rows=torch.tensor([True, False])), 4.0)
    close(aggregate_loss(loss, mask, "token_mean", rows=torch.tensor([True, False])), 2.0)


# ---- the mixin: every online algorithm's policy term, weighted in one place


def corrected_batch(advantages, rollout_log_ratio, lengths, width):
    """ratio 1 to pi_old (logprobs = old = 0); the engine's log-probs are -rollout_log_ratio."""
    mask = lengths_mask(lengths, width)
    batch = rollout([0.0] * len(lengths), mask, 1, logprobs=torch.zeros_like(mask))
    batch.advantages = t(advantages)
    batch.rollout_logprobs = -t(rollout_log_ratio)
    return batch


def test_remax_loss_is_weighted_and_rejected_tokens_count_or_leave_the_denominator():
    # REINFORCE: per-token -A * l with l = 0 + d (d = 0.1 everywhere, so -A * 0.1).
    # A = 1 on row 0's 2 tokens, -2 on row 1's 1 token: per-token [-0.1, -0.1], [0.2].
    # token ratios old/rollout: row 0 [e^3, 1], row 1 [1]; token_mask high 2 rejects e^3.
    batch = corrected_batch([[1.0, 1.0], [-2.0, 0.0]], [[3.0, 0.0], [0.0, 0.0]], [2, 1], 2)
    logprobs = torch.full((2, 2), 0.1, dtype=torch.float64)
    plain = ReMax(kl_coef=0.0, loss_aggregation="token_mean")
    close(plain.loss(batch, logprobs, None)[0], (-0.1 - 0.1 + 0.2) / 3)
    count = algo_of(ReMax, kl_coef=0.0, loss_aggregation="token_mean", rollout_correction="token_mask")
    loss, stats = count.loss(batch, logprobs, None)
    close(loss, (0.0 - 0.1 + 0.2) / 3)  # the rejected token adds 0 and still counts
    assert stats["train/is_masked_frac"] == pytest.approx(1 / 3)
    drop = algo_of(
        ReMax,
        kl_coef=0.0,
        loss_aggregation="token_mean",
        rollout_correction="token_mask",
        masked_in_denominator=False,
    )
    close(drop.loss(batch, logprobs, None)[0], (-0.1 + 0.2) / 2)  # it leaves the denominator
    # tis high 2: weight 2 on the e^3 token -> (2 * -0.1 - 0.1 + 0.2) / 3
    tis = algo_of(ReMax, kl_coef=0.0, loss_aggregation="token_mean", rollout_correction="tis")
    loss, stats = tis.loss(batch, logprobs, None)
    close(loss, (-0.2 - 0.1 + 0.2) / 3)
    assert stats["train/is_weight_mean"] == pytest.approx(4 / 3) and stats["train/is_weight_max"] == 2.0


def test_correction_ratio_current_weighs_by_the_current_policy():
    # verl bypass + REINFORCE: w = min(pi_theta / pi_rollout, 2) with pi_theta = e^0.1 on every token,
    # rollout log-probs 0: w = e^0.1 = 1.105171 -> loss mean(-A * 0.1 * w) over 3 tokens, A = [1, 1, -2]
    batch = corrected_batch([[1.0, 1.0], [-2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [2, 1], 2)
    logprobs = torch.full((2, 2), 0.1, dtype=torch.float64).requires_grad_()
    algo = algo_of(
        ReMax,
        kl_coef=0.0,
        loss_aggregation="token_mean",
        rollout_correction="tis",
        correction_ratio="current",
    )
    loss, _ = algo.loss(batch, logprobs, None)
    close(loss, (-0.1 - 0.1 + 0.2) * E(0.1) / 3)
    loss.backward()  # the weight is a constant: d/dl = -A w / 3
    close(logprobs.grad, [[-E(0.1) / 3, -E(0.1) / 3], [2 * E(0.1) / 3, 0.0]])


def test_ppo_anchor_rollout_divides_the_ratio_by_the_engines_log_probs():
    # GRPO, no KL, one token each, A = 1: old = 0, engine = -0.1, current = 0.
    # anchor old: ratio 1 -> -1; anchor rollout: ratio e^0.1 = 1.105171 (inside 1.2) -> -1.105171
    batch = corrected_batch([[1.0], [1.0]], [[0.1], [0.1]], [1, 1], 1)
    logprobs = torch.zeros(2, 1, dtype=torch.float64)
    close(GRPO(group_size=2, kl_coef=0.0).loss(batch, logprobs, None)[0], -1.0)
    bypass = algo_of(GRPO, group_size=2, kl_coef=0.0, ppo_anchor="rollout")
    close(bypass.loss(batch, logprobs, None)[0], -E(0.1))


def test_a_correction_without_rollout_log_probs_says_what_is_missing():
    batch = corrected_batch([[1.0]], [[0.0]], [1], 1)
    batch.rollout_logprobs = None
    with pytest.raises(ValueError, match="rollout_logprobs"):
        algo_of(ReMax, rollout_correction="tis").loss(batch, torch.zeros(1, 1, dtype=torch.float64), None)


# ---- bad values: one line naming the key, at build, before any compute
@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["algo.correction.mode=icepop"],
            "algo.correction.mode=icepop: must be one of ('none', 'tis', ",
        ),
        (
            ["algo.correction.low=3", "algo.correction.high=2"],
            "algo.correction.low=3.0: must be <= algo.correction.high=2.0",
        ),
        (["algo.correction.low=-1"], "algo.correction.low=-1.0: must be >= 0 or null"),
        (["algo.correction.high=-2"], "algo.correction.high=-2.0: must be > 0 or null"),
        (
            ["algo.correction.sequence_ratio=mean"],
            "algo.correction.sequence_ratio=mean: must be one of ('product', 'geometric_mean')",
        ),
        (["algo.correction.ratio=new"], "algo.correction.ratio=new: must be one of ('old', 'current')"),
        (
            ["algo.correction.ppo_anchor=engine"],
            "algo.correction.ppo_anchor=engine: must be one of ('old', 'rollout')",
        ),
        (
            ["algo=remax", "algo.correction.ppo_anchor=rollout"],
            "algo.correction.ppo_anchor=rollout: must be old for an algorithm",
        ),
        (
            ["algo.correction.mask_is_weight=true", "algo.correction.mode=tis"],
            "algo.correction.mask_is_weight=true: must be false",
        ),
        (
            ["algo.correction.mode=token_mask", "algo.correction.level=sequence"],
            "algo.correction.level=sequence: must be token with algo.correction.mode=token_mask",
        ),
        # issue 59: bounds at exactly the on-policy value reject about half the on-policy tokens by
        # float noise (a log-ratio of +-1e-7); a tis band off 1 weighs every token by its bound
        (
            ["algo.correction.mode=mis", "algo.correction.low=1"],
            "algo.correction.low=1.0: must be < 1 or null with algo.correction.mode=mis",
        ),
        (
            ["algo.correction.mode=seq_mask", "algo.correction.high=1"],
            "algo.correction.high=1.0: must be > 1 or null with algo.correction.mode=seq_mask",
        ),
        (
            [
                "algo.correction.reject=[token_k1]",
                "algo.correction.reject_low=[0]",
                "algo.correction.reject_high=[1]",
            ],
            "algo.correction.reject_low=[0.0]: must be < 0 or null each",
        ),
        (
            ["algo.correction.reject=[seq_max_k2]", "algo.correction.reject_high=[0]"],
            "algo.correction.reject_high=[0.0]: must be > 0 or null each",
        ),
        (
            ["algo.correction.mode=tis", "algo.correction.high=1e-9"],
            "algo.correction.high=1e-09: must be >= 1 or null with algo.correction.mode=tis",
        ),
        (
            ["algo.correction.mode=tis", "algo.correction.low=2", "algo.correction.high=5"],
            "algo.correction.low=2.0: must be <= 1 or null with algo.correction.mode=tis",
        ),
    ],
)
def test_bad_correction_values_are_one_line_errors_naming_the_key(overrides, message):
    cfg, _ = compose(overrides)
    with pytest.raises(ConfigError, match="^" + re.escape(message)) as error:
        build(cfg.algo, "algo")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("algo", ["ppo", "ppo_max", "grpo", "dr_grpo", "rloo", "reinforce_pp", "remax"])
def test_every_online_algorithm_takes_the_correction_keys_off_by_default(algo):
    cfg, _ = compose([f"algo={algo}"])
    built = build(cfg.algo, "algo")
    assert (built.correction.mode, built.correction.ppo_anchor, built.correction.ratio) == (
        "none",
        "old",
        "old",
    )
    cfg, _ = compose([f"algo={algo}", "algo.correction.mode=seq_mask", "algo.correction.low=0.5"])
    assert build(cfg.algo, "algo").correction.mode == "seq_mask"


def _losses(choice, keys, mismatch):
    """(uncorrected loss, corrected loss, corrected stats) of `choice` on the contract's random rollout,
    its engine log-probs off pi_old by `mismatch` * noise; garbage (50) on padding must not leak."""
    from dataclasses import replace

    from tests.unit.algorithms.test_algorithm_contract import B, T, built, random_rollout

    plain = built(choice)
    rollout = random_rollout(plain)
    gen = torch.Generator().manual_seed(1)  # seed 1: RAFT's kept tokens include rejected ones
    rollout.rollout_logprobs = (
        rollout.logprobs + mismatch * torch.randn(B, T, generator=gen) + 50 * (1 - rollout.mask)
    )
    rollout.advantages, rollout.returns = plain.advantages(rollout)
    batch = rollout  # every row: RAFT trains on 2 of the 8
    logprobs = batch.logprobs + 0.05 * torch.randn(B, T, generator=gen)
    values = None if batch.values is None else batch.values + 0.1
    corrected = replace(plain, correction=replace(plain.correction, **keys))
    torch.manual_seed(0)  # Clip-Cov draws the tokens it detaches: the same draws in both losses
    loss, stats = corrected.loss(batch, logprobs, values)
    torch.manual_seed(0)
    return plain.loss(batch, logprobs, values)[0], loss, stats


ZOO = ["gspo", "cispo", "sapo", "gmpo", "dapo", "clip_cov", "kl_cov"]  # issue 36's, GRPO's variants
NEW_2026 = [
    "dppo",
    "dro",
    "gdpo",
    "opd",
]  # issue 61's; sft_distill and gkd refuse a correction (the teacher's samples; gkd: no ratio), sdpo at its
# default distillation_weight 1 (no policy term; below 1 GRPO's term takes one)
CORRECTION_KEYS = [  # algo.correction's
    {"mode": "tis", "low": 0.5},
    {"mode": "mis", "level": "sequence", "sequence_ratio": "geometric_mean"},
    {"mode": "token_mask", "masked_in_denominator": False},
    {"mode": "seq_mask", "mask_is_weight": True, "low": 0.5},
]


@pytest.mark.parametrize("keys", CORRECTION_KEYS, ids=lambda k: k["mode"])
@pytest.mark.parametrize(
    "choice",
    [
        "ppo",
        "ppo_max",
        "grpo",
        "dr_grpo",
        "rloo",
        "reinforce_pp",
        "reinforce_pp_baseline",
        "remax",
        "raft",
        "vanilla_pg",
        "reinforce_ma",
        *ZOO,
        *NEW_2026,
    ],
)
def test_every_online_algorithm_is_corrected_and_unchanged_without_mismatch(choice, keys):
    from tests.unit.algorithms.test_algorithm_contract import ONLINE

    assert set(ONLINE) <= {
        "ppo",
        "ppo_max",
        "ppo_max_released",
        "ppo_max_sft_critic",
        "grpo",
        "dr_grpo",
        "rloo",
    } | {"reinforce_pp", "reinforce_pp_baseline", "remax", "raft", "vanilla_pg", "reinforce_ma"} | set(
        ZOO
    ) | set(NEW_2026) | {"sft_distill", "gkd", "sdpo"}
    # engine = trainer: every ratio is 1, inside every bound -> the very loss of no correction
    plain, loss, stats = _losses(choice, keys, 0.0)
    torch.testing.assert_close(loss, plain, rtol=0, atol=0)
    assert stats["train/is_masked_frac"] == 0.0 and stats["train/is_weight_mean"] == 1.0
    # a mismatch moves the loss (weights, masks), and finitely
    plain, loss, stats = _losses(choice, keys, 2.0)
    assert math.isfinite(loss.item()) and abs(loss.item() - plain.item()) > 1e-6
