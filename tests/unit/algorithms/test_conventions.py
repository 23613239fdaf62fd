"""The keys that reproduce a peer's convention (docs/conventions.md): each against hand-derived
numbers, each default the paper's or align_lab's earlier behaviour (unchanged unless the key is set).
A test that names a peer re-derives that peer's formula in its comment, at the commit it names."""

import math
import re
from dataclasses import replace

import pytest
import torch

from align_lab.algorithms.base import clip_bounds
from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.ppo import PPO
from align_lab.algorithms.reinforce_pp import ReinforcePP
from align_lab.algorithms.remax import ReMax
from align_lab.algorithms.rloo import RLOO
from align_lab.config import build
from align_lab.rl import aggregate_loss, clip_reward, kl_penalty, observed_kl
from align_lab.value_checks import ConfigError
from tests.conftest import compose
from tests.unit.algorithms.test_algorithms_group import close, lengths_mask, rollout, t

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
    cfg, _ = compose(
        [f"algo={algo}", "algo.clip_high=0.28", "algo.dual_clip=3.0", "algo.log_ratio_clamp=null"]
    )
    built = build(cfg.algo, "algo")
    assert clip_bounds(built) == (built.clip, 0.28, 3.0, None)


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
        assert a.log_ratio_clamp == 20.0, algo  # as before the key existed (OpenRLHF, verl)
        assert a.reward_clip_low is None, algo  # symmetric, as before
    assert compose(["algo=ppo"])[0].algo.kl_controller_input == "sum"  # Ziegler et al. 2019
    assert compose(["algo=reinforce_pp"])[0].algo.reward_clip == 10.0  # as before (OpenRLHF)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: PPO(kl_clamp=0.0), "kl_clamp=0.0: must be > 0 or null"),
        (lambda: GRPO(dual_clip=1.0), "dual_clip=1.0: must be > 1 or null"),
        (lambda: RLOO(clip_high=-0.1), "clip_high=-0.1: must be > 0 or null"),
        (lambda: GRPO(std_scope="global"), "std_scope=global: must be one of ('group', 'batch')"),
        (lambda: RLOO(token_level_kl=True, normalize_advantages=True), "normalize_advantages=True"),
        (lambda: ReinforcePP(reward_clip=0.0), "reward_clip=0.0: must be > 0 or null"),
        (
            lambda: RLOO(reward_clip=1.0, reward_clip_low=-1.0),
            "reward_clip_low=-1.0: must be > -reward_clip = -1.0",
        ),
        (lambda: GRPO(log_ratio_clamp=0.0), "log_ratio_clamp=0.0: must be > 0 or null"),
        (
            lambda: PPO(kl_controller_input="mean"),
            "kl_controller_input=mean: must be one of ('sum', 'token_mean')",
        ),
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


# ---- issue 26 item 6: conventions found by a cross-check against the peers' newest code
# The peers' newest stored code: OpenRLHF 3c3be62 (2026-08-13), verl b178a3c (2026-01-29), TRL f2cd577
# (2026-07-24); each test names the full commit and the lines it re-derives.


