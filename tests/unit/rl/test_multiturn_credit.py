"""Multi-turn credit in rl/ (issue 35 items 2-3, docs/conventions.md#multi-turn): rewards, returns, GAE,
KL, whitening and loss aggregation on a conversation whose response holds observation tokens, each on
hand-derived numbers; and the peers' mask construction, GAE and returns re-written here (not copied)
and run on the same hand-built conversations.

Peers read at: verl b178a3cd56f58b2d502255daba591e92833930a7 (2026-01-29), OpenRLHF
3c3be6234e0cb353e76bb8019947db9dfe99fca7 (2026-08-13), TRL f2cd57710ae345ea6428ae95363267fcf38a3dc8
(2026-07-24).

The conversation used throughout, one row, T = 7:
    position  0  1    2  3  4  5    6
    token     p  EOS  o  o  p  EOS  pad      (p policy, o observation)
    mask      1  1    0  0  1  1    0        policy tokens
    attend    1  1    1  1  1  1    0        policy and observation tokens
The first turn's env reward 0.5 sits at its EOS (1), the outcome score 1.0 at the last policy token (5).
"""

import pytest
import torch

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.ppo import PPO
from align_lab.models.sequences import encode_conversations
from align_lab.rl import (
    aggregate_loss,
    discounted_returns,
    gae,
    kl_penalty,
    masked_mean,
    masked_whiten,
    observed_kl,
    shape_token_rewards,
)

F64 = torch.float64
MASK = torch.tensor([[1, 1, 0, 0, 1, 1, 0]], dtype=F64)
ATTEND = torch.tensor([[1, 1, 1, 1, 1, 1, 0]], dtype=F64)
TURN = torch.tensor([[0, 0.5, 0, 0, 0, 0, 0]], dtype=F64)  # turn 1's env reward at its EOS
GARBAGE = torch.tensor([[0, 0, 7.0, 9.0, 0, 0, 5.0]], dtype=F64)  # anything on observation / padding
REWARDS = torch.tensor([[0, 0.5, 0, 0, 0, 1.0, 0]], dtype=F64) + GARBAGE * 3  # obs/pad rewards ignored
VALUES = torch.tensor([[0.2, 0.4, 0, 0, 0.6, 0.8, 0]], dtype=F64) + GARBAGE  # obs/pad values ignored
GAMMA, LAM = 0.9, 0.8


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=F64), atol=1e-6, rtol=0)


# ---- rewards: a turn's reward at its last token, the outcome at the last policy token, KL on policy tokens
def test_turn_rewards_sit_at_their_turns_and_the_kl_only_on_policy_tokens():
    # -0.1 KL_t on policy tokens: [-0.02, -0.04, ., ., -0.06, -0.08]; +0.5 at 1 (turn 1), +1 at 5 (outcome)
    # -> [-0.02, 0.46, 0, 0, -0.06, 0.92, 0]; the KL of 50/60/70 on observation/padding never enters
    kl = torch.tensor([[0.2, 0.4, 50, 60, 0.6, 0.8, 70]], dtype=F64)
    rewards = shape_token_rewards(torch.tensor([1.0], dtype=F64), kl, MASK, 0.1, TURN)
    close(rewards, [[-0.02, 0.46, 0, 0, -0.06, 0.92, 0]])
    single = shape_token_rewards(torch.tensor([1.0], dtype=F64), kl, MASK, 0.1)  # None: nothing added
    close(single, [[-0.02, -0.04, 0, 0, -0.06, 0.92, 0]])


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_every_kl_estimator_counts_policy_tokens_only(estimator):
    # log pi - log pi_ref = 0.2 on the 4 policy tokens, 30 on the observations (an env text the policy
    # never chose). k1 = 0.2, k2 = 0.02, k3 = exp(-0.2) - 1 + 0.2 = 0.0187307531; sum over 4 tokens
    per_token = {"k1": 0.2, "k2": 0.02, "k3": 0.0187307531}[estimator]
    logprobs = torch.where(MASK.bool(), torch.tensor(0.2, dtype=F64), torch.tensor(30.0, dtype=F64))
    kl = kl_penalty(logprobs, torch.zeros_like(MASK), estimator)
    assert observed_kl(kl, MASK, "sum") == pytest.approx(4 * per_token, abs=1e-8)
    assert observed_kl(kl, MASK, "token_mean") == pytest.approx(per_token, abs=1e-8)
    close(shape_token_rewards(torch.zeros(1, dtype=F64), kl, MASK, 1.0)[MASK.bool()], [-per_token] * 4)


