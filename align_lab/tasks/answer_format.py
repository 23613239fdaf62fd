"""task.answer_format: which part of a response is its answer, for the built-in verifiers (verifiers.py).

- `marked` (the default): the answer the response marks as its final one (its last `\\boxed{...}`, its
  last `<answer>...</answer>`, the line after GSM8K's last `####`, else its last line that is not empty,
  less a label such as `Answer:` or `The final answer is`), read as your file's answers are read
  (`verifiers.reference`): a number or math alone, or wrong. What admission refuses in your file (a word
  beside the number, a bound, a unit, a scale, several numbers) scores 0 in a response, so a response is
  never read as a number it does not state: `about 5`, `5 or more` and `not 5` are no answer of 5. This is
  the field's format-strict reading (veRL's GSM8K `strict`, its MATH reward's last boxed answer), with a
  plain last line accepted for prompts that ask for "just the number".
- `last`: the last number or math the response writes anywhere in its text, read with what stands beside
  it (`response_reading.py`): prose answers score, at the price of reading free text (the readers before
  2026-12-03, whose forty-seventh hunt still found spellings read the other way).

A verifier of yours (`module:function`) is given the whole response under either.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from align_lab.tasks.answer_checks import WORD, unbounded_power
from align_lab.tasks.math_reading import math_reference, timeout, typeset, ungrouped, value_of
from align_lab.tasks.verifiers import BUILT_IN, checker, normalised, reference, same_number
from align_lab.value_checks import written

FORMATS = ("marked", "last")

# a label before the answer on its line: `Answer: 5`, `**Final answer:** 5`, `The answer is 5.`,
# `So the final answer is: 5`, `Therefore, the answer is 5`
LABEL = re.compile(
    r"^[\s*_#>]*(?:[-+\u2022]\s+|\d+[.)]\s+)?[\s*_]*(?:(?:so|thus|hence|therefore)\b[\s,]*)?(?:(?:the|my|our)\s+)?(?:final\s+|correct\s+)?answer\b(?:\s*\([^()]*\))?"
    r"(?:\s+is\b[\s*_]*[:=\uff1a]?|[\s*_]*(?:[-=]>|[:;=\uff1a|~\u2192>]|-(?=\s)))?[\s*_]*",  # Answer -> 5
    re.IGNORECASE,
)
THINKING = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)
MARK = "\x00####"  # GSM8K's mark, kept on its line (a Markdown heading `#### Step 1` is no mark)
# GSM8K's `#### 72` (a mark), not a Markdown heading `#### Step 2: Double` (49th hunt, case 1): the mark
# where what follows it on its line is an answer's text or a label, or nothing (the answer on the next line)
GSM8K = re.compile(r"^####(?=\s*(?:$|[-+$\\(\[{.\d]|(?:final\s+)?answer\b))", re.IGNORECASE)
MINERVA_END = re.compile(r"\.?\s*I hope it is correct\.?\s*$", re.IGNORECASE)
TEXT = re.compile(r"^\s*\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}\s*$")  # \text{Paris}
SPACING = re.compile(r"^(?:\\[,;:! ]|\\q?quad\b|\s)+|(?:\\[,;:! ]|\\q?quad\b|\s)+$")  # LaTeX's spaces
SIGNS_AFTER = re.compile(r"[\s\u2600-\u27bf\U0001f300-\U0001faff\ufe0f]+$")  # a check mark, an emoji
DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**"), ("`", "`"), ("{", "}"))


def check_format(answer_format: str) -> None:
    """A one-line error for an answer format that is neither."""
    if answer_format not in FORMATS:
        raise ValueError(f"answer_format={written(answer_format)}: must be marked or last")  # task. before it


def final_answer(response: str) -> str:
    """The text a response marks as its answer (module docstring), "" where it marks none."""
    response = THINKING.sub("", response)  # a draft `\\boxed{4}` in R1's <think> (49th hunt, case 4)
    tags = re.findall(r"<answer>(.*?)</answer>", response, re.DOTALL)
    if tags:  # R1's answer; a box inside it its answer
        boxed = _last_boxed(tags[-1])
        return _bare(tags[-1] if boxed is None else boxed)
    boxed = _last_boxed(response)
    if boxed is not None:
        return _bare(boxed)
    lines = [line.strip().strip("*_").strip() for line in response.splitlines() if line.strip()]
    lines = [GSM8K.sub(MARK, line, count=1) for line in lines]  # #### 72, #### Answer: 5
    marked = [i for i, line in enumerate(lines) if LABEL.match(line) or line.startswith(MARK)]
    at = marked[-1] if marked else len(lines) - 1
    if at < 0:
        return ""
    labelled = bool(marked)
    final = LABEL.sub("", lines[at].removeprefix(MARK), count=1)
    final = LABEL.sub("", final, count=1)  # Minerva's `Final Answer: The final answer is $5$.`
    final = MINERVA_END.sub("", final)  # `. I hope it is correct.` (lm-eval's MATH format)
    if labelled and not final.strip("*_ :") and at + 1 < len(lines):  # `Answer:` and the answer below it
        final = lines[at + 1]
    elif labelled and re.search(r"\d\s*!$", final) and not final.endswith("!!"):  # The answer is 5!
        final = final[:-1]  # a labelled sentence's exclamation, not a factorial (48th hunt, case 8)
    final = _bare(final)
    return ungrouped(final) or final  # 5 000, 1.000.000: one number


def _last_boxed(response: str) -> str | None:
    """What the last `\\boxed{...}` (or `\\fbox{...}`) holds, braces balanced; None where there is none."""
    at = max(response.rfind("\\boxed{"), response.rfind("\\fbox{"))
    if at < 0:
        return None
    start = response.index("{", at) + 1
    depth = 0
    for i, c in enumerate(response[start:], start):
        depth += (c == "{") - (c == "}")
        if depth < 0:
            return response[start:i]
    return ""  # never closed: cut at the token limit, no answer


def _bare(text: str) -> str:
    """The answer less its sentence's full stop and its delimiters (`$5$.`, `**5**`, `\\(5\\)`)."""
    for _ in range(3):
        text = SPACING.sub(
            "", SIGNS_AFTER.sub("", SPACING.sub("", text))
        )  # `18 ✅`, `\boxed{\,18\,}` (50th hunt, 8-9)
        text = text.removesuffix(".").strip().strip("*_").strip()  # `**5`, left by a label's `**Answer: 5**`
        for left, right in DELIMITERS:
            inner = text[len(left) : -len(right)]
            whole = left != "{" or _balanced(inner)  # {5}, not {1}{2}
            if (
                len(text) > len(left) + len(right)
                and text.startswith(left)
                and text.endswith(right)
                and whole
            ):
                text = text[len(left) : -len(right)].strip()
    return text


