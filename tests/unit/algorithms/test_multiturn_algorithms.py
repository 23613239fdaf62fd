"""Every online algorithm on multi-turn rollouts (issue 35 item 3, docs/conventions.md#multi-turn): per-turn
rewards at their turn's last token for the token-level ones, the episode return for the sequence-level
ones, observation tokens out of the KL, the critic, the entropy and every token count; and single-turn
numbers bit-identical to before. Hand-derived numbers, arithmetic in the comments.

One group of two episodes (group_size 2), T = 7:
    row 0: p EOS o o p EOS pad   turn 1's env reward 0.5 at its EOS (1), outcome 0.4: return 0.9
    row 1: p EOS o p EOS pad pad no turn reward, outcome 0.5:                        return 0.5
Ranked by the outcome alone row 1 wins (0.5 > 0.4); by the episode return row 0 (0.9 > 0.5).
"""

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.ppo import PPO
from align_lab.algorithms.raft import RAFT
from align_lab.algorithms.reinforce_ma import ReinforceMA
from align_lab.algorithms.reinforce_pp import ReinforcePP
from align_lab.algorithms.remax import ReMax
from align_lab.algorithms.rloo import RLOO
from align_lab.algorithms.vanilla_pg import VanillaPG
from align_lab.rollout.base import Samples
from align_lab.train.common import Counters
from align_lab.train.distributed import Group
from align_lab.train.learner import Learner
from align_lab.train.online_steps import score as _score

F64 = torch.float64
MASK = torch.tensor([[1, 1, 0, 0, 1, 1, 0], [1, 1, 0, 1, 1, 0, 0]], dtype=F64)
ATTEND = torch.tensor([[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0, 0]], dtype=F64)
OBS = ATTEND.bool() & ~MASK.bool()
TURN = torch.zeros(2, 7, dtype=F64)
TURN[0, 1] = 0.5


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64), atol=1e-6, rtol=0)


def multi_turn(scores=(0.4, 0.5), turn=TURN) -> Rollout:
    """The two episodes; no KL on policy tokens, a large one on observation tokens (never counted)."""
    ref = torch.full((2, 7), -1.0, dtype=F64)
    logprobs = torch.where(OBS, torch.tensor(-9.0, dtype=F64), ref)  # log pi - log pi_ref = -8 on obs
    return Rollout(
        prompt_ids=torch.zeros(2, 2, dtype=torch.long),
        prompt_attn=torch.ones(2, 2, dtype=torch.long),
        response_ids=torch.zeros(2, 7, dtype=torch.long),
        mask=MASK,
        logprobs=logprobs,
        scores=torch.tensor(scores, dtype=F64),
        values=torch.where(OBS, torch.tensor(50.0, dtype=F64), torch.zeros(2, 7, dtype=F64)),
        attend=ATTEND,
        turn_rewards=turn,
        signals={"reference": ref, "greedy_baseline": torch.tensor([0.6, 0.6], dtype=F64)},
    )


PLAIN = {"kl_coef": 0.0}
NO_WHITEN = {"whiten_advantages": False, "reward_clip": None, "lam": 1.0}


# ---- token-level: a turn's reward at its turn's last token (turn_rewards_at=turn) or at the end (last)
@pytest.mark.parametrize("algo", [PPO(**PLAIN, **NO_WHITEN), VanillaPG(**PLAIN)])
def test_critic_algorithms_put_a_turns_reward_at_its_turn(algo):
    # gamma 1, lam 1, V = 0 on policy tokens: A = return-to-go. Row 0: turn 1's tokens see 0.5 + 0.4 = 0.9,
    # turn 2's only the outcome 0.4; row 1: 0.5 everywhere. Observation tokens 0 (their V = 50 ignored).
    advantages, returns = algo.advantages(multi_turn())
    close(advantages, [[0.9, 0.9, 0, 0, 0.4, 0.4, 0], [0.5, 0.5, 0, 0.5, 0.5, 0, 0]])
    close(returns, advantages)
    last = dataclasses.replace(algo, turn_rewards_at="last")  # verl, OpenRLHF: 0.9 at the episode's end
    close(last.advantages(multi_turn())[0], [[0.9, 0.9, 0, 0, 0.9, 0.9, 0], [0.5, 0.5, 0, 0.5, 0.5, 0, 0]])