# ---- GAE and returns across observation tokens (gamma 0.9, lam 0.8; gamma lam = 0.72)
# skip (verl, the default): an observation neither discounts nor adds; V and A carry across it.
#   t5: delta = 1 + 0 - 0.8 = 0.2                    A5 = 0.2
#   t4: delta = 0 + 0.9*0.8 - 0.6 = 0.12             A4 = 0.12 + 0.72*0.2 = 0.264
#   t3, t2: skipped (next V = 0.6, next A = 0.264 carried)
#   t1: delta = 0.5 + 0.9*0.6 - 0.4 = 0.64           A1 = 0.64 + 0.72*0.264 = 0.83008
#   t0: delta = 0 + 0.9*0.4 - 0.2 = 0.16             A0 = 0.16 + 0.72*0.83008 = 0.7576576
#   returns = A + V on policy tokens: [0.9576576, 1.23008, ., ., 0.864, 1.0]
# step (OpenRLHF): an observation is a step of reward 0 and value 0.
#   t5, t4 as above; t3: delta = 0 + 0.9*0.6 - 0 = 0.54  A3 = 0.54 + 0.72*0.264 = 0.73008
#   t2: delta = 0 + 0.9*0 - 0 = 0                    A2 = 0.72*0.73008 = 0.5256576
#   t1: delta = 0.5 + 0.9*0 - 0.4 = 0.1              A1 = 0.1 + 0.72*0.5256576 = 0.478473472
#   t0: delta = 0.16                                 A0 = 0.16 + 0.72*0.478473472 = 0.50450089984
SKIP_A = [[0.7576576, 0.83008, 0, 0, 0.264, 0.2, 0]]
SKIP_RET = [[0.9576576, 1.23008, 0, 0, 0.864, 1.0, 0]]
STEP_A = [[0.50450089984, 0.478473472, 0, 0, 0.264, 0.2, 0]]
STEP_RET = [[0.70450089984, 0.878473472, 0, 0, 0.864, 1.0, 0]]


def test_gae_skips_observation_tokens_carrying_v_and_a():
    advantages, returns = gae(REWARDS, VALUES, MASK, GAMMA, LAM)
    close(advantages, SKIP_A)
    close(returns, SKIP_RET)


def test_gae_with_steps_makes_each_observation_a_zero_step():
    advantages, returns = gae(REWARDS, VALUES, MASK, GAMMA, LAM, steps=ATTEND)
    close(advantages, STEP_A)
    close(returns, STEP_RET)


def test_skip_and_step_agree_at_gamma_one_lam_one():
    # no discount, no bootstrap mix: both are the return-to-go minus V: A1 = 0.5 + 1 - 0.4 = 1.1, ...
    skip, _ = gae(REWARDS, VALUES, MASK, 1.0, 1.0)
    step, _ = gae(REWARDS, VALUES, MASK, 1.0, 1.0, steps=ATTEND)
    close(skip, [[1.3, 1.1, 0, 0, 0.4, 0.2, 0]])
    close(step, skip)


def test_steps_equal_to_the_mask_is_bit_identical_to_no_steps():
    # single turn: no observation tokens, so steps=mask (or None) is the recursion as it always was
    single = torch.tensor([[1, 1, 1, 1, 0]], dtype=F64)
    r, v = torch.rand(1, 5, dtype=F64), torch.rand(1, 5, dtype=F64)
    for a, b in zip(gae(r, v, single, 0.9, 0.8), gae(r, v, single, 0.9, 0.8, steps=single), strict=True):
        assert torch.equal(a, b)


def test_discounted_returns_skip_or_step_across_observations():
    # gamma 0.9, rewards 0.5 at t1 and 1.0 at t5. skip: G5 = 1, G4 = 0.9, G1 = 0.5 + 0.9*0.9 = 1.31,
    # G0 = 0.9*1.31 = 1.179. step: G3 = 0.81, G2 = 0.729, G1 = 0.5 + 0.9*0.729 = 1.1561, G0 = 1.04049
    close(discounted_returns(REWARDS, MASK, GAMMA), [[1.179, 1.31, 0, 0, 0.9, 1.0, 0]])
    close(discounted_returns(REWARDS, MASK, GAMMA, ATTEND), [[1.04049, 1.1561, 0, 0, 0.9, 1.0, 0]])


