"""task=verifiable_data: your own questions with reference answers, from a local JSONL / Parquet / CSV
file or a `datasets` hub name, scored by an answer checker (tasks/verifiers.py: exact, numeric,
math_verify, or your function). The gold reward is the checker's score, so reward=verifier trains on it
and evaluation reports pass@1 and pass@k (train.eval_samples). docs/tasks.md has the worked example.

Every row is read and its answer checked by the chosen verifier when the task is built, before any
compute: a missing column, an empty prompt, an answer the verifier cannot read, or a prompt given twice
with two answers is a one-line error naming the file and row.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from align_lab.tasks import verifiers
from align_lab.tasks.answer_format import format_checker
from align_lab.tasks.base import Pair, verified_pairs
from align_lab.tasks.data_files import text
from align_lab.tasks.hf_data import Example, HFData, same_prompt
from align_lab.user_timeouts import checked_bound


def answer_text(row: dict, column: str, place: str) -> str:
    """The reference answer in `column` as text: a number in a JSON file ("answer": 42) reads as "42"."""
    value = row.get(column)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return text(row, column, place)
    if isinstance(value, float) and not math.isfinite(value):  # NaN, Infinity, 1e400 in the file
        raise ValueError(
            f"{place}: column {column!r} is {value!r} (NaN, Infinity, or a number past a float's range "
            "such as 1e400), not an answer; write it as text if it is one"
        )
    return str(int(value)) if isinstance(value, int) or value.is_integer() else repr(value)


@dataclass
class VerifiableData(HFData):
    """Prompts with reference answers; the answer checker `verifier` is the gold reward (0 or 1)."""

    answer_column: str = "answer"
    verifier: str = "auto"  # numeric where an answer is a plain number, Math-Verify elsewhere
    verifier_timeout_s: float | None = 60.0  # a call of your verifier function past it stops the run
    answer_format: str | None = (
        "marked"  # a response's answer: what it marks (boxed, last line) | last (anywhere)
    )
    response_column: str | None = None  # worked solutions for SFT (task.sft); null: the answers
    n_pairs: int = 256  # prompts sampled for the preferences stage (DPO-family algorithms)
    pair_samples: int = 4  # responses per such prompt; a right one over a wrong one makes a pair
    world_seed: int = 0  # seeds the preferences stage's draws of prompts (as a generated task's)

    verifiable = True
    has_gold_reward = True

    def __post_init__(self) -> None:
        if self.prompt_column is None:
            raise ValueError("prompt_column=None: must name the prompt column")
        if not self.answer_column:
            raise ValueError(f"answer_column={self.answer_column}: must name the reference answer column")
        for key in ("n_pairs",):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be >= 1")
        if self.pair_samples < 2:
            raise ValueError(f"pair_samples={self.pair_samples}: must be >= 2 (a pair needs two responses)")
        checked_bound("verifier_timeout_s", self.verifier_timeout_s)
        # an unknown or unimportable verifier: before the data
        self._check = format_checker(self.verifier, self.answer_format, self.verifier_timeout_s)
        self._references: dict[str, object] = {}  # a row's place -> its answer as the verifier reads it
        super().__post_init__()

    def rows_read(self) -> None:
        """Every row's gold answer, and a prompt given twice with two answers refused (held-out rows too,
        before HFData leaves out the training rows that repeat one)."""
        self._gold: dict[str, object] = {}
        first: dict[str, Example] = {}
        for e in (*self._split["train"], *self._split["eval"]):  # `What is 2+2?` is `what is 2+2 ?` (47th)
            was = first.get(same_prompt(e.prompt))
            if was is not None and not self.same_answer(was, e):
                raise ValueError(
                    f"{e.where.removeprefix('task.')}: prompt repeats {was.where} with another answer "
                    f"({e.answer!r}, was {was.answer!r})"
                )
            first.setdefault(same_prompt(e.prompt), e)
            self._gold[e.prompt] = self._references[e.where]

    def same_answer(self, a: Example, b: Example) -> bool:
        """Two rows' answers are one answer: as written, or as the verifier reads them (`2` and `2.0` under
        auto were "another answer", fifty-first hunt, case 20)."""
        if a.answer == b.answer:
            return True
        first, second = self._references[a.where], self._references[b.where]
        try:
            if type(first) is type(second) and bool(first == second):
                return True
            # read by two rules (`18` a number, `\frac{18}{1}` Math-Verify's: 52nd hunt, case 29): each right
            # against the other, as a response is scored (a built-in verifier's: yours is not called here)
            return self.verifier in verifiers.BUILT_IN and all(
                self._check(x.answer, gold, x.prompt) == 1.0 for x, gold in ((b, first), (a, second))
            )
        except Exception:  # noqa: BLE001 - readings that do not compare: two answers
            return False

    def columns(self) -> list[str | None]:
        return [self.prompt_column, self.answer_column, self.response_column]

    def example(self, row: dict, place: str) -> Example:
        prompt = text(row, self.prompt_column, place)
        answer = answer_text(row, self.answer_column, place)
        response = text(row, self.response_column, place) if self.response_column else None
        where = f"task.{place}"
        # read by the verifier here, so that skip_invalid drops a row whose answer it cannot read
        found = verifiers.reference(self.verifier, answer, place)
        if isinstance(found, float) and not math.isfinite(found):  # 1e400 read as inf (fortieth hunt, 4)
            raise ValueError(f"{place}: answer {answer!r} is {found} as a number: no response can match it")
        self._references[where] = found
        return Example(prompt, where, response=response, answer=answer)

    def fingerprint(self) -> dict:
        """The data's fingerprint, with your verifier function's source: editing it re-labels the pairs; how
        long it is waited for changes no label (the stage keys are what they were before the bound)."""
        fields = {k: v for k, v in super().fingerprint().items() if k != "verifier_timeout_s"}
        return {**fields, "verifier_code": verifiers.code_digest(self.verifier)}

    def answers(self, split: str) -> list[str]:
        """The reference answers of a split, as written in the file."""
        return [e.answer for e in self._split[split]]

    def gold_reward(self, prompts: list[str], responses: list[str], finished: list[bool]) -> list[float]:
        """The verifier's score of each response against its prompt's reference answer (a response cut
        at the token limit is scored too, as arith_word's)."""
        return [self._check(r, self._gold[p], p) for p, r in zip(prompts, responses, strict=True)]

    def preference_pairs(self) -> None:
        return None  # sampled from the policy and labelled by the verifier (label_samples)

    def label_samples(
        self, prompt: str, responses: list[str], gold: list[float], rng: random.Random
    ) -> list[Pair]:
        """A right response over a wrong one, as arith_word's (tasks/base.py verified_pairs)."""
        return verified_pairs(prompt, responses, gold, rng)

    def demonstrations(self) -> list[tuple[str, str]]:
        """SFT targets: the worked solutions (response_column), else the reference answers."""
        return [(e.prompt, e.response or e.answer) for e in self._split["train"]]

    def references(self, split: str) -> list[str] | None:
        return [e.response for e in self._split[split]] if self.response_column else None