def test_ppo_max_normalises_and_clips_the_episode_return_wherever_the_turns_reward_sits():
    # returns [0.9, 0.5]: fresh running moments (MOSS: 0, 1, 1e-24) become mean 0.7, var 0.04, count 2;
    # Bessel std sqrt(0.04 * 2 / 1) = 0.28284271. turn: the mean comes off the outcome once, every reward
    # is divided by the std: row 0 outcome (0.4 - 0.7) / std = -1.0606602, turn 0.5 / std = 1.7677670,
    # total (0.9 - 0.7) / std = 0.7071068 -> clip 0.5 cuts 0.2071068 off the outcome: -1.2677670; row 1
    # total -0.7071068 -> -0.5. gamma = lam = 1, V = 0, no whitening: A = return-to-go, turn 1's tokens
    # -1.2677670 + 1.7677670 = 0.5, turn 2's -1.2677670; row 1 -0.5. last: the return itself, the same
    # clipped totals 0.5 / -0.5 on every token (turn 1's tokens see the same total under both placements)
    keys = {**PLAIN, **NO_WHITEN, "reward_norm": True, "reward_scaling": True, "reward_clip": 0.5}
    algo = PPO(**keys)
    close(
        algo.advantages(multi_turn())[0],
        [[0.5, 0.5, 0, 0, -1.267767, -1.267767, 0], [-0.5] * 2 + [0] + [-0.5] * 2 + [0, 0]],
    )
    assert (algo.reward_mean, algo.reward_var) == pytest.approx((0.7, 0.04))  # the returns' moments
    last = PPO(**keys, turn_rewards_at="last")
    close(
        last.advantages(multi_turn())[0],
        [[0.5, 0.5, 0, 0, 0.5, 0.5, 0], [-0.5] * 2 + [0] + [-0.5] * 2 + [0, 0]],
    )
    # no clip binding (0.8): row 0's turn 1 sees 0.7071068, turn 2 -1.0606602; row 1 -0.7071068
    wide = PPO(**{**keys, "reward_clip": 0.8})
    close(wide.advantages(multi_turn())[0][0], [0.7071068, 0.7071068, 0, 0, -1.0606602, -1.0606602, 0])


def test_reinforce_pp_clips_the_episode_total():
    # reward_clip 0.6: row 0's total 0.9 -> 0.6, the outcome 0.4 - 0.3 = 0.1, turn 1's 0.5 kept: returns
    # [0.6, 0.6, ., ., 0.1, 0.1]; row 1's 0.5 unclipped. Whitened over [0.6, 0.6, 0.1, 0.1 | 0.5 x 4]:
    # mean 3.4 / 8 = 0.425, var (2 * 0.175^2 + 2 * 0.325^2 + 4 * 0.075^2) / 8 = 0.036875, std 0.19202864:
    # [0.9113223, -1.6924556 | 0.3905667] (outcome-only clipping would leave 0.9 / 0.4 / 0.5 unclipped)
    advantages, _ = ReinforcePP(**PLAIN, reward_clip=0.6).advantages(multi_turn())
    a, b, c = 0.9113223, -1.6924556, 0.3905667
    close(advantages, [[a, a, 0, 0, b, b, 0], [c, c, 0, c, c, 0, 0]])


def test_reinforce_pp_whitens_returns_over_policy_tokens_only():
    # returns on the 8 policy tokens [0.9, 0.9, 0.4, 0.4 | 0.5 x 4]: mean 4.6 / 8 = 0.575, population var
    # (2 * 0.325^2 + 2 * 0.175^2 + 4 * 0.075^2) / 8 = 0.295 / 8 = 0.036875, std 0.19202864:
    # 0.325 / std = 1.6924556, -0.175 / std = -0.9113223, -0.075 / std = -0.3905667
    advantages, _ = ReinforcePP(**PLAIN).advantages(multi_turn())
    close(
        advantages,
        [
            [1.6924556, 1.6924556, 0, 0, -0.9113223, -0.9113223, 0],
            [-0.3905667] * 2 + [0] + [-0.3905667] * 2 + [0, 0],
        ],
    )
    # last: [0.9 x 4 | 0.5 x 4], mean 0.7, var 0.04, std 0.2: +-1
    last, _ = ReinforcePP(**PLAIN, turn_rewards_at="last").advantages(multi_turn())
    close(last, [[1, 1, 0, 0, 1, 1, 0], [-1, -1, 0, -1, -1, 0, 0]])