def test_reinforce_pp_reward_clip_null_is_verls_reinforce_pp():
    """verl's REINFORCE++ clips no reward; reward_clip=null whiten_unbiased=true reproduces it.

    Peer: volcengine/verl@b178a3cd56f58b2d502255daba591e92833930a7
    verl/trainer/ppo/ray_trainer.py L70-110 (apply_kl_penalty: rewards = scores - beta * k1 * mask);
    verl/trainer/ppo/core_algos.py L583-618 (G_t = r_t + gamma G_(t+1), reset after EOS; advantages =
    masked_whiten(G, mask) * mask); verl/utils/torch_functional.py L304-339 (masked_whiten:
    (G - mean) * rsqrt(var + 1e-8), var unbiased by default).
    """
    # scores [30, 0], mask [[1, 1], [1, 0]], k1 KL (old - ref) 2 on row 0's first token, beta 0.05.
    # rewards: row 0 [-0.05 * 2, 30] = [-0.1, 30], row 1 [0]; returns row 0 [29.9, 30], row 1 [0].
    # kept {29.9, 30, 0}: mean 59.9 / 3 = 19.966667; squared deviations 98.671111 + 100.667778 +
    # 398.667778 = 598.006667, / 2 = 299.003333 (unbiased), std 17.291713:
    # (29.9 - 19.966667) / 17.291713 = 0.574456, (30 - ...) = 0.580239, (0 - ...) = -1.154696
    mask = lengths_mask([2, 1], 2)
    batch = rollout([30.0, 0.0], mask, 1, kl=[[2.0, 0.0], [0.0, 0.0]])
    verl = ReinforcePP(kl_coef=0.05, reward_clip=None, whiten_unbiased=True)
    close(verl.advantages(batch)[0], [[0.574456, 0.580239], [-1.154696, 0.0]])
    # the default (OpenRLHF): score clamped to 10 -> returns {9.9, 10, 0}, mean 6.633333, population
    # variance (10.671111 + 11.334444 + 44.001111) / 3 = 22.002222, std 4.690653
    # -> 0.696421, 0.717739, -1.414160
    close(ReinforcePP(kl_coef=0.05).advantages(batch)[0], [[0.696421, 0.717739], [-1.414160, 0.0]])


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
    loss, _ = GRPO(group_size=2, kl_coef=0.0, log_ratio_clamp=clamp).loss(batch, logprobs, None)
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
    algo = RLOO(group_size=2, ratio="sequence", log_ratio_clamp=clamp)
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
    algo = GRPO(group_size=2, kl_coef=0.1, use_bias_correction_kl=True, log_ratio_clamp=clamp)
    huge(algo.loss(batch, t([[22.0], [0.0]]), None)[0], value)


def test_dual_clip_3_is_verls_default_loss():
    """verl dual-clips by default (c = 3); OpenRLHF does not (and nor does align_lab: null).

    Peer: volcengine/verl@b178a3cd56f58b2d502255daba591e92833930a7
    verl/trainer/config/actor/actor.yaml L79 (clip_ratio_c: 3.0); verl/trainer/ppo/core_algos.py
    L1159-1235 (compute_policy_loss_vanilla: for A < 0, min(-3 A, max(-rho A, -clip(rho) A))).
    Peer: OpenRLHF/OpenRLHF@3c3be6234e0cb353e76bb8019947db9dfe99fca7
    openrlhf/cli/train_ppo_ray.py L389 (--actor.dual_clip default None).
    """
    # rho = e^3 = 20.085537 with A = -1: max(20.085537, 1.2) = 20.085537, min(3, .) = 3;
    # rho = e^-3 = 0.049787 with A = -1: max(0.049787, 0.8) = 0.8 < 3 -> 0.8;
    # rho = e^3 with A = 1: max(-20.085537, -1.2) = -1.2 (A > 0: no dual clip).
    # token_mean: (3 + 0.8 - 1.2) / 3
    mask = lengths_mask([1, 1, 1], 1)
    batch = rollout([0.0] * 3, mask, 1, ref_logprobs=t([[0.0], [0.0], [0.0]]))
    batch.advantages = t([[-1.0], [-1.0], [1.0]])
    logprobs = t([[3.0], [-3.0], [3.0]])
    close(ReinforcePP(kl_coef=0.0, dual_clip=3.0).loss(batch, logprobs, None)[0], (3 + 0.8 - 1.2) / 3)
    # align_lab's default, as OpenRLHF's: rho A unbounded for A < 0 -> (20.085537 + 0.8 - 1.2) / 3
    close(ReinforcePP(kl_coef=0.0).loss(batch, logprobs, None)[0], (math.exp(3) + 0.8 - 1.2) / 3)


