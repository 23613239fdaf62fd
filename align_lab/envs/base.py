"""The environment protocol (SPEC_multiturn.md, owned by mt-core): an Environment starts an Episode per
prompt; each policy turn is a step that returns the observation, a reward and done."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class Step:
    observation: str = ""  # text appended after the policy's turn ("" when done)
    reward: float = 0.0  # this turn's reward (Rollout.turn_rewards, at the turn's last token)
    done: bool = False
    tool_call: bool = False  # the turn called a tool (eval/tool_calls)


class Episode(Protocol):
    def step(self, turn: str) -> Step: ...  # the policy's turn (decoded, no EOS)

    def answer(self) -> str: ...  # what the scorer reads (default: the last policy turn)


class Environment(Protocol):
    multi_turn: bool  # False (single_turn): the engine samples one response, exactly as before
    max_turns: int  # policy turns at most
    step_timeout_s: float  # a step that takes longer is an error naming the env and the turn

    def start(self, prompt: str) -> Episode: ...  # raw task prompt (PolicyView.raw), not the rendered one