# ---- whitening and loss aggregation count policy tokens only
def test_whitening_and_every_aggregation_count_policy_tokens_only():
    # policy-token values [1, 2, 3, 4]: mean 2.5, population var 1.25 -> (x - 2.5) / 1.1180340
    x = torch.tensor([[1.0, 2.0, 100, 100, 3.0, 4.0, 100]], dtype=F64)
    close(masked_whiten(x, MASK), [[-1.3416408, -0.4472136, 0, 0, 0.4472136, 1.3416408, 0]])
    close(aggregate_loss(x, MASK, "token_mean"), 2.5)  # 10 / 4
    close(aggregate_loss(x, MASK, "seq_mean_token_mean"), 2.5)
    close(aggregate_loss(x, MASK, "seq_mean_token_sum"), 10.0)
    close(aggregate_loss(x, MASK, "constant", max_len=8), 10 / 8)  # sum / (B * L_max)
    close(masked_mean(x, MASK), 2.5)  # the entropy bonus's mean (train/online.py)


# ==== the peers, re-written (not copied) from the commits above
def verl_gae(rewards, values, response_mask, gamma, lam):
    """verl core_algos.compute_gae_advantage_return (before its whitening): the TD error and V of a
    token with response_mask 0 are skipped (`nextvalues`/`lastgaelam` keep the next token's)."""
    next_v, last = torch.zeros(rewards.shape[0], dtype=F64), torch.zeros(rewards.shape[0], dtype=F64)
    out = []
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        candidate = delta + gamma * lam * last
        m = response_mask[:, t]
        next_v = values[:, t] * m + (1 - m) * next_v
        last = candidate * m + (1 - m) * last
        out.append(last)
    advantages = torch.stack(out[::-1], 1)
    return advantages, advantages + values


def openrlhf_gae(rewards, values, action_mask, gamma, lam):
    """OpenRLHF experience_maker.get_advantages_and_returns: values and rewards times action_mask,
    then the plain recursion over every position (an observation is a step of r = 0, V = 0)."""
    values, rewards = action_mask * values, action_mask * rewards
    last, out = 0.0, []
    for t in reversed(range(rewards.shape[1])):
        next_v = values[:, t + 1] if t < rewards.shape[1] - 1 else 0.0
        last = rewards[:, t] + gamma * next_v - values[:, t] + gamma * lam * last
        out.append(last)
    advantages = torch.stack(out[::-1], 1)
    return advantages, advantages + values


def openrlhf_cumulative_returns(rewards, action_mask, gamma):
    """OpenRLHF experience_maker.get_cumulative_returns (reinforce, rloo, group_norm, ...)."""
    rewards, running, out = action_mask * rewards, 0.0, []
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        out.append(running)
    return torch.stack(out[::-1], 1)


def verl_reinforce_pp_returns(rewards, response_mask, gamma):
    """verl core_algos.compute_reinforce_plus_plus_outcome_advantage (before whitening): the running
    return is reset at every token with response_mask 0 ("Reset after EOS")."""
    running, out = 0.0, []
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        out.append(running)
        running = running * response_mask[:, t]
    return torch.stack(out[::-1], 1)


def policy(x):
    return x[MASK.bool()]


