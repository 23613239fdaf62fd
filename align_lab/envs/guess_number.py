"""env=guess_number: the environment of the toy game (tasks/guess_number.py). Each policy turn is a
guess; the environment answers "higher", "lower" (or "invalid" for a turn that is not a number word);
the episode ends on the right guess or after max_turns guesses. Binary search wins in 4 turns over 8."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from align_lab.envs.base import Step
from align_lab.tasks.guess_number import GuessNumber, feedback, secret


@dataclass
class GuessEpisode:
    """One game: the secret, the guesses so far."""

    secret: int
    max_turns: int
    right_reward: float
    turns: int = 0
    last: str = ""

    def step(self, turn: str) -> Step:
        self.turns, self.last = self.turns + 1, turn
        word = feedback(self.secret, turn)
        done = word == "right" or self.turns >= self.max_turns
        return Step(
            observation="" if done else word,
            reward=self.right_reward if word == "right" else 0.0,
            done=done,
        )

    def answer(self) -> str:
        return self.last  # the last guess: what the task's gold reward reads


@dataclass
class GuessNumberEnv:
    """Answers guesses of task=guess_number's games (the secret is the task's `secret(prompt)`)."""

    max_turns: int = 4
    step_timeout_s: float = 5.0
    right_reward: float = 0.0
    observation_template: str = "{observation}"
    max_conversation_tokens: int | None = None  # tokens after the prompt at most; None: the model's limit

    multi_turn = True
    tasks: ClassVar[tuple[type, ...]] = (GuessNumber,)  # reads the secret from a game's prompt (run/fit.py)

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ValueError(f"max_turns={self.max_turns}: must be >= 1")
        if not self.step_timeout_s > 0:
            raise ValueError(f"step_timeout_s={self.step_timeout_s}: must be > 0")
        if self.max_conversation_tokens is not None and self.max_conversation_tokens < 1:
            raise ValueError(f"max_conversation_tokens={self.max_conversation_tokens}: must be >= 1 or null")
        if "{observation}" not in self.observation_template:
            raise ValueError(f"observation_template={self.observation_template!r}: must hold {{observation}}")

    def start(self, prompt: str) -> GuessEpisode:
        return GuessEpisode(secret(prompt), self.max_turns, self.right_reward)
