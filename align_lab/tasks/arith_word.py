"""arith_word: arithmetic questions in plain English with exact answers, for pretrained instruct models.

A verifiable task a small real model can partly solve: SmolLM2-135M-Instruct answers about a third of
them at temperature 0.7, so reinforcement learning from the verifier has room to improve it. The
questions are generated from a seed (no download); the verifier reads the last number of a response.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from align_lab.tasks.base import BradleyTerryAnnotator, GeneratedTask, Pair, verified_pairs
from align_lab.tasks.response_reading import response_number

# (operation, question template): {a} and {b} are the operands, b <= a for subtraction
TEMPLATES = {
    "add": [
        "What is {a} plus {b}?",
        "What is {a} + {b}?",
        "Tom has {a} apples and buys {b} more. How many apples does he have now?",
        "A class has {a} girls and {b} boys. How many children are in the class?",
    ],
    "sub": [
        "What is {a} minus {b}?",
        "What is {a} - {b}?",
        "A box holds {a} pens. {b} pens are taken out. How many pens are left?",
        "Sara had {a} stickers and gave {b} away. How many stickers does she have left?",
    ],
}
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def final_number(response: str) -> float | None:
    """The last number written in a response ("12", "-3", "1,024", "2.5"), or None if there is none."""
    found = NUMBER.findall(response)
    if not found:
        return None
    text = found[-1].replace(",", "")
    return float(text) if text not in ("-", "") else None


def answer(a: int, b: int, operation: str) -> int:
    return a + b if operation == "add" else a - b


DEMONSTRATIONS_ENVS = (None, "calculator")


def calculator_conversation(expression: str, result: int) -> list[tuple[str, str]]:
    """The calculator protocol (env=calculator): the policy writes a call <calc>EXPR</calc>, the env
    answers the result's text, the policy answers with it: [("policy", "<calc>13+7</calc>"),
    ("env", "20"), ("policy", "20")]."""
    return [("policy", f"<calc>{expression}</calc>"), ("env", str(result)), ("policy", str(result))]


@dataclass
class ArithWord(GeneratedTask):
    """Questions "What is 13 plus 7? Answer with just the number." with operands in [1, max_operand];
    the gold reward is 1 when the response's last number is the exact answer, else 0."""

    world_seed: int = 0
    max_operand: int = 20
    operations: list[str] = field(default_factory=lambda: ["add", "sub"])
    n_train: int = 1024
    n_eval: int = 64
    instruction: str = "Answer with just the number."
    n_pairs: int = 256  # prompts sampled for the preferences stage (DPO-family algorithms)
    pair_samples: int = 4  # responses per such prompt; a right one over a wrong one makes a pair
    annotator: BradleyTerryAnnotator = field(default_factory=BradleyTerryAnnotator)
    sft: bool = False  # the pretrained instruct model is the starting policy; true: an SFT stage first
    demonstrations_env: str | None = None  # None: answers; "calculator": the calculator's protocol

    name = "arith_word"
    verifiable = True
    has_gold_reward = True
    quiet_defaults = {"sft": False, "demonstrations_env": None}  # keys of before stay as they were

    @property
    def conversations(self) -> bool:
        """Calculator demonstrations are conversations: they need env=calculator (run/fit.py)."""
        return self.demonstrations_env is not None

    def __post_init__(self) -> None:
        if not 1 <= self.max_operand <= 10**6:
            raise ValueError(f"max_operand={self.max_operand}: must be in [1, 1000000]")
        self.operations = list(self.operations)
        unknown = [op for op in self.operations if op not in TEMPLATES]
        if not self.operations or unknown:
            raise ValueError(f"operations={self.operations}: must be a non-empty list of {sorted(TEMPLATES)}")
        for key in ("n_train", "n_eval", "n_pairs"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be >= 1")
        if self.pair_samples < 2:
            raise ValueError(f"pair_samples={self.pair_samples}: must be >= 2 (a pair needs two responses)")
        if self.demonstrations_env not in DEMONSTRATIONS_ENVS:
            raise ValueError(f"demonstrations_env={self.demonstrations_env}: must be null or calculator")
        if self.demonstrations_env and not self.sft:
            raise ValueError(
                f"demonstrations_env={self.demonstrations_env}: trains in the SFT stage; set task.sft=true"
            )
        self._build_annotator()
        rng = random.Random(self.world_seed)
        questions: dict[str, int] = {}  # prompt -> answer; distinct prompts, train and eval disjoint
        self._expressions: dict[str, str] = {}  # prompt -> "a+b" or "a-b": what the calculator is asked
        budget = self.n_train + self.n_eval
        for _ in range(50 * budget):
            if len(questions) == budget:
                break
            operation = rng.choice(self.operations)
            a, b = rng.randint(1, self.max_operand), rng.randint(1, self.max_operand)
            a, b = (max(a, b), min(a, b)) if operation == "sub" else (a, b)
            text = rng.choice(TEMPLATES[operation]).format(a=a, b=b)
            prompt = f"{text} {self.instruction}".strip()
            questions.setdefault(prompt, answer(a, b, operation))
            self._expressions.setdefault(prompt, f"{a}{'+' if operation == 'add' else '-'}{b}")
        if len(questions) < budget:
            raise ValueError(
                f"n_train + n_eval={budget}: more than the {len(questions)} distinct questions "
                f"max_operand={self.max_operand} allows"
            )
        self._answers = questions
        prompts = list(questions)
        self._split = {"eval": prompts[: self.n_eval], "train": prompts[self.n_eval :]}

    def corpus(self) -> list[str]:
        return list(self._answers)

    def prompts(self, split: str) -> list[str]:
        return list(self._split[split])

    def answer(self, prompt: str) -> int:
        return self._answers[prompt]

    def gold_reward(self, prompts: list[str], responses: list[str], finished: list[bool]) -> list[float]:
        """1 if the last number of the response is the answer (a response cut at the token limit
        counts too: its last number is usually an intermediate one), else 0; read as task=verifiable_data's
        numeric reads it (math_reading.response_number: `not 19`, `about 19`, `19k` are no answer of 19)."""
        read = [response_number(r) for r in responses]
        return [float(n == self.answer(p)) for p, n in zip(prompts, read, strict=True)]

    def label_samples(self, prompt: str, responses: list[str], gold: list[float], rng) -> list[Pair]:
        """Preference pairs labelled by the verifier (exact, no noise): a right answer over a wrong one."""
        return verified_pairs(prompt, responses, gold, rng)

    def demonstrations(self) -> list[tuple[str, str | list[tuple[str, str]]]]:
        """Exact answers, for SFT (task.sft is false by default: the instruct model needs none); with
        demonstrations_env=calculator, the solver's use of the calculator (env=calculator's protocol):
        a call with the question's expression, the result, the answer."""
        if self.demonstrations_env == "calculator":
            return [
                (p, calculator_conversation(self._expressions[p], self._answers[p]))
                for p in self._split["train"]
            ]
        return [(p, str(self._answers[p])) for p in self._split["train"]]