def test_verl_gae_is_align_labs_skip_and_openrlhf_gae_is_step():
    clean_r, clean_v = REWARDS * MASK, VALUES * MASK  # what each peer is handed: 0 off the policy tokens
    ours_skip, ours_skip_ret = gae(REWARDS, VALUES, MASK, GAMMA, LAM)
    verl_a, verl_ret = verl_gae(clean_r, clean_v, MASK, GAMMA, LAM)
    close(policy(ours_skip), policy(verl_a))
    close(policy(ours_skip_ret), policy(verl_ret))
    ours_step, ours_step_ret = gae(REWARDS, VALUES, MASK, GAMMA, LAM, steps=ATTEND)
    orl_a, orl_ret = openrlhf_gae(clean_r, clean_v, MASK, GAMMA, LAM)
    close(policy(ours_step), policy(orl_a))
    close(policy(ours_step_ret), policy(orl_ret))
    # they disagree even at PPO's defaults gamma 1, lam 0.95: OpenRLHF's A1 bootstraps V4 as lam V4
    # skip A1 = 0.5 + 0.6 - 0.4 + 0.95 A4; step A1 = 0.5 - 0.4 + 0.95 (0.6 + 0.95 A4)
    assert not torch.allclose(
        policy(gae(REWARDS, VALUES, MASK, 1.0, 0.95)[0]),
        policy(openrlhf_gae(clean_r, clean_v, MASK, 1.0, 0.95)[0]),
    )


def test_returns_match_openrlhf_with_step_and_verl_reinforce_pp_resets_at_an_observation():
    clean_r = REWARDS * MASK
    close(
        policy(discounted_returns(REWARDS, MASK, GAMMA, ATTEND)),
        policy(openrlhf_cumulative_returns(clean_r, MASK, GAMMA)),
    )
    # verl REINFORCE++ resets the running return at t3 (an observation): turn 1 never sees the outcome
    # G1 = 0.5, G0 = 0.9*0.5 = 0.45 (align_lab skip: 1.31, 1.179); documented, not switched
    close(policy(verl_reinforce_pp_returns(clean_r, MASK, GAMMA)), [0.45, 0.5, 0.9, 1.0])
    # verl ReMax: reversed cumsum of rewards * mask (gamma 1): 1.5 on turn 1, 1.0 on turn 2 = align_lab's
    remax = (clean_r * MASK).flip(-1).cumsum(-1).flip(-1)
    close(policy(discounted_returns(REWARDS, MASK, 1.0)), policy(remax))


# ==== masks: align_lab's encode_conversations against each peer's mask construction
class WordTokenizer:
    """One id per word (pad 0, EOS 1), enough to build conversations by hand."""

    pad_token_id, eos_token_id = 0, 1

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.vocab.setdefault(w, len(self.vocab) + 2) for w in text.split()]}


def render(observation: str) -> str:
    """A plain-text observation template (a toy model's: no chat template)."""
    return f"result {observation} answer"


PROMPT_LEN = 3  # the stand-in prompt's length (OpenRLHF counts its budget from the prompt)
# calculator: policy "<calc> 13+7 </calc>" (3 words + EOS = 4), env "20" rendered to 3 tokens, policy "20"
CALC = [("policy", "<calc> 13+7 </calc>"), ("env", "20"), ("policy", "20")]
# guess-the-number at max_turns 2: the env's third answer ("lower") comes after the limit
GAME = [("policy", "five"), ("env", "higher"), ("policy", "seven"), ("env", "lower")]


def spans(tok, turns):
    """(role, ids) per turn: a policy turn's sampled ids end in EOS, an env turn is its rendered ids."""
    return [
        (r, tok(t)["input_ids"] + [tok.eos_token_id] if r == "policy" else tok(render(t))["input_ids"])
        for r, t in turns
    ]


def verl_tool_loop(parts, response_length, max_turns):
    """verl ToolAgentLoop (tool_agent_loop.py): a generation appends its ids with response_mask 1 and
    ends the episode at response_length or max_assistant_turns; a tool response appends its ids with
    0 unless len(mask) + len(tool ids) >= response_length (then the episode ends without it); the
    output is cut to response_length. -> (ids, response_mask, attention) of the response."""
    ids, mask, turns = [], [], 0
    for role, part in parts:
        if role == "policy":
            ids, mask, turns = ids + part, mask + [1] * len(part), turns + 1
            if len(mask) >= response_length or turns >= max_turns:
                break
        elif len(mask) + len(part) >= response_length:
            break
        else:
            ids, mask = ids + part, mask + [0] * len(part)
    return ids[:response_length], mask[:response_length], [1] * len(ids[:response_length])