def test_new_keys_are_checked_at_build_from_the_command_line():
    cfg, _ = compose(["algo=reinforce_pp", "algo.reward_clip=null", "algo.log_ratio_clamp=null"])
    built = build(cfg.algo, "algo")
    assert (built.reward_clip, built.log_ratio_clamp) == (None, None)
    cfg, _ = compose(["algo=ppo", "algo.kl_controller_input=mean"])
    message = "algo.kl_controller_input=mean: must be one of ('sum', 'token_mean')"
    with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
        build(cfg.algo, "algo")
    cfg, _ = compose(["algo=grpo", "algo.reward_clip=5", "algo.reward_clip_low=-10"])
    with pytest.raises(ConfigError, match=r"^algo\.reward_clip_low=-10\.0: must be > -reward_clip = -5\.0"):
        build(cfg.algo, "algo")
    # OpenRLHF --reward.clip_range 1 10: a positive lower bound
    cfg, _ = compose(["algo=reinforce_pp", "algo.reward_clip_low=-1"])
    built = build(cfg.algo, "algo")
    assert (built.reward_clip, built.reward_clip_low) == (10.0, -1.0)
    close(
        PPO(reward_clip=10.0, reward_clip_low=-1.0).process_scores(t([-3.0, 0.5, 4.0, 12.0])),
        [1.0, 1.0, 4.0, 10.0],
    )


# ---- issue 26 item 4: rollout corrections, each peer's re-derived on one batch (docs/off_policy.md)
# Peers' newest stored code: verl b178a3c (2026-01-29), OpenRLHF 3c3be62 (2026-08-13), TRL f2cd577
# (2026-07-24), slime 624b824 (2026-08-21), AReaL 4aef98d (2026-05-21).
# Re-checked for issue 36 (2026-08-22) against verl-project/verl 1dda039 and areal-project/AReaL cbff54d:
# the functions below are unchanged there (line numbers stay the older commits'); test_peer_corrections.py
# has the rest.
# One batch of 4 responses of lengths 4, 3, 2, 1 (padding after; its values are finite garbage that must
# not count). Per token, log pi_old - log pi_rollout (the engine's):
#   row 0: [3, -10, 0.1, -0.2]  a token ratio e^3 and one e^-10; product e^-7.1, geometric mean e^-1.775
#   row 1: [0.3, 0.2, 0.4]      product e^0.9 = 2.46 (outside [0.5, 2]: masked), geometric mean e^0.3
#   row 2: [-0.1, 0.05]         product e^-0.05, geometric mean e^-0.025
#   row 3: [1.5]                e^1.5 = 4.48 (outside 2 and 3, inside 5)
# log pi_theta - log pi_old (the PPO ratio) is small except row 3's 1.2 (ratio 3.32: with A = -1.5 verl's
# dual clip c = 3 binds). Advantages are constant per response: 1, -0.5, 2, -1.5.
CORR_LENGTHS = [4, 3, 2, 1]
CORR_MASK = lengths_mask(CORR_LENGTHS, 4)
CORR_ROLLOUT_RATIO = t(
    [[3.0, -10.0, 0.1, -0.2], [0.3, 0.2, 0.4, 9.0], [-0.1, 0.05, 9.0, 9.0], [1.5, 9.0, 9.0, 9.0]]
)
CORR_DELTA = t([[0.1, -0.3, 0.05, 0.25], [-0.1, 0.3, 0.0, 2.0], [0.2, -0.05, 2.0, 2.0], [1.2, 2.0, 2.0, 2.0]])
CORR_OLD = t(
    [[-1.0, -2.0, -0.5, -1.5], [-0.7, -1.2, -2.2, -3.0], [-0.3, -1.1, -3.0, -3.0], [-0.9, -3.0, -3.0, -3.0]]
)
CORR_ADVANTAGES = t([[1.0] * 4, [-0.5] * 4, [2.0] * 4, [-1.5] * 4]) * CORR_MASK


def corr_batch():
    """The batch above as align_lab's Rollout: pi_old's log-probs, the engine's, the reference's."""
    batch = rollout([0.0] * 4, CORR_MASK, 2, logprobs=CORR_OLD, ref_logprobs=CORR_OLD - 0.2 * CORR_MASK)
    batch.advantages = CORR_ADVANTAGES
    batch.rollout_logprobs = CORR_OLD - CORR_ROLLOUT_RATIO
    return batch


