"""Multi-turn rollouts (env.multi_turn): the configured engine plays every row's episode turn by turn.

Turn 1 is the engine's `sample`; each later turn continues every still-active row from its exact token
ids (prompt ids + the ids it sampled + the observation ids) with the engine's `sample_ids`, so the policy
is trained on the very ids it sampled, never on a re-tokenisation of decoded text. A policy turn ends
at its EOS; the environment then answers (envs/base.run_step) and the episode ends when it says done,
at env.max_turns, or when a turn runs out of tokens without an EOS (unfinished). Observation ids are
`models.sequences.observation_ids` of the text the policy reads (PolicyView.render_observation).
docs/environments.md has the whole contract."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from align_lab.envs.base import REPLAYED, EnvError, close_episodes, episode_answer, run_step, start_episode
from align_lab.models.sequences import observation_ids, response_mask
from align_lab.rollout.base import Samples, sampled_dtype
from align_lab.user_probes import PROBE_ROWS, scored_row

TURN_SEED_STRIDE = 0x9E3779B97F4A7C15  # odd: turn k of row seed s draws from s + k * stride (mod 2^63)


def turn_seeds(seeds: list[int] | None, turn: int) -> list[int] | None:
    """Each row's seed for its `turn`-th policy turn (0-based): turn 0 is the row seed itself (the first
    turn draws what a single-turn rollout draws), later turns a fixed function of the row seed and the
    turn alone, so evaluation's common random numbers still pair rows turn by turn."""
    if seeds is None:
        return None
    return [s if turn == 0 else (s + turn * TURN_SEED_STRIDE) % 2**63 for s in seeds]


@dataclass
class Conversation:
    """One row's episode as it grows: every token after the prompt, which are the policy's, their
    log-probs and the env rewards placed at each answered turn's last token."""

    episode: object
    context: list[int]  # prompt ids, then every token after the prompt
    start: int  # the prompt's length in `context`
    policy: list[bool] = field(default_factory=list)  # per token after the prompt
    logprobs: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    turns: int = 0
    last: int = 0  # tokens of the last policy turn
    tool_calls: int = 0
    finished: bool = False
    active: bool = True
    # the episode as text turns, [("policy", decoded turn without EOS), ("env", observation before
    # rendering), ...]: what a preference pair stores (run/pairs.py)
    segments: list = field(default_factory=list)
    raw: str = ""  # the task's prompt the episode started from
    stepped: list = field(default_factory=list)  # the policy turns the environment answered
    answers: list = field(default_factory=list)  # its answers: observation, reward, done per turn

    def add(self, ids: list[int], logprobs: list[float] | None) -> None:
        """Tokens of a policy turn (with their log-probs) or of an observation (None)."""
        self.context += ids
        self.policy += [logprobs is not None] * len(ids)
        self.logprobs += logprobs if logprobs is not None else [0.0] * len(ids)
        self.rewards += [0.0] * len(ids)


def turn_tokens(ids: torch.Tensor, logprobs: torch.Tensor, eos_token_id: int) -> tuple[list, list]:
    """A sampled row's ids up to and including its first EOS (all of them without one), and their
    log-probs."""
    n = int(response_mask(ids[None], eos_token_id).sum())
    return ids[:n].tolist(), logprobs[:n].float().tolist()


