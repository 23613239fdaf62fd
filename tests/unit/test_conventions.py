"""The keys that reproduce a peer's convention (README "Reproducing a peer's defaults"): each against
hand-derived numbers, each default the paper's (behaviour unchanged unless the key is set)."""

import pytest
import torch

from align_lab.algorithms.base import clip_bounds
from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.ppo import PPO
from align_lab.algorithms.reinforce_pp import ReinforcePP
from align_lab.algorithms.rloo import RLOO
from align_lab.config import build
from align_lab.rl import aggregate_loss, kl_penalty
from tests.conftest import compose
from tests.unit.test_algorithms_group import close, lengths_mask, rollout, t

KL_ALGOS = ["ppo", "ppo_max", "vanilla_pg", "reinforce_ma", "rloo", "raft", "remax", "grpo", "dr_grpo"]
KL_ALGOS += ["reinforce_pp", "reinforce_pp_baseline"]
CLIP_ALGOS = ["ppo", "ppo_max", "rloo", "grpo", "dr_grpo", "reinforce_pp"]


# ---- Dr. GRPO's normaliser: the generation limit, as TRL's max_completion_length
@pytest.mark.parametrize(
    "overrides,limit",
    [
        ([], 12),
        (["task=toy_arith"], 4),
        (["model=hf", "model.name_or_path=x", "model.max_response_tokens=96"], 96),
    ],
)
def test_dr_grpo_max_len_is_the_generation_limit(overrides, limit):
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


# ---- clip-higher and dual-clip on every ratio-clipped algorithm
@pytest.mark.parametrize("algo", CLIP_ALGOS)
def test_every_ratio_clipped_algorithm_exposes_clip_high_and_dual_clip(algo):
    cfg, _ = compose([f"algo={algo}", "algo.clip_high=0.28", "algo.dual_clip=3.0"])
    built = build(cfg.algo, "algo")
    assert clip_bounds(built) == (built.clip, 0.28, 3.0)


def test_clip_high_and_dual_clip_reach_the_surrogate():
    # clip 0.2, clip_high 0.28, dual_clip 3. Row 0: rho = 1.5, A = 1 -> min(1.5, 1.28) -> loss -1.28
    # (-1.2 without clip_high). Row 1: rho = 5, A = -1 -> -min(-5, -1.2) = 5, capped at -3 * -1 = 3.
    mask = lengths_mask([1, 1], 1)
    batch = rollout([0.0, 0.0], mask, 1, ref_logprobs=t([[0.0], [0.0]]))
    batch.advantages = t([[1.0], [-1.0]])
    logprobs = t([[1.5], [5.0]]).log()
    plain = ReinforcePP(kl_coef=0.0)
    both = ReinforcePP(kl_coef=0.0, clip_high=0.28, dual_clip=3.0)
    # token_mean over two tokens: (-1.2 + 5) / 2 = 1.9 and (-1.28 + 3) / 2 = 0.86
    close(plain.loss(batch, logprobs, None)[0], 1.9)
    close(both.loss(batch, logprobs, None)[0], 0.86)


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


# ---- every key in every YAML it concerns, at the paper's default, and checked
@pytest.mark.parametrize("algo", KL_ALGOS)
def test_every_kl_algorithm_has_kl_clamp_off_by_default(algo):
    cfg, _ = compose([f"algo={algo}"])
    assert "kl_clamp" in cfg.algo and cfg.algo.kl_clamp is None


def test_new_keys_default_to_the_papers_behaviour():
    grpo = compose(["algo=grpo"])[0].algo
    assert (grpo.std_scope, grpo.reward_clip, grpo.use_bias_correction_kl) == ("group", None, False)
    rloo = compose(["algo=rloo"])[0].algo
    assert (rloo.reward_clip, rloo.normalize_advantages) == (None, False)
    for algo in CLIP_ALGOS:
        a = compose([f"algo={algo}"])[0].algo
        assert (a.clip_high, a.dual_clip) == (None, None), algo


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: PPO(kl_clamp=0.0), "kl_clamp=0.0: must be > 0 or null"),
        (lambda: GRPO(dual_clip=1.0), "dual_clip=1.0: must be > 1 or null"),
        (lambda: RLOO(clip_high=-0.1), "clip_high=-0.1: must be > 0 or null"),
        (lambda: GRPO(std_scope="global"), "std_scope=global: must be one of ('group', 'batch')"),
        (lambda: RLOO(token_level_kl=True, normalize_advantages=True), "normalize_advantages=True"),
    ],
)
def test_bad_values_are_one_line_errors(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_cfg_job_shows_dr_grpos_normaliser_as_a_number():
    from tests.conftest import ROOT, run_cli

    result = run_cli(["--cfg", "job", "algo=dr_grpo"], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "  max_len: 12\n" in result.stdout  # toy_prefs' generation limit, not a ${...} interpolation
