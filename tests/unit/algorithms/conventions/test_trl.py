"""TRL's conventions as align_lab keys: Dr. GRPO's normaliser (max_completion_length), the bias-corrected KL,
scale_rewards="batch", RLOO's normalize_advantages, the unclamped log-ratio, and GRPO's
vllm_importance_sampling_mode. Each test re-derives the peer's formula in its comment or docstring, at the
commit it names, and checks align_lab's key against it on hand-derived numbers (docs/conventions.md)."""

import math

import pytest
import torch

from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.parts import RatioClip
from align_lab.algorithms.rloo import RLOO
from align_lab.rl import aggregate_loss
from tests.conftest import compose
from tests.unit.algorithms.conventions.peer_batch import (
    CORR_ADVANTAGES,
    CORR_MASK,
    CORR_OLD,
    CORR_ROLLOUT_RATIO,
    same_loss,
)
from tests.unit.algorithms.flat_keys import algo_of
from tests.unit.algorithms.test_algorithms_group import close, lengths_mask, rollout, t

# ---- Dr. GRPO's normaliser: the response budget, as TRL's max_completion_length; multi-turn: the
# conversation's (policy and observation tokens after the prompt), as verl's response_length and TRL's
# max_completion_length, which tool results count against (docs/conventions.md#multi-turn)
CALCULATOR = ["env=calculator", "task=arith_word", "reward=verifier", "model=hf", "model.name_or_path=x"]


@pytest.mark.parametrize(
    "overrides,limit",
    [
        ([], 12),
        (["task=toy_arith"], 4),
        (["model=hf", "model.name_or_path=x", "model.max_response_tokens=96"], 96),
        (CALCULATOR, 256),  # env.max_conversation_tokens, not the per-turn model.max_response_tokens 64
        ([*CALCULATOR, "env.max_conversation_tokens=100"], 100),
        (["task=guess_number", "env=guess_number"], 24),  # not the per-turn limit 3
    ],
)
def test_dr_grpo_max_len_is_the_response_budget(overrides, limit):
    cfg, _ = compose(["algo=dr_grpo", *overrides])
    assert cfg.algo.max_len == limit
    assert cfg.algo.loss_aggregation == "constant"