def openrlhf_agent(parts, max_length):
    """OpenRLHF MultiTurnAgentExecutor.execute (utils/agent.py) + _process_response_into_experience
    (samples_generator.py): each generation gets max_tokens = max_length - len(tokens so far) (none
    left: stop) and records its action range; every env step's feedback is appended, the done one
    too; sequences[:max_length], action_mask[1:max_length] aligned with sequences[1:]. No turn limit of
    its own: the env says done (here: after the game's last answer)."""
    seq, ranges = [0] * PROMPT_LEN, []
    for role, part in parts:
        if role == "policy":
            budget = max_length - len(seq)
            if budget <= 0:
                break
            ranges.append((len(seq), len(seq) + len(part[:budget])))
            seq = seq + part[:budget]
        else:
            seq = seq + part
    action = [0] * len(seq)
    for start, end in ranges:
        action[start:end] = [1] * (end - start)
    seq, action = seq[:max_length], action[1:max_length]
    # response token j is sequence index PROMPT_LEN + j, whose action_mask index is PROMPT_LEN + j - 1
    return seq[PROMPT_LEN:], action[PROMPT_LEN - 1 :], [1] * len(seq[PROMPT_LEN:])


def trl_tool_loop(parts, max_completion_length, max_turns):
    """TRL GRPOTrainer._tool_call_loop (grpo_trainer.py): tool_mask 1 on the first completion; each of
    at most max_tool_calling_iterations rounds appends the tool suffix ids (0) and the next completion
    (1), cut so the completion stays within max_completion_length; a round whose tool suffix alone
    passes it is rolled back and the loop ends. Loss mask = completion_mask * tool_mask."""
    policies = [p for r, p in parts if r == "policy"]
    tools = [p for r, p in parts if r == "env"]
    ids = policies[0][:max_completion_length]
    mask = [1] * len(ids)
    for i in range(min(max_turns - 1, len(tools), len(policies) - 1)):
        if len(ids) + len(tools[i]) > max_completion_length:
            break
        post = policies[i + 1][: max_completion_length - len(ids) - len(tools[i])]
        ids, mask = ids + tools[i] + post, mask + [0] * len(tools[i]) + [1] * len(post)
    return ids, mask, [1] * len(ids)


def padded(rows, width):
    return torch.tensor([r + [0] * (width - len(r)) for r in rows], dtype=F64)


def ours(tok, turns, limit, max_turns):
    """align_lab: the env is done at max_turns (no observation after the last turn), then
    encode_conversations cuts at `limit` tokens."""
    kept, n = [], 0
    for role, text in turns:
        n += role == "policy"
        if n > max_turns or (role == "env" and n == max_turns):
            break
        kept.append((role, text))
    return encode_conversations(tok, [kept], render, limit)


# case: (turns, token limit, max_turns, the policy mask, tokens attended by align_lab, verl, OpenRLHF, TRL)
#   calc fits: 4 policy + 3 obs + 2 policy = 9 tokens
#   calc cut at 8: the last turn keeps "20" without its EOS (every peer cuts the same)
#   calc cut at 6: the observation does not fit: verl and TRL drop it, OpenRLHF and align_lab keep its
#     first 2 tokens (attended, never trained)
#   calc cut at 7: the observation fills the limit exactly: verl drops it (len + obs >= limit), TRL
#     (len + obs > limit), OpenRLHF and align_lab keep it
#   game at max_turns 2: 2 + 3 + 2 = 7 tokens; OpenRLHF also appends the done answer (3 more attended)
CASES = {
    "calc": (CALC, 10, 3, [1, 1, 1, 1, 0, 0, 0, 1, 1], [9, 9, 9, 9]),
    "calc_cut_last_turn": (CALC, 8, 3, [1, 1, 1, 1, 0, 0, 0, 1], [8, 8, 8, 8]),
    "calc_observation_overflows": (CALC, 6, 3, [1, 1, 1, 1], [6, 4, 6, 4]),
    "calc_observation_fills_the_limit": (CALC, 7, 3, [1, 1, 1, 1], [7, 4, 7, 7]),
    "game_turn_limit": (GAME, 20, 2, [1, 1, 0, 0, 0, 1, 1], [7, 7, 10, 7]),
}


