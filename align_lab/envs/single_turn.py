"""env=single_turn (the default): no environment. The engine samples one response per prompt exactly as
before; the online loop never wraps it in the turn engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from align_lab.envs.base import LastTurn, Step


class OneTurn(LastTurn):
    """The episode of a single turn: its response is the answer."""

    def step(self, turn: str) -> Step:
        self.turns.append(turn)
        return Step(done=True)


@dataclass
class SingleTurn:
    """One policy turn, no observation, no reward of its own (the task's reward scores the response)."""

    multi_turn: ClassVar[bool] = False
    max_turns: ClassVar[int] = 1
    step_timeout_s: ClassVar[float] = 10.0
    tasks: ClassVar[tuple[type, ...] | None] = None  # any task (run/fit.py)

    def start(self, prompt: str) -> OneTurn:
        return OneTurn()