@dataclass
class TurnEngine:
    """A RolloutEngine (rollout/base.py) wrapping the configured one (`inner`) for a multi-turn `env`."""

    inner: object
    env: object
    env_name: str
    render_observation: Callable[[str], str]  # observation text -> the text the policy reads
    raw_prompt: Callable[[str], str]  # the rendered prompt -> the task's own (what env.start gets)
    probe_key: str | None = None  # `env=<name>`: the last episodes kept, replayed on resume (user_probes)

    @property
    def temperature(self) -> float:
        return self.inner.temperature

    @property
    def samples_in_background(self) -> bool:
        return self.inner.samples_in_background

    @property
    def samples_adapters(self) -> bool:
        return self.inner.samples_adapters

    def sync(self, model) -> None:
        self.inner.sync(model)

    def close(self) -> None:
        self.inner.close()

    def weights_dtype(self, policy) -> torch.dtype:
        return sampled_dtype(self.inner, policy)

    def context_limit(self, model, max_prompt_tokens: int) -> int | None:
        """The most tokens a conversation's context may hold: max_prompt_tokens +
        env.max_conversation_tokens or the model's max_position_embeddings, whichever is smaller."""
        positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        conversation = getattr(self.env, "max_conversation_tokens", None)
        bound = None if conversation is None else max_prompt_tokens + conversation
        limits = [x for x in (positions, bound) if isinstance(x, int)]
        # what set it, named as the model's config has it: a tiny model's preset has model.max_positions
        # and no model.max_prompt_tokens (thirty-first hunt, case 66: the line named both as keys)
        self.limit_said = (
            f"model.max_prompt_tokens {max_prompt_tokens} + env.max_conversation_tokens {conversation}"
            if bound is not None and bound == min(limits)
            else "the model's positions: max_position_embeddings in its config"
        )
        return min(limits) if limits else None

    @torch.no_grad()
    def sample(
        self,
        model,
        tokenizer,
        prompts: list[str],
        n: int,
        max_new_tokens: int,
        max_prompt_tokens: int,
        greedy: bool = False,
        seeds: list[int] | None = None,
        row_seeded: bool = False,
    ) -> Samples:
        """n episodes of each prompt, the Samples of the whole conversations (rollout/base.py)."""
        limit = self.context_limit(model, max_prompt_tokens)
        reserve = getattr(self.inner, "reserve_context", None)
        if reserve is not None and limit is not None:
            reserve(limit)
        how = (greedy, turn_seeds(seeds, 0), row_seeded)
        first = self.inner.sample(model, tokenizer, prompts, n, max_new_tokens, max_prompt_tokens, *how)
        rows = self._start(first)
        try:
            for i, row in enumerate(rows):
                sampled = turn_tokens(first.response_ids[i], first.logprobs[i], tokenizer.eos_token_id)
                self._policy_turn(row, limit, *sampled)
            for turn in range(1, self.env.max_turns + 1):
                if turn > 1:
                    self._continue(
                        model, tokenizer, rows, turn, (max_new_tokens, greedy, seeds, row_seeded), limit
                    )
                for row in rows:
                    if row.active and row.turns == turn:
                        self._answer(row, tokenizer, turn, limit)
                if not any(row.active for row in rows):
                    break
        finally:  # every episode ends here, however it ended: one that holds something lets it go
            timeout = self.env.step_timeout_s
            failed = close_episodes(self.env_name, [(row.episode, row.turns) for row in rows], timeout)
        if failed is not None:
            raise failed
        samples = self._samples(first, rows, tokenizer)
        self._keep(rows, samples.responses)
        return samples

    def _keep(self, rows: list[Conversation], answers: list[str]) -> None:
        """The last PROBE_ROWS episodes as a resume replays them (envs/base.replayed): the task's prompt,
        the turns the environment answered, and whether it finished; its answers and the answer."""
        if self.probe_key is None:
            return
        for row, answer in list(zip(rows, answers, strict=True))[-PROBE_ROWS:]:
            said = row.answers + ([answer] if row.finished else [])
            scored_row(self.probe_key, (row.raw, list(row.stepped), row.finished), said, REPLAYED)

    def _start(self, first: Samples) -> list[Conversation]:
        """Every row's episode, started with its raw task prompt, its context the prompt's ids."""
        timeout = self.env.step_timeout_s
        raws = [self.raw_prompt(prompt) for prompt in first.prompts]
        return [
            Conversation(
                start_episode(self.env_name, self.env, raw, timeout),
                ids[attn.bool()].tolist(),
                int(attn.sum()),
                raw=raw,
            )
            for raw, ids, attn in zip(raws, first.prompt_ids, first.prompt_attn, strict=True)
        ]

    def _policy_turn(self, row: Conversation, limit: int | None, ids: list[int], logprobs: list[float]):
        """A policy turn's sampled ids and log-probs, cut where the context reaches `limit` (a first turn
        longer than env.max_conversation_tokens: it then has no EOS, and ends the episode)."""
        room = len(ids) if limit is None else max(0, limit - len(row.context))
        row.add(ids[:room], logprobs[:room])
        row.turns, row.last = row.turns + 1, min(room, len(ids))

    def _continue(self, model, tokenizer, rows: list[Conversation], turn: int, how: tuple, limit) -> None:
        """The policy's `turn`-th turn (1-based) for every active row, each from its exact ids; rows with
        less room left under the context limit draw in their own call (each row draws the same tokens
        whatever the other rows)."""
        max_new_tokens, greedy, seeds, row_seeded = how
        budgets: dict[int, list[int]] = {}
        for i, row in enumerate(rows):
            if row.active:
                room = max_new_tokens if limit is None else min(max_new_tokens, limit - len(row.context))
                budgets.setdefault(room, []).append(i)
        for budget, index in budgets.items():
            row_seeds = None if seeds is None else turn_seeds([seeds[i] for i in index], turn - 1)
            contexts = [rows[i].context for i in index]
            ids, logprobs = self.inner.sample_ids(
                model, tokenizer, contexts, budget, greedy, row_seeds, row_seeded
            )  # (b, T') each
            for k, i in enumerate(index):
                self._policy_turn(rows[i], limit, *turn_tokens(ids[k], logprobs[k], tokenizer.eos_token_id))

    def _answer(self, row: Conversation, tokenizer, turn: int, limit: int | None) -> None:
        """The environment's answer to the row's last policy turn: its reward at the turn's EOS, and the
        observation's ids appended unless the episode ends here. A turn without EOS ends the episode
        unfinished (no step)."""
        ids = row.context[len(row.context) - row.last :]
        if not ids or ids[-1] != tokenizer.eos_token_id:
            row.segments.append(("policy", tokenizer.decode(ids, skip_special_tokens=True)))
            row.active, row.finished = False, False
            return
        text = tokenizer.decode(ids[:-1], skip_special_tokens=True)
        row.segments.append(("policy", text))
        step = run_step(self.env_name, row.episode, text, turn, self.env.step_timeout_s)
        row.stepped.append(text)
        row.answers += [step.observation, float(step.reward), bool(step.done)]
        row.rewards[-1] += float(step.reward)
        row.tool_calls += int(bool(step.tool_call))
        if step.done or turn == self.env.max_turns:
            row.active, row.finished = False, True
            return
        row.segments.append(("env", step.observation))
        rendered = self.render_observation(step.observation)  # tasks/view.py observation_renderer
        row.add(observation_ids(tokenizer, rendered), None)
        if limit is not None and len(row.context) >= limit:  # at the limit: no room for one more token
            held = len(row.context)
            where = "at" if held == limit else f"{held - limit} over"
            raise EnvError(
                f"env={self.env_name}: turn {turn}: the context holds {held} tokens after the observation, "
                f"{where} the limit of {limit} ({self.limit_said}): no room for the next turn"
            )

    def _answer_text(self, row: Conversation) -> str:
        """What the reward reads: the episode's answer(), or for an episode cut inside a turn (no EOS,
        never stepped) that cut turn's text, finished=False, as a cut single-turn response is read."""
        if not row.finished and row.segments and row.segments[-1][0] == "policy":
            return row.segments[-1][1]
        return episode_answer(self.env_name, row.episode, row.turns, self.env.step_timeout_s)

    def _samples(self, first: Samples, rows: list[Conversation], tokenizer) -> Samples:
        """The conversations as Samples: response_ids every token after the prompt (right-padded), mask 1
        on policy tokens, attend 1 on policy and observation tokens, log-probs 0 on observations."""
        B, T = len(rows), max(1, max(len(r.policy) for r in rows))
        response_ids = torch.full((B, T), tokenizer.pad_token_id, dtype=torch.long)  # (B, T)
        mask, attend = torch.zeros(B, T), torch.zeros(B, T)  # (B, T) each
        logprobs, turn_rewards = torch.zeros(B, T), torch.zeros(B, T)  # (B, T) each
        for i, row in enumerate(rows):
            n = len(row.policy)
            response_ids[i, :n] = torch.tensor(row.context[row.start :], dtype=torch.long)
            mask[i, :n] = torch.tensor(row.policy, dtype=torch.float)
            attend[i, :n] = 1.0
            logprobs[i, :n] = torch.tensor(row.logprobs)
            turn_rewards[i, :n] = torch.tensor(row.rewards)
        return Samples(
            first.prompts,
            first.prompt_ids,
            first.prompt_attn,
            response_ids,
            mask,
            [self._answer_text(row) for row in rows],
            [row.finished for row in rows],
            logprobs,
            attend=attend,
            turn_rewards=turn_rewards,
            transcripts=[tokenizer.decode(row.context[row.start :]) for row in rows],
            conversations=[list(row.segments) for row in rows],
            turns=[row.turns for row in rows],
            tool_calls=[row.tool_calls for row in rows],
        )