@pytest.mark.parametrize("case", CASES)
def test_policy_masks_match_verl_openrlhf_and_trl(case):
    turns, limit, max_turns, expected, attended = CASES[case]
    tok = WordTokenizer()
    parts = spans(tok, turns)
    mine_ids, mine_mask, mine_attend = ours(tok, turns, limit, max_turns)
    verl = verl_tool_loop(parts, limit, max_turns)
    orl = openrlhf_agent(parts, PROMPT_LEN + limit)
    trl = trl_tool_loop(parts, limit, max_turns)
    width = max(mine_mask.shape[1], *(len(p[0]) for p in (verl, orl, trl)))
    want = padded([expected], width)
    close(torch.nn.functional.pad(mine_mask, (0, width - mine_mask.shape[1])).to(F64), want)
    for peer in (verl, orl, trl):
        close(padded([peer[1]], width), want)  # the policy mask: equal everywhere
    # the tokens each attends: align_lab, verl, OpenRLHF, TRL
    assert [int(mine_attend.sum()), len(verl[2]), len(orl[2]), len(trl[2])] == attended
    # and the ids: every peer's response starts with align_lab's (the sampled ids, never re-tokenised)
    for peer in (verl, orl, trl):
        n = min(len(peer[0]), int(mine_attend.sum()))
        assert mine_ids[0, :n].tolist() == peer[0][:n]


# ==== end to end on the hand-built conversations: PPO's advantages and returns, GRPO's loss
def widen(rows, width):
    return padded([list(r) for r in rows], width)


def last_one(mask):
    """(B,) index of each row's last 1."""
    positions = torch.arange(mask.shape[1])
    return torch.where(mask.bool(), positions, -1).amax(-1)


def whiten(x, mask, unbiased):
    """verl masked_whiten (unbiased, rsqrt(var + 1e-8)); OpenRLHF (population, rsqrt(max(var, 1e-8)))."""
    n = mask.sum()
    mean = (x * mask).sum() / n
    var = ((x - mean) ** 2 * mask).sum() / n
    return (
        (x - mean) * (var * n / (n - 1) + 1e-8).rsqrt()
        if unbiased
        else (x - mean) * var.clamp(min=1e-8).rsqrt()
    )