def _balanced(text: str) -> bool:
    """Whether every brace `text` opens it closes, none closed before it opens."""
    depth = 0
    for c in text:
        depth += (c == "{") - (c == "}")
        if depth < 0:
            return False
    return depth == 0


def marked_score(name: str, response: str, gold, prompt: str) -> float:
    """1.0 where the response's marked answer (final_answer), read as an answer of your file is, equals the
    reference `gold` as `verifiers.reference` made it; 0.0 where it is wrong, missing, or not an answer
    admission would read."""
    answer = final_answer(response)
    if not answer:
        return 0.0
    try:
        found = reference(name, answer, "response")
    except ValueError:  # a word, a bound, a unit, several numbers: no number the response states
        return 0.0
    if name == "math_verify" and _words(typeset(answer)) - _words(str(gold[-1])):  # about 5: no answer of 5
        return 0.0  # (math_verify admits words, math's own: 2xy; not a word the reference lacks)
    return float(agrees(name, answer, found, gold))


def _words(text: str) -> set[str]:
    """The plain-text words of an answer (not LaTeX's commands, not a single letter: a variable)."""
    return {w.casefold() for w in WORD.findall(text) if not w.startswith("\\") and len(w) > 1}


def agrees(name: str, answer: str, found, gold) -> bool:
    """Whether a response's answer, read as `found` (from the text `answer`), is the reference `gold`."""
    from math_verify import verify

    if name == "exact":  # \boxed{\text{Paris}}: Paris; a reference `Answer: 5` is 5 (48th hunt, case 13)
        return normalised(TEXT.sub(r"\1", answer)) in (gold, normalised(LABEL.sub("", gold, count=1)))
    if isinstance(gold, float):  # a plain-number row: a number, or math whose value it is (2^{5}, 1/2)
        value = found if isinstance(found, float) else value_of(found)
        percent = value is not None and answer.rstrip().endswith("%") and abs(gold) > 1  # 0.5%: not 0.5
        percent = percent and same_number(value * 100, gold)  # 50% right against 50 (49th hunt, case 38)
        return value is not None and (same_number(value, gold) or percent)  # 50% right against 50, as 0.5
    if _opens(str(gold[-1])) in "([" and _opens(answer) not in "([":  # `2, 3` is no interval (2, 3)
        return False  # (Math-Verify matched them: forty-eighth hunt, case 12)
    predicted = math_reference(answer) if isinstance(found, float) else found
    return bool(predicted) and verify(gold, predicted, timeout_seconds=timeout(5))


def _opens(text: str) -> str:
    """The bracket math opens with, `\\left(` read as `(` (forty-ninth hunt, cases 104-107)."""
    return re.sub(r"\\(?:left|right|[bB]igg?[lr]?)\s*", "", text).strip()[:1] or " "


def format_checker(name: str, answer_format: str, timeout_s: float | None = None) -> Callable:
    """(response, reference, prompt) -> score for verifier `name` under `answer_format`: picklable, as a
    data-parallel run's spawned ranks receive the task."""
    check_format(answer_format)
    if answer_format == "marked" and name in BUILT_IN:
        return functools.partial(marked_score, name)
    if name in BUILT_IN:  # last: a power tower anywhere is never evaluated (it did not end: 50th hunt, 12)
        return functools.partial(last_score, name)
    return checker(name, timeout_s)


def last_score(name: str, response: str, gold, prompt: str) -> float:
    """task.answer_format=last's score: the built-in checker's, 0 for a response holding a power too
    large to evaluate."""
    return 0.0 if unbounded_power(response) else checker(name)(response, gold, prompt)