def same_loss(algo, peer):
    """algo's loss and its gradient in pi_theta's log-probs equal the peer's re-derivation `peer(logp)`."""
    batch = corr_batch()
    ours_logp = (CORR_OLD + CORR_DELTA).requires_grad_()
    peer_logp = (CORR_OLD + CORR_DELTA).requires_grad_()
    ours, _ = algo.loss(batch, ours_logp, None)
    theirs = peer(peer_logp)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours_logp.grad, peer_logp.grad, rtol=1e-6, atol=1e-6)
    return ours.item()


def verl_masked_sum(values, mask, axis=None):
    return (torch.where(mask.bool(), values, 0.0) * mask).sum(axis)  # verl_F.masked_sum


def verl_is_weights(log_ratio, mask, level, threshold):
    """verl compute_rollout_correction_weights (rollout_corr_helper.py L481-598)."""
    if level == "token":
        weights = torch.exp(log_ratio.clamp(-20.0, 20.0))
    else:
        total = verl_masked_sum(log_ratio, mask, -1).unsqueeze(-1)
        weights = torch.exp(total.clamp(-20.0, 20.0)).expand_as(log_ratio)
    return (weights * mask).clamp(max=threshold).detach()


def verl_rejection_mask(log_ratio, mask, option, lower, upper):
    """verl compute_rollout_rejection_mask for one k1 option (L156-372): k1 = -log r, kept when
    log(lower) <= k1 <= log(upper), i.e. the bounds are on pi_rollout / pi_old."""
    k1 = -log_ratio.clamp(-20.0, 20.0)
    if option == "token_k1":
        stat = k1
    elif option == "seq_sum_k1":
        stat = verl_masked_sum(k1, mask, -1).unsqueeze(-1)
    else:  # seq_mean_k1
        stat = (verl_masked_sum(k1, mask, -1) / (mask.sum(-1) + 1e-8)).unsqueeze(-1)
    keep = (stat >= math.log(lower)) & (stat <= math.log(upper))
    return mask * keep.expand_as(mask).to(mask.dtype)


def verl_agg_loss(loss, mask, mode):
    """verl agg_loss (core_algos.py L1025-1081), one process."""
    if mode == "token-mean":
        return verl_masked_sum(loss, mask) / mask.sum()
    tokens = mask.sum(-1)
    per_sequence = (loss * mask).sum(-1) / (tokens + 1e-8)
    rows = (tokens > 0).to(loss.dtype)
    return verl_masked_sum(per_sequence, rows) / rows.sum()


def verl_vanilla_loss(old, logp, advantages, mask, mode, weights=None, clip=0.2, clip_c=3.0):
    """verl compute_policy_loss_vanilla (core_algos.py L1160-1251): dual clip c = 3 by default."""
    ratio = torch.exp((logp - old).clamp(-20.0, 20.0))
    pg1 = -advantages * ratio
    pg2 = -advantages * ratio.clamp(1 - clip, 1 + clip)
    clip1 = torch.maximum(pg1, pg2)
    clip2 = torch.min(-advantages * clip_c, clip1)
    pg = torch.where(advantages < 0, clip2, clip1)
    if weights is not None:
        pg = pg * weights
    return verl_agg_loss(pg, mask, mode)


def verl_decoupled(rollout_is=None, threshold=2.0, rs=None, bounds=None, mode="token-mean"):
    """verl's decoupled mode: IS weights and rejection from log pi_old - log pi_rollout
    (compute_rollout_correction_and_rejection_mask L716-831), the rejected tokens leave response_mask
    (compute_rollout_correction_and_add_to_batch L943-997), then the PPO loss on pi_theta / pi_old."""
    log_ratio = CORR_ROLLOUT_RATIO
    weights = None if rollout_is is None else verl_is_weights(log_ratio, CORR_MASK, rollout_is, threshold)
    mask = CORR_MASK if rs is None else verl_rejection_mask(log_ratio, CORR_MASK, rs, *bounds)
    return lambda logp: verl_vanilla_loss(CORR_OLD, logp, CORR_ADVANTAGES, mask, mode, weights)


