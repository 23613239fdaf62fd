"""A response's final answer read with what stands beside it, for the verifiers (tasks/verifiers.py): the
answer it marks (`\\boxed{}`, `<answer>`, `####`), the alternatives it rules out after it (`42, not 43`),
and a bound, negation, relation, open end or scale beside it (`not 5`, `about 5`, `x < 5`, `5 or more`,
`5 million`), each of which a reading of the bare number scored the other way (2026-12-02)."""

from __future__ import annotations

import re

from align_lab.tasks.math_reading import final_expression

# the last number of a response as numeric reads it, where what stands beside it does not make it another
# number: a bound or a negation before it (`not 5`, `x ≠ 5`, `x < 5`, `about 5`, `at least 5`, `±5`) or per
# mille, an imaginary unit or an open end after it (`5‰`, `5i`, `5+`) is no answer of 5; a scale after it
# multiplies it (`5 million`: 5000000); a comma groups only threes (`1,00` and `10,0` were 100); each of
# these read as the bare number, right against 5 or 100, until 2026-12-02
READ_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,]\d)|-?\d+(?:\.\d+)?")
BOUNDS = r"not|never|at\s+least|at\s+most|about|around|approx|approximately|roughly|nearly|near|almost"
BOUNDS += r"|over|under|above|below|(?:less|more|greater|fewer)\s+than\s+or\s+equal\s+to"  # 47th hunt, 23-26
BOUNDS += r"|no\s+(?:more|less|fewer)\s+than"
NOT_A_LABEL = r"(?<![-=])(?<![A-Za-z]{2} )(?<![A-Za-z]{2})"  # `Answer > 5`, `-> 5`: a label's (29th hunt, 2)
QUALIFIED = re.compile(
    rf"(?:{NOT_A_LABEL}[\u2260<>\u2264\u2265~\u2248\u00b1\u2213]|[<>!]=|\w+n['\u2019]t|\bbetween\s+\S+\s+and|\\(?:neq?|[lg]eq?|[lg]t|approx|sim|pm|mp)(?![A-Za-z])"
    rf"|\b(?:{BOUNDS}|up\s+to|more\s+than|less\s+than|fewer\s+than)\b|\bapprox\.)\s*[$*_(`{{\[]*\s*$",
    re.IGNORECASE,
)
OPEN = r"or\s+(?:more|less|fewer|higher|lower|greater|above|below|so|over|under)|and\s+(?:up|above|over|more)"
OPEN += r"|at\s+(?:most|least)|approx|approximately|roughly|-?ish|\(\s*approx\w*"  # 5 at most, 5ish
# an open end or another kind of number after the last one: 5 or more, 5+, 5i (not "5 I think"), 5‰
OPEN_AFTER = re.compile(  # 5K glued: a thousand or kelvin? (300 K spaced: a unit)
    rf"(?-i:[KMB])\b|\s*(?:[\u2030\u2031]|(?-i:i)\b(?!\.e)|\^?\{{?\+(?!\s*\d)|(?:{OPEN})(?![A-Za-z]))",
    re.IGNORECASE,
)
SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12, "hundred": 1e2, "dozen": 12.0}
SCALES |= {"lakh": 1e5, "crore": 1e7, "bn": 1e9, "bln": 1e9, "mn": 1e6, "k": 1e3}
# `k` glued and lower case only: `300 K` is kelvin (read 300000 until this was written)
SCALE_AFTER = re.compile(rf"\s*({'|'.join(k for k in SCALES if k != 'k')})s?\b|(?-i:(k))\b", re.IGNORECASE)


def response_number(response: str) -> float | None:
    """The last number a response writes, None where what stands beside it makes it no answer of that
    number (a bound, a negation, an open end), times a scale written after it."""
    found = list(READ_NUMBER.finditer(response))
    if not found:
        return None
    last = found[-1]
    before, after = response[max(0, last.start() - 40) : last.start()], response[last.end() : last.end() + 20]
    if QUALIFIED.search(before) or OPEN_AFTER.match(after):
        return None
    scale = SCALE_AFTER.match(after)
    return float(last[0].replace(",", "")) * (SCALES[(scale[1] or scale[2]).lower()] if scale else 1.0)


RELATIONS = r"[<>!]=|[<>\u2264\u2265\u2260\u2248~\u00b1\u2213]|\\(?:neq?|[lg]eq?|[lg]t|approx|sim|pm|mp)\b"
RELATION = re.compile(RELATIONS)  # a relation other than `=`, or plus-minus


def qualified(response: str, final: str) -> bool:
    """A response's final math (final_expression) that a bound, a negation, a relation or a scale beside
    or in it makes no answer of its value: `not 5`, `about \\frac{1}{2}`, `x < 1/2`, `5 million` (Math-Verify
    read each as the bare value, right, until 2026-12-02)."""
    at = response.rfind(final) if final else -1
    if at < 0:
        return False
    before, after = response[max(0, at - 40) : at], response[at + len(final) : at + len(final) + 20]
    lead = re.match(r"[^\d\\$({\[]*", final)[0]  # `'t ` of "isn't 1/2": the final's words before its math
    opened = (m := OPEN_AFTER.match(after)) is not None and m[0].strip() != "i"  # 3 + 2i: Math-Verify's
    beside = QUALIFIED.search(before + lead) or opened or SCALE_AFTER.match(after)
    numbers = list(READ_NUMBER.finditer(response))  # the last number's own bound or negation: isn't 5
    unread = bool(numbers) and QUALIFIED.search(
        response[max(0, numbers[-1].start() - 40) : numbers[-1].start()]
    )
    return bool(beside or unread or RELATION.search(final) or re.search(r"\d\s*\^?\{?\+\}?\s*$", final))  # 5+


NEGATED = re.compile(r"(?:\bnot|\w+n['\u2019]t|\u2260|!=|\\neq?\b)\s*[$*_(`{\[]*\s*$", re.IGNORECASE)


def without_negations(response: str) -> str:
    """The response less the alternatives it rules out after its answer: `The answer is 42, not 43.` reads
    as `The answer is 42, ` (its last number, 43, was no answer: the right answer scored 0, forty-seventh
    hunt, case 3); `x ≠ 5` alone leaves no number."""
    for _ in range(3):
        final = final_expression(response)  # a number or math (`1/2, not 1/3`: its 1/3)
        at = response.rfind(final) if final else -1
        head = response[:at] + re.match(r"[^\d\\$({\[]*", final)[0] if at >= 0 else ""
        negation = NEGATED.search(head[-40:]) if at >= 0 else None
        if negation is None:
            return response
        response = head[: max(0, len(head) - 40) + negation.start()]
    return response


def marked(response: str) -> str:
    """The answer a response marks as its final one, where it marks one: the last `\\boxed{...}`, the last
    `<answer>...</answer>`, or the line after GSM8K's last `####`; else the response. A number after the
    mark was read as the answer (`The final answer is $\\boxed{5}$. I used 2 steps.` scored 0 against 5:
    forty-seventh hunt, case 41)."""
    at = response.rfind("\\boxed{")
    if at >= 0:
        depth, start = 0, at + len("\\boxed{")
        for i, c in enumerate(response[start:], start):
            depth += (c == "{") - (c == "}")
            if depth < 0:
                return f"\\boxed{{{response[start:i]}}}"
    tags = re.findall(r"<answer>(.*?)</answer>", response, re.DOTALL)
    if tags:
        return tags[-1]
    return response.rpartition("####")[2].strip().split("\n")[0] if "####" in response else response