def test_reinforce_pp_baseline_subtracts_the_groups_mean_episode_return():
    # baseline = mean return (0.9 + 0.5) / 2 = 0.7. Row 0's last token: 0.9 - 0.7 - 0.5 (its turn reward,
    # which stays at t1) = -0.3; turn 1 sees -0.3 + 0.5 = 0.2. Row 1: 0.5 - 0.7 = -0.2 everywhere.
    # Returns [0.2, 0.2, -0.3, -0.3 | -0.2 x 4] are the plain ones shifted by -0.7: same whitening as above.
    algo = ReinforcePP(**PLAIN, group_size=2, group_baseline=True, use_kl_loss=True)
    advantages, _ = algo.advantages(multi_turn())
    close(
        advantages,
        [
            [1.6924556, 1.6924556, 0, 0, -0.9113223, -0.9113223, 0],
            [-0.3905667] * 2 + [0] + [-0.3905667] * 2 + [0, 0],
        ],
    )


def test_ppo_gae_skips_observations_by_default_and_steps_them_like_openrlhf():
    # row 0 alone with V = [0.2, 0.4, ., ., 0.6, 0.8], gamma 0.9, lam 0.8, outcome 1.0, turn reward 0.5:
    # tests/unit/rl/test_multiturn_credit.py derives skip A = [0.7576576, 0.83008, ., ., 0.264, 0.2] and
    # step A = [0.5045009, 0.4784735, ., ., 0.264, 0.2]
    batch = multi_turn(scores=(1.0, 0.5))
    batch.values = torch.tensor([[0.2, 0.4, 7, 9, 0.6, 0.8, 5], [0] * 7], dtype=F64)
    skip = PPO(**PLAIN, whiten_advantages=False, reward_clip=None, gamma=0.9, lam=0.8)
    close(skip.advantages(batch)[0][0], [0.7576576, 0.83008, 0, 0, 0.264, 0.2, 0])
    step = dataclasses.replace(skip, across_observations="step")
    close(step.advantages(batch)[0][0], [0.50450089984, 0.478473472, 0, 0, 0.264, 0.2, 0])


# ---- sequence-level: the episode return (outcome + the turns' rewards) wherever the score went
def test_grpo_normalises_the_episode_return():
    # returns [0.9, 0.5]: centred +-0.2, unbiased std sqrt(0.08) = 0.28284271; 0.2 / (0.28284271 + 1e-4)
    # = 0.7068569 on every policy token (the outcome alone, [0.4, 0.5], would flip the signs)
    advantages, _ = GRPO(group_size=2).advantages(multi_turn())
    a = 0.7068569
    close(advantages, [[a, a, 0, 0, a, a, 0], [-a, -a, 0, -a, -a, 0, 0]])


@pytest.mark.parametrize("token_level_kl", [False, True])
def test_rloo_leaves_one_episode_return_out(token_level_kl):
    # [0.9 - 0.5, 0.5 - 0.9] = [0.4, -0.4]; token_level_kl: at the last token, return-to-go (gamma 1)
    advantages, _ = RLOO(**PLAIN, group_size=2, token_level_kl=token_level_kl).advantages(multi_turn())
    close(advantages, [[0.4, 0.4, 0, 0, 0.4, 0.4, 0], [-0.4, -0.4, 0, -0.4, -0.4, 0, 0]])


def test_remax_subtracts_the_greedy_episode_return():
    # 0.9 - 0.6 = 0.3, 0.5 - 0.6 = -0.1 on every policy token (baseline_scores: the greedy episode's return)
    advantages, _ = ReMax(**PLAIN).advantages(multi_turn())
    close(advantages, [[0.3, 0.3, 0, 0, 0.3, 0.3, 0], [-0.1, -0.1, 0, -0.1, -0.1, 0, 0]])