@pytest.mark.parametrize(
    "verl,keys",
    [
        # decoupled_token_is(): token TIS, threshold 2
        (verl_decoupled("token"), {"rollout_correction": "tis"}),
        # decoupled_seq_is(): the product of the token ratios, threshold 2
        (verl_decoupled("sequence"), {"rollout_correction": "tis", "correction_level": "sequence"}),
        # decoupled_seq_is_rs(): sequence IS + seq_sum_k1 "0.5_2.0" (rows 0, 1, 3 rejected)
        (
            verl_decoupled("sequence", rs="seq_sum_k1", bounds=(0.5, 2.0)),
            {"rollout_correction": "mis", "correction_level": "sequence", "correction_low": 0.5}
            | {"masked_in_denominator": False},
        ),
        # the same under seq-mean-token-mean: rejected sequences leave the sequence count too
        (
            verl_decoupled("sequence", rs="seq_sum_k1", bounds=(0.5, 2.0), mode="seq-mean-token-mean"),
            {"rollout_correction": "mis", "correction_level": "sequence", "correction_low": 0.5}
            | {"masked_in_denominator": False, "loss_aggregation": "seq_mean_token_mean"},
        ),
        # decoupled_geo_rs("0.7_1.5"): geometric mean, ratio bounds [1/1.5, 1/0.7] (rows 0, 3 rejected)
        (
            verl_decoupled(rs="seq_mean_k1", bounds=(0.7, 1.5)),
            {"rollout_correction": "seq_mask", "sequence_ratio": "geometric_mean"}
            | {"correction_low": 1 / 1.5, "correction_high": 1 / 0.7, "masked_in_denominator": False},
        ),
        # token rejection token_k1 "0.5_2.0" + token IS 2 (decoupled_geo_rs_token_tis's shape)
        (
            verl_decoupled("token", rs="token_k1", bounds=(0.5, 2.0)),
            {"rollout_correction": "mis", "correction_low": 0.5, "masked_in_denominator": False},
        ),
    ],
)
def test_verl_rollout_correction_decoupled_mode(verl, keys):
    """verl's rollout correction in decoupled mode (every preset's default): weights from pi_old /
    pi_rollout, truncated from above only (cap 2, no lower bound), and rejected tokens removed from
    response_mask, so they leave the token-mean denominator and an emptied sequence the sequence mean.

    Peer: volcengine/verl@b178a3cd56f58b2d502255daba591e92833930a7
    verl/trainer/ppo/rollout_corr_helper.py L156-372 (compute_rollout_rejection_mask: k1 = -log r),
    L481-598 (compute_rollout_correction_weights: exp(clamp(log r, +-20)) * mask, clamp(max=threshold),
    detach), L716-831, L943-997 (response_mask replaced by the rejection mask);
    verl/trainer/config/algorithm.py L182-255 (the presets);
    verl/trainer/ppo/core_algos.py L1160-1251 (compute_policy_loss_vanilla: dual clip c = 3, then
    pg_losses * rollout_is_weights), L1025-1081 (agg_loss).
    verl's k1 bounds are on pi_rollout / pi_old: "LOW_HIGH" is align_lab's [1 / HIGH, 1 / LOW].
    """
    same_loss(ReinforcePP(kl_coef=0.0, dual_clip=3.0, **{"loss_aggregation": "token_mean", **keys}), verl)