def test_dr_grpo_loss_divides_by_batch_times_max_len_not_the_padded_length():
    # ratio 1 and no KL: per-token loss = -A. A = 1 on row 0's 2 tokens, 2 on row 1's 1 token.
    # sum = -(1 + 1 + 2) = -4; B * max_len = 2 * 5 = 10 -> -0.4 (the padded length 3 would give -0.667)
    mask = lengths_mask([2, 1], 3)
    batch = rollout([0.0, 0.0], mask, 2)
    batch.advantages = t([[1.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    algo = GRPO(group_size=2, kl_coef=0.0, scale_by_std=False, loss_aggregation="constant", max_len=5)
    loss, _ = algo.loss(batch, batch.logprobs.clone(), None)
    close(loss, -0.4)
    close(aggregate_loss(-batch.advantages, mask, "constant"), -4 / 6)  # max_len None: B * T = 6


# ---- TRL 1.16's use_bias_correction_kl: k3 times the differentiable ratio pi / pi_old
@pytest.mark.parametrize("corrected,value,grad", [(False, 0.0193147, 0.05), (True, 0.0386294, 0.1386294)])
def test_grpo_bias_corrected_kl_multiplies_k3_by_the_ratio(corrected, value, grad):
    # one token, A = 0: loss = 0.1 * k3(u) [* rho]. old = ref = 0, new log-prob ln 2: u = ln 2, rho = 2.
    # k3 = exp(-ln 2) - 1 + ln 2 = 0.5 - 1 + 0.693147 = 0.193147 -> 0.0193147; times rho 2 -> 0.0386294.
    # d/dl: k3' = 1 - exp(-u) = 0.5 -> 0.05; (k3 rho)' = k3' rho + k3 rho = 1 + 0.386294 -> 0.1386294.
    mask = lengths_mask([1, 1], 1)
    batch = rollout([0.0, 0.0], mask, 2, ref_logprobs=t([[0.0], [0.0]]))
    batch.advantages = t([[0.0], [0.0]])
    logprobs = t([[0.693147180559945], [0.0]]).requires_grad_()
    algo = GRPO(group_size=2, kl_coef=0.1, use_bias_correction_kl=corrected, loss_aggregation="token_mean")
    loss, _ = algo.loss(batch, logprobs, None)
    (loss * 2).backward()  # token_mean over 2 tokens: undo the 1/2 to read row 0's term
    close(loss * 2, value)
    close(logprobs.grad[0, 0], grad)


# ---- TRL's scale_rewards="batch" (GRPO) and RLOO's normalize_advantages
def test_grpo_batch_std_divides_by_one_std_of_the_steps_scores():
    # scores [1, 0, 3, 3], groups of 2: centred [0.5, -0.5, 0, 0]. Batch: mean 1.75, squared deviations
    # 0.5625 + 3.0625 + 1.5625 + 1.5625 = 6.75, / 3 = 2.25, std 1.5: A = 0.5 / 1.5001 = 0.333311
    mask = lengths_mask([1, 1, 1, 1], 1)
    advantages, _ = GRPO(group_size=2, std_scope="batch").advantages(rollout([1.0, 0.0, 3.0, 3.0], mask, 2))
    close(advantages, [[0.333311], [-0.333311], [0.0], [0.0]])


def test_rloo_normalize_advantages_standardises_over_the_step():
    # scores [1, 0, 3, 3], groups of 2, no KL: A = [1, -1, 0, 0]; mean 0, unbiased std sqrt(2/3) = 0.816497
    # -> 1 / (0.816497 + 1e-4) = 1 / 0.816597 = 1.224595
    mask = lengths_mask([1, 1, 1, 1], 1)
    algo = RLOO(group_size=2, normalize_advantages=True)
    advantages, _ = algo.advantages(rollout([1.0, 0.0, 3.0, 3.0], mask, 2))
    close(advantages, [[1.224595], [-1.224595], [0.0], [0.0]])


def test_cfg_job_shows_dr_grpos_normaliser_as_a_number(forked_cli):
    from tests.conftest import ROOT

    result = forked_cli(["--cfg", "job", "algo=dr_grpo"], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "  max_len: 12\n" in result.stdout  # toy_prefs' generation limit, not a ${...} interpolation


def huge(actual, expected):
    """Relative comparison for values of order e^20 (an absolute 1e-6 asks for 17 digits)."""
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "clamp,value,grad",
    [(20.0, 242582597.20489514, 0.0), (None, 1792456422.565796, 1792456423.065796)],
)
def test_log_ratio_clamp_null_is_trls_unclamped_token_ratio(clamp, value, grad):
    """TRL exponentiates the token log-ratio unclamped (log_ratio_clamp=null); OpenRLHF and verl clamp
    it to [-20, 20] first (the default).

    Peer: huggingface/trl@f2cd57710ae345ea6428ae95363267fcf38a3dc8
    trl/trainer/grpo_trainer.py L3054-3066 (coef_1 = exp(log_ratio)), L3083-3091 (-min(coef_1 A,
    clip(coef_1) A)).
    Peer: OpenRLHF/OpenRLHF@3c3be6234e0cb353e76bb8019947db9dfe99fca7 openrlhf/models/loss.py L166-169.
    Peer: volcengine/verl@b178a3cd56f58b2d502255daba591e92833930a7 verl/trainer/ppo/core_algos.py L1210-1213.
    """
    # one group of 2, one token each, no KL. Row 0: log-ratio 22, A = -1: -min(-rho, -1.2) = rho;
    # row 1: log-ratio 0, A = 1: -min(1, 1) = -1. Mean of per-sequence means: (rho - 1) / 2.
    # clamp 20: rho = e^20 = 485165195.409790 -> 242582597.204895, and no gradient (clamped);
    # null (TRL): rho = e^22 = 3584912846.131592 -> 1792456422.565796, d/dl0 = e^22 / 2 = 1792456423.065796
    mask = lengths_mask([1, 1], 1)
    batch = rollout([0.0, 0.0], mask, 2, ref_logprobs=t([[0.0], [0.0]]))
    batch.advantages = t([[-1.0], [1.0]])
    logprobs = t([[22.0], [0.0]]).requires_grad_()
    loss, _ = GRPO(group_size=2, kl_coef=0.0, clip=RatioClip(log_ratio_clamp=clamp)).loss(
        batch, logprobs, None
    )
    loss.backward()
    huge(loss, value)
    huge(logprobs.grad[0, 0], grad)


@pytest.mark.parametrize("clamp,value", [(20.0, 242582597.10489514), (None, 13244561064.321735)])
def test_log_ratio_clamp_null_is_trls_unclamped_sequence_ratio(clamp, value):
    """TRL's RLOO exponentiates the sequence log-ratio unclamped; align_lab's clamp bounds the
    sequence log-ratio it exponentiates (each token's is only 8 here).

    Peer: huggingface/trl@f2cd57710ae345ea6428ae95363267fcf38a3dc8
    trl/trainer/rloo_trainer.py L1683-1694 (log_ratio = sum_t l - sum_t l_old, coef_1 = exp(log_ratio),
    -min(coef_1 A, clip(coef_1, 0.8, 1.2) A), mean over sequences).
    """
    # row 0: token log-ratios [8, 8, 8], sum 24, A = -1 -> rho = e^24 (clamped e^20); row 1: one token,
    # log-ratio 0.5, A = 1: rho = e^0.5 = 1.648721 > 1.2 -> -min(1.648721, 1.2) = -1.2.
    # null: (e^24 - 1.2) / 2 = (26489122129.843470 - 1.2) / 2 = 13244561064.321735
    # 20:   (e^20 - 1.2) / 2 = (485165195.409790 - 1.2) / 2 = 242582597.104895
    mask = lengths_mask([3, 1], 3)
    batch = rollout([0.0, 0.0], mask, 2, ref_logprobs=torch.zeros(2, 3, dtype=torch.float64))
    batch.advantages = t([[-1.0, -1.0, -1.0], [1.0, 0.0, 0.0]])
    logprobs = t([[8.0, 8.0, 8.0], [0.5, 0.0, 0.0]])
    algo = RLOO(group_size=2, ratio="sequence", clip=RatioClip(log_ratio_clamp=clamp))
    huge(algo.loss(batch, logprobs, None)[0], value)


@pytest.mark.parametrize("clamp,value", [(20.0, 509423455.18704665), (None, 3764158488.488172)])
def test_log_ratio_clamp_reaches_grpos_bias_corrected_kl(clamp, value):
    """TRL multiplies k3 by the unclamped ratio (use_bias_correction_kl).

    Peer: huggingface/trl@f2cd57710ae345ea6428ae95363267fcf38a3dc8
    trl/trainer/grpo_trainer.py L3066-3076 (per_token_kl * coef_1, coef_1 = exp(log_ratio)).
    """
    # A = 0, kl_coef 0.1, ref = old = 0. Row 0: l = 22: k3 = e^-22 - 1 + 22 = 21.000000000279,
    # times rho (e^20 clamped, e^22 TRL), times 0.1, over 2 tokens (row 1 adds 0):
    # 20: 0.1 * 21.000000000279 * 485165195.409790 / 2 = 509423455.187047
    # null: 0.1 * 21.000000000279 * 3584912846.131592 / 2 = 3764158488.488172
    mask = lengths_mask([1, 1], 1)
    batch = rollout([0.0, 0.0], mask, 2, ref_logprobs=t([[0.0], [0.0]]))
    batch.advantages = t([[0.0], [0.0]])
    algo = GRPO(group_size=2, kl_coef=0.1, use_bias_correction_kl=True, clip=RatioClip(log_ratio_clamp=clamp))
    huge(algo.loss(batch, t([[22.0], [0.0]]), None)[0], value)


def trl_grpo_loss(mode, clip_max=3.0, clip_min=None, beta=0.04):
    """TRL GRPOTrainer, loss_type grpo: the vLLM IS ratio of old / sampling log-probs (per token, or
    exp of the masked sum per sequence), truncated or masked to [clip_min, clip_max], multiplies the
    clipped surrogate before the k3 KL term is added; mean over sequences of token means."""
    diff = (CORR_ROLLOUT_RATIO) * CORR_MASK
    if mode.startswith("sequence"):
        diff = diff.sum(-1, keepdim=True)
    is_ratio = torch.exp(diff)
    if mode.endswith("truncate"):
        is_ratio = torch.clamp(is_ratio, min=clip_min, max=clip_max)
    else:
        low = clip_min if clip_min is not None else -math.inf
        high = clip_max if clip_max is not None else math.inf
        is_ratio = is_ratio.masked_fill((is_ratio < low) | (is_ratio > high), 0.0)
    ref = CORR_OLD - 0.2 * CORR_MASK

    def loss(logp):
        coef_1 = torch.exp(logp - CORR_OLD)
        coef_2 = torch.clamp(coef_1, 0.8, 1.2)
        per_token = -torch.min(coef_1 * CORR_ADVANTAGES, coef_2 * CORR_ADVANTAGES) * is_ratio
        per_token = per_token + beta * (torch.exp(ref - logp) - (ref - logp) - 1)
        return ((per_token * CORR_MASK).sum(-1) / CORR_MASK.sum(-1).clamp(min=1.0)).mean()

    return loss


@pytest.mark.parametrize(
    "mode,keys",
    [
        ("token_truncate", {"rollout_correction": "tis"}),
        ("token_mask", {"rollout_correction": "mis"}),
        ("sequence_truncate", {"rollout_correction": "tis", "correction_level": "sequence"}),
        ("sequence_mask", {"rollout_correction": "mis", "correction_level": "sequence"}),
    ],
)
def test_trl_vllm_importance_sampling_mode(mode, keys):
    """TRL GRPO's vllm_importance_sampling_mode (default sequence_mask) with clip_max 3, no clip_min:
    the product of the token ratios per sequence, no log-ratio clamp, masked ratios set to 0 (the
    token stays in the denominator), the KL term not weighted.

    Peer: huggingface/trl@f2cd57710ae345ea6428ae95363267fcf38a3dc8
    trl/trainer/grpo_trainer.py L2579-2624 (the IS ratio), L3037-3128 (coef_1, the clipped surrogate,
    per_token_loss * importance_sampling_ratio, + beta * k3, grpo aggregation);
    trl/trainer/grpo_config.py L335-353, L915-934 (mode sequence_mask, clip_max 3.0, clip_min None).
    """
    keys = keys | {"correction_high": 3.0}
    algo = algo_of(GRPO, group_size=2, kl_coef=0.04, clip=RatioClip(log_ratio_clamp=None), **keys)
    same_loss(algo, trl_grpo_loss(mode))
