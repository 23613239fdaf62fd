"""toy_arith: short additions whose answers are checked exactly (verifiable rewards, pass@k)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from align_lab.tasks.base import BradleyTerryAnnotator, GeneratedTask, held_out_split, noisy_demonstrations

DIGITS = [str(d) for d in range(10)]


def spell(n: int) -> str:
    """12 -> "1 2": one token per digit."""
    return " ".join(str(n))


@dataclass
class ToyArith(GeneratedTask):
    """Prompts "a + b =" with 0 <= a, b <= max_operand; the gold reward is 1 for the exact sum."""

    world_seed: int = 0
    max_operand: int = 19
    eval_fraction: float = 0.2
    n_demonstrations: int = 4096
    expert_accuracy: float = 0.6
    n_pairs: int = 2048
    annotator: BradleyTerryAnnotator = field(default_factory=BradleyTerryAnnotator)
    max_response_tokens: int = 4  # generation limit: two digits and EOS, one spare

    name = "toy_arith"
    verifiable = True
    has_gold_reward = True
    sft = True

    def __post_init__(self) -> None:
        if self.max_response_tokens < 3:
            limit = self.max_response_tokens
            raise ValueError(f"max_response_tokens={limit}: must be >= 3 (two digits and EOS)")
        if not 1 <= self.max_operand <= 49:
            raise ValueError(f"max_operand={self.max_operand}: must be in [1, 49]")
        if not 0 < self.eval_fraction < 1:
            raise ValueError(f"eval_fraction={self.eval_fraction}: must be in (0, 1)")
        if not 0 <= self.expert_accuracy <= 1:
            raise ValueError(f"expert_accuracy={self.expert_accuracy}: must be in [0, 1]")
        self._build_annotator()
        pairs = [(a, b) for a in range(self.max_operand + 1) for b in range(self.max_operand + 1)]
        self._split = held_out_split(pairs, self.eval_fraction, random.Random(self.world_seed))

    @property
    def max_prompt_tokens(self) -> int:
        return 2 * len(str(self.max_operand)) + 3  # BOS a + b =

    def corpus(self) -> list[str]:
        return [" ".join(DIGITS + ["+", "="])]

    def prompts(self, split: str) -> list[str]:
        return [f"{spell(a)} + {spell(b)} =" for a, b in self._split[split]]

    @staticmethod
    def answer(prompt: str) -> str:
        left, right = prompt.rstrip("= ").split("+")
        return spell(int(left.replace(" ", "")) + int(right.replace(" ", "")))

    def gold_reward(self, prompts: list[str], responses: list[str], finished: list[bool]) -> list[float]:
        return [
            float(f and r.split() == self.answer(p).split())
            for p, r, f in zip(prompts, responses, finished, strict=True)
        ]

    def _teacher_answer(self, prompt: str, rng: random.Random) -> str:
        """A noisy teacher: right with probability expert_accuracy, else off by a little."""
        total = int(self.answer(prompt).replace(" ", ""))
        if rng.random() >= self.expert_accuracy:
            total = max(0, total + rng.choice([-2, -1, 1, 2, 10]))
        return spell(total)

    def demonstrations(self) -> list[tuple[str, str]]:
        seed = self.world_seed + 1
        return noisy_demonstrations(self.prompts("train"), self.n_demonstrations, seed, self._teacher_answer)