@pytest.mark.parametrize("case", ["calc", "calc_cut_last_turn", "game_turn_limit"])
def test_ppo_matches_verl_skipping_and_openrlhf_stepping_on_a_conversation(case):
    # the episode's 1.5 (outcome 1.0 + turn 1's 0.5) at its last policy token, as both peers place it
    # (turn_rewards_at=last); V_t = 0.1 (t + 1) on every token; gamma 0.9, lam 0.8, no KL, no reward clip
    turns, limit, max_turns, _, _ = CASES[case]
    tok = WordTokenizer()
    parts = spans(tok, turns)
    _, mask, attend = ours(tok, turns, limit, max_turns)
    verl_mask, orl_mask = (
        verl_tool_loop(parts, limit, max_turns)[1],
        openrlhf_agent(parts, PROMPT_LEN + limit)[1],
    )
    width = max(mask.shape[1], len(verl_mask), len(orl_mask))
    mask, attend = (torch.nn.functional.pad(m, (0, width - m.shape[1])).to(F64) for m in (mask, attend))
    values = 0.1 * torch.arange(1, width + 1, dtype=F64)[None]
    first_eos = int((mask[0, 1:] < mask[0, :-1]).nonzero()[0])  # the first policy turn's last token
    turn = torch.zeros(1, width, dtype=F64)
    turn[0, first_eos] = 0.5
    batch = Rollout(
        torch.zeros(1, 2, dtype=torch.long),
        torch.ones(1, 2, dtype=torch.long),
        torch.zeros(1, width, dtype=torch.long),
        mask,
        torch.zeros(1, width, dtype=F64),
        torch.tensor([1.0], dtype=F64),
        values=values,
        attend=attend,
        turn_rewards=turn,
        signals={"reference": torch.zeros(1, width, dtype=F64)},
    )
    keys = dict(kl_coef=0.0, reward_clip=None, gamma=0.9, lam=0.8, turn_rewards_at="last")
    for across, peer_mask, peer_gae, unbiased in (
        ("skip", verl_mask, verl_gae, True),
        ("step", orl_mask, openrlhf_gae, False),
    ):
        peer_mask = widen([peer_mask], width)
        close(peer_mask, mask)  # the same policy tokens
        rewards = torch.zeros(1, width, dtype=F64)
        rewards[0, last_one(peer_mask)] = 1.5
        peer_a, peer_ret = peer_gae(rewards, values * peer_mask, peer_mask, 0.9, 0.8)
        algo = PPO(**keys, across_observations=across, whiten_unbiased=unbiased)
        advantages, returns = algo.advantages(batch)
        keep = mask.bool()
        close(advantages[keep], whiten(peer_a, peer_mask, unbiased)[keep])
        close(returns[keep], peer_ret[keep])


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo"])
def test_grpo_loss_matches_trls_tool_masked_loss(loss_type):
    # TRL loss_type="grpo": per sequence, the mean over completion_mask * tool_mask of
    # -A + beta k3, then the mean over sequences; ratio 1 (logprobs = old). Rewards [1, 0] on the calc
    # conversation and its cut version: A = +-0.5 / (sqrt(0.5) + 1e-4) = +-0.7070068; k3 of u = 0.1 on
    # policy tokens = exp(-0.1) - 1 + 0.1 = 0.0048374; u = 5 on observations (never counted).
    # loss_type="dr_grpo" (Dr. GRPO, scale_by_std false: A = +-0.5): the sum over the loss mask divided by
    # B * max_completion_length, the completion's budget, tool results included (the tool loop rolls
    # back a result past it): align_lab's algo.max_len = env.max_conversation_tokens, here 10
    tok = WordTokenizer()
    rows = [trl_tool_loop(spans(tok, CALC), limit, 3) for limit in (10, 8)]
    width = max(len(r[0]) for r in rows)
    completion = widen([r[2] for r in rows], width)
    tool = torch.tensor(
        [r[1] + [1] * (width - len(r[1])) for r in rows], dtype=F64
    )  # TRL pads tool_mask with 1
    loss_mask = completion * tool
    ref = torch.zeros(2, width, dtype=F64)
    logprobs = torch.where(loss_mask.bool(), torch.tensor(0.1, dtype=F64), torch.tensor(5.0, dtype=F64))
    a = 0.5 / (0.5**0.5 + 1e-4) if loss_type == "grpo" else 0.5
    k3 = torch.exp(-(logprobs - ref)) - 1 + (logprobs - ref)
    per_token = -torch.tensor([[a], [-a]], dtype=F64) + 0.04 * k3
    if loss_type == "grpo":
        trl = ((per_token * loss_mask).sum(-1) / loss_mask.sum(-1).clamp(min=1)).mean()
    else:
        trl = (per_token * loss_mask).sum() / (2 * 10)
    ours_rows = [ours(tok, CALC, limit, 3) for limit in (10, 8)]  # align_lab, cut at the same limits
    mask = torch.cat([torch.nn.functional.pad(r[1], (0, width - r[1].shape[1])) for r in ours_rows]).to(F64)
    attend = torch.cat([torch.nn.functional.pad(r[2], (0, width - r[2].shape[1])) for r in ours_rows])
    close(mask, loss_mask)
    batch = Rollout(
        torch.zeros(2, 2, dtype=torch.long),
        torch.ones(2, 2, dtype=torch.long),
        torch.zeros(2, width, dtype=torch.long),
        mask,
        logprobs,
        torch.tensor([1.0, 0.0], dtype=F64),
        attend=attend.to(F64),
        signals={"reference": ref},
    )
    keys = {"loss_aggregation": "seq_mean_token_mean"}
    if loss_type == "dr_grpo":
        keys = {"loss_aggregation": "constant", "max_len": 10, "scale_by_std": False}
    algo = GRPO(group_size=2, kl_coef=0.04, kl_estimator="k3", **keys)
    batch.advantages, _ = algo.advantages(batch)
    loss, _ = algo.loss(batch, logprobs.clone(), None)
    close(loss, trl)
    if loss_type == "grpo":
        close(loss, 0.5 * ((-a + 0.04 * 0.0048374) + (a + 0.04 * 0.0048374)))  # = 0.04 * 0.0048374
    else:  # the policy tokens of each row, n0 and n1: (-0.5 n0 + 0.5 n1 + 0.04 k3 (n0 + n1)) / 20
        n0, n1 = (int(m.sum()) for m in mask)
        close(loss, (-0.5 * n0 + 0.5 * n1 + 0.04 * 0.0048374 * (n0 + n1)) / 20)