def test_remax_baseline_is_the_greedy_episodes_total_return():
    # the loop's step 2 (train/online_steps.py score) on one prompt, group_size 2. The greedy
    # episode's outcome 0.4 and turn rewards 0.5 (turn 1) + 0.25 (turn 2): baseline 0.4 + 0.75 = 1.15,
    # not its score 0.4.
    # The sampled episodes' returns 0.9 and 0.5 (multi_turn()): A = 0.9 - 1.15 = -0.25, 0.5 - 1.15 = -0.65
    greedy_turns = torch.zeros(1, 7, dtype=F64)
    greedy_turns[0, 1], greedy_turns[0, 4] = 0.5, 0.25
    greedy = Samples(["q"], None, None, None, MASK[:1], ["7"], [True], None, turn_rewards=greedy_turns)
    sampled = Samples(["q", "q"], *[None] * 4, ["3", "5"], [True, True], None)
    outcome = {"7": 0.4, "3": 0.4, "5": 0.5}
    ctx = SimpleNamespace(
        scorer=lambda prompts, responses, finished: torch.tensor([outcome[r] for r in responses], dtype=F64),
        group=Group(),
    )
    algo = ReMax(**PLAIN, group_size=2)
    scores, baseline, _ = _score(ctx, algo, sampled, greedy, Counters())  # no reward sources: None
    close(baseline, [1.15, 1.15])
    batch = multi_turn(scores=scores.tolist())
    batch.signals["greedy_baseline"] = baseline
    advantages, _ = algo.advantages(batch)
    close(advantages, [[-0.25, -0.25, 0, 0, -0.25, -0.25, 0], [-0.65, -0.65, 0, -0.65, -0.65, 0, 0]])
    # single turn (no turn rewards): the greedy score itself, bit for bit
    greedy.turn_rewards = None
    assert torch.equal(_score(ctx, algo, sampled, greedy, Counters())[1], torch.tensor([0.4, 0.4], dtype=F64))


def test_reinforce_ma_baselines_and_remembers_episode_returns():
    # first step: b = 0, A = [0.9, 0.5]; b becomes (0.9 + 0.5) / 2 = 0.7
    algo = ReinforceMA(**PLAIN)
    close(algo.advantages(multi_turn())[0], [[0.9, 0.9, 0, 0, 0.9, 0.9, 0], [0.5, 0.5, 0, 0.5, 0.5, 0, 0]])
    assert algo.baseline == pytest.approx(0.7)


def test_raft_keeps_the_best_episode_return():
    # 0.9 > 0.5: row 0 kept (by the outcome alone it would be row 1)
    advantages, _ = RAFT(**PLAIN, group_size=2).advantages(multi_turn())
    close(advantages, [[1, 1, 0, 0, 1, 1, 0], [0] * 7])


# ---- observation tokens out of the KL, the critic, the entropy and the token counts
def test_kl_in_the_loss_never_counts_observation_tokens():
    # A = 0 and pi = pi_old = pi_ref on policy tokens: every policy term is 0; obs log-ratio -8 would
    # give k3 = e^8 - 9 = 2971.96 if counted. GRPO (k3) and REINFORCE++-baseline (k2 = 32) losses are 0.
    batch = multi_turn()
    batch.advantages = torch.zeros(2, 7, dtype=F64)
    for algo in (
        GRPO(group_size=2),
        ReinforcePP(group_size=2, group_baseline=True, use_kl_loss=True, kl_estimator="k2"),
    ):
        loss, stats = algo.loss(batch, batch.logprobs.clone(), None)
        close(loss, 0.0)
        assert stats["train/kl_loss"] == 0.0


def test_the_critic_is_valued_and_trained_on_policy_tokens_only():
    # V_old = 0, R = 1, V = 0.5 on the 8 policy tokens, 100 on observations. Clip 0.2: V_clip = 0.2;
    # 1/2 max((0.5 - 1)^2, (0.2 - 1)^2) = 1/2 max(0.25, 0.64) = 0.32 per token, token mean 0.32.
    batch = multi_turn()
    batch.advantages = torch.zeros(2, 7, dtype=F64)
    batch.values = torch.zeros(2, 7, dtype=F64)
    batch.returns = torch.where(OBS, torch.tensor(-100.0, dtype=F64), torch.tensor(1.0, dtype=F64))
    values = torch.where(OBS, torch.tensor(100.0, dtype=F64), torch.tensor(0.5, dtype=F64))
    _, stats = PPO().loss(batch, batch.logprobs.clone(), values)
    assert stats["train/value_loss"] == pytest.approx(0.32)


