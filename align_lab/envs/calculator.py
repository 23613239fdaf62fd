"""env=calculator (for task=arith_word): the policy may call a calculator by writing
`<calc>EXPR</calc>` in its turn; the environment answers with the result, and the policy goes on. A
turn without a call is the answer and ends the episode. EXPR: integers, + - * / and parentheses,
evaluated with `ast` (never eval). The reward is the task's verifier on the final answer."""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from align_lab.envs.base import LastTurn, Step
from align_lab.tasks.arith_word import ArithWord

CALL = re.compile(r"<calc>(.*?)</calc>", re.DOTALL)
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
SIGNS = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_CHARS = 200  # an expression longer than this is refused (the policy's error, not the run's)
MAX_DIGITS = 30  # a result with more digits is refused (products of products grow fast)


class CalcError(ValueError):
    """An expression the calculator refuses: its text is the observation ("error: ...")."""


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _value(node.body)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise CalcError("division by zero")
        result = OPERATORS[type(node.op)](left, right)
        if len(str(abs(result.numerator))) > MAX_DIGITS:
            raise CalcError("result too large")
        return result
    if isinstance(node, ast.UnaryOp) and type(node.op) in SIGNS:
        return SIGNS[type(node.op)](_value(node.operand))
    raise CalcError("only integers, + - * / and parentheses")


def number_text(value: Fraction) -> str:
    """An integer as itself ("20"), anything else as a decimal of at most 6 places ("3.5", "0.333333")."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6f}".rstrip("0").rstrip(".")


def calculate(expression: str) -> str:
    """The result of an arithmetic expression as text, or "error: <why>" (a bad call is the policy's
    mistake, which it reads as the observation)."""
    if len(expression) > MAX_CHARS:
        return f"error: longer than {MAX_CHARS} characters"
    try:
        return number_text(_value(ast.parse(expression.strip(), mode="eval")))
    except CalcError as e:
        return f"error: {e}"
    except (SyntaxError, ValueError, RecursionError):
        return "error: not an arithmetic expression"


class CalculatorEpisode(LastTurn):
    """One question: calls are answered, the first turn without one is the answer."""

    def step(self, turn: str) -> Step:
        self.turns.append(turn)
        call = CALL.search(turn)
        if call is None:
            return Step(done=True)
        return Step(observation=calculate(call.group(1)), tool_call=True)


@dataclass
class Calculator:
    """The calculator tool; every field is a key of conf/env/calculator.yaml."""

    multi_turn: ClassVar[bool] = True
    tasks: ClassVar[tuple[type, ...]] = (ArithWord,)  # questions a call can compute (run/fit.py)
    max_turns: int = 3
    step_timeout_s: float = 10.0
    observation_template: str = "{observation}"
    max_conversation_tokens: int | None = 256

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ValueError(f"max_turns={self.max_turns}: must be >= 1")
        if not self.step_timeout_s > 0:
            raise ValueError(f"step_timeout_s={self.step_timeout_s}: must be > 0")
        if self.max_conversation_tokens is not None and self.max_conversation_tokens < 1:
            raise ValueError(f"max_conversation_tokens={self.max_conversation_tokens}: must be >= 1 or null")
        if "{observation}" not in self.observation_template:
            raise ValueError(f"observation_template={self.observation_template!r}: must hold {{observation}}")

    def start(self, prompt: str) -> CalculatorEpisode:
        return CalculatorEpisode()