def test_verl_rollout_correction_bypass_mode():
    """verl's bypass mode: pi_old := pi_rollout. REINFORCE (bypass_pg_is): -A log pi_theta w with
    w = min(pi_theta / pi_rollout, 2) per sequence, detached; PPO-clip (bypass_ppo_clip_geo_rs): the PPO
    ratio on pi_rollout, no IS weight, geometric rejection from pi_theta / pi_rollout.

    Peer: volcengine/verl@b178a3cd56f58b2d502255daba591e92833930a7
    verl/trainer/ppo/core_algos.py L1984-2061 (compute_policy_loss_reinforce: -A * log_prob * w),
    L2064-2200 (compute_policy_loss_bypass_mode: weights and rejection from log_prob - rollout_log_prob
    under no_grad; ppo_clip passes rollout_is_weights=None); rollout_corr_helper.py L1039-1074
    (apply_bypass_mode: old_log_probs = rollout_log_probs); verl/trainer/config/algorithm.py L258-345.
    """
    behaviour = CORR_OLD - CORR_ROLLOUT_RATIO

    def reinforce(logp):
        weights = verl_is_weights((logp - behaviour).detach(), CORR_MASK, "sequence", 2.0)
        return verl_agg_loss(-CORR_ADVANTAGES * logp * weights, CORR_MASK, "token-mean")

    bypass_pg = ReMax(kl_coef=0.0, loss_aggregation="token_mean", rollout_correction="tis")
    bypass_pg = replace(bypass_pg, correction_level="sequence", correction_ratio="current")
    same_loss(bypass_pg, reinforce)

    def ppo_clip(logp):
        mask = verl_rejection_mask((logp - behaviour).detach(), CORR_MASK, "seq_mean_k1", 0.7, 1.5)
        return verl_vanilla_loss(behaviour, logp, CORR_ADVANTAGES, mask, "token-mean")

    keys = {
        "rollout_correction": "seq_mask",
        "sequence_ratio": "geometric_mean",
        "correction_ratio": "current",
    }
    keys |= {"correction_low": 1 / 1.5, "correction_high": 1 / 0.7, "masked_in_denominator": False}
    same_loss(ReinforcePP(kl_coef=0.0, dual_clip=3.0, ppo_anchor="rollout", **keys), ppo_clip)


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
    algo = ReinforcePP(kl_coef=0.0, loss_aggregation=aggregation, **OPENRLHF_BOUNDS, **keys)
    same_loss(algo, openrlhf_policy_loss(kind, token_level_loss))


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
    algo = GRPO(group_size=2, kl_coef=0.04, log_ratio_clamp=None, **keys)
    same_loss(algo, trl_grpo_loss(mode))


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
    algo = ReinforcePP(kl_coef=0.0, log_ratio_clamp=None, loss_aggregation="seq_mean_token_mean", **keys)
    same_loss(algo, slime)


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


def test_the_five_disagreements_each_move_the_loss_by_far_more_than_rounding():
    """Each key the peers disagree on, flipped alone on the batch above, changes the loss by > 1e-3."""
    masked = {"rollout_correction": "mis", "correction_level": "sequence", "correction_low": 0.5}
    truncated = {"rollout_correction": "tis", "correction_low": 0.5}

    def loss(keys):
        algo = ReinforcePP(kl_coef=0.0, **{"loss_aggregation": "token_mean", **keys})
        return algo.loss(corr_batch(), CORR_OLD + CORR_DELTA, None)[0].item()

    flips = [
        (masked, {"sequence_ratio": "geometric_mean"}),  # product (verl, TRL) | geometric mean (OpenRLHF)
        (masked, {"rollout_correction": "tis"}),  # mask | truncate
        (truncated, {"correction_low": None}),  # the lower bound: e^-10 weighs 0.5 or 4.5e-5
        (masked, {"masked_in_denominator": False}),  # the denominator (verl rejection)
        (masked, {"correction_ratio": "current"}),  # old / rollout | current / rollout (verl bypass)
        (masked, {"ppo_anchor": "rollout"}),  # the PPO ratio on pi_rollout (verl bypass)
        (masked, {"loss_aggregation": "seq_mean_token_mean"}),  # the aggregation the weight enters
    ]
    for base, keys in flips:
        assert abs(loss(base | keys) - loss(base)) > 1e-3, keys