def test_the_entropy_bonus_averages_policy_tokens_only():
    # the update's loss (train/learner.py Learner.loss). PPO with A = 0 and V = V_old = R = 0: its loss
    # is 0. Entropy 2.0 on the 8 policy tokens, 50 on observations: mean 2.0; loss = 0 - 0.1 * 2.0 = -0.2
    batch = multi_turn()
    batch.advantages, batch.values, batch.returns = (torch.zeros(2, 7, dtype=F64) for _ in range(3))
    entropy = torch.where(OBS, torch.tensor(50.0, dtype=F64), torch.tensor(2.0, dtype=F64))
    learner = Learner(PPO(entropy_coef=0.1), None, None, None, Group(), None, None, None, None)
    loss, stats = learner.loss(batch, (batch.logprobs.clone(), entropy, batch.values, None))
    assert stats["train/entropy"] == pytest.approx(2.0)
    close(loss, -0.2)


# ---- single turn: bit-identical; empty multi-turn fields change nothing
def single_turn() -> Rollout:
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=F64)
    g = torch.Generator().manual_seed(0)
    ref = -torch.rand(4, 4, generator=g, dtype=F64)
    return Rollout(
        prompt_ids=torch.zeros(4, 2, dtype=torch.long),
        prompt_attn=torch.ones(4, 2, dtype=torch.long),
        response_ids=torch.zeros(4, 4, dtype=torch.long),
        mask=mask,
        logprobs=ref - 0.1 * torch.rand(4, 4, generator=g, dtype=F64),
        scores=torch.tensor([0.3, 0.9, -0.2, 0.5], dtype=F64),
        values=torch.rand(4, 4, generator=g, dtype=F64),
        signals={"reference": ref, "greedy_baseline": torch.tensor([0.1, 0.1, 0.4, 0.4], dtype=F64)},
    )


ALGOS = {
    "ppo": lambda **k: PPO(gamma=0.9, **k),
    "vanilla_pg": lambda **k: VanillaPG(gamma=0.9, **k),
    "reinforce_pp": lambda **k: ReinforcePP(gamma=0.9, **k),
    "reinforce_pp_baseline": lambda **k: ReinforcePP(group_size=2, group_baseline=True, **k),
    "remax": lambda **k: ReMax(gamma=0.9, **{n: v for n, v in k.items() if n != "turn_rewards_at"}),
    "grpo": lambda **k: GRPO(group_size=2, use_kl_loss=False),
    "rloo": lambda **k: RLOO(group_size=2),
    "rloo_token": lambda **k: RLOO(group_size=2, token_level_kl=True),
    "reinforce_ma": lambda **k: ReinforceMA(),
    "raft": lambda **k: RAFT(group_size=2),
}
KEYS = [{}, {"across_observations": "step"}, {"turn_rewards_at": "last"}]


@pytest.mark.parametrize("name", ALGOS)
@pytest.mark.parametrize("keys", KEYS, ids=["defaults", "step", "last"])
def test_single_turn_is_bit_identical_with_or_without_the_multi_turn_fields(name, keys):
    # attend = mask and zero turn rewards are a single-turn rollout written as a multi-turn one
    plain, _ = ALGOS[name]().advantages(single_turn())
    empty = single_turn()
    empty.attend, empty.turn_rewards = empty.mask.clone(), torch.zeros_like(empty.mask)
    multi, _ = ALGOS[name](**keys).advantages(empty)
    assert torch.equal(plain, multi)


def test_rows_keep_the_multi_turn_fields():
    picked = multi_turn().rows(torch.tensor([1]))
    assert torch.equal(picked.attend, ATTEND[1:]) and torch.equal(picked.turn_rewards, TURN[1:])


@pytest.mark.parametrize(
    "make,message",
    [
        (
            lambda: PPO(across_observations="jump"),
            "across_observations=jump: must be one of ('skip', 'step')",
        ),
        (
            lambda: ReinforcePP(turn_rewards_at="first"),
            "turn_rewards_at=first: must be one of ('turn', 'last')",
        ),
        (lambda: ReMax(across_observations="x"), "across_observations=x: must be one of ('skip', 'step')"),
    ],
)
def test_a_bad_credit_key_is_one_line(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()
