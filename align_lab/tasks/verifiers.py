"""Answer checkers of task=verifiable_data (task.verifier): does a response give the reference answer?

Each checker is built once per task from the reference answers, which it reads and checks at build time
(an answer it cannot read is a one-line error naming the file's row, before any compute), and then
scores a response against a row's reference: 1.0 right, 0.0 wrong, or a function's own float.

- `exact`: the response, stripped and with runs of whitespace made one space, equals the reference
  likewise normalised, case folded (a trailing full stop ignored): for short answers ("Paris").
- `auto` (the default): `numeric` for a row whose answer is a plain number (its last number, no math
  notation touching it: "42", GSM8K's "#### 72"), `math_verify` for every other row ("\\frac{1}{2}",
  "5/2", "3\\pi"), so the default reads each answer as its value, not as its last digits; on a
  plain-number row a response whose final answer is written in math ("2^{5}", "\\frac{1}{2}", "1/2",
  "\\boxed{2^{5}}") is read by Math-Verify as its value too.
- `numeric`: the last number the response writes equals the reference's number (to 1e-9 relative;
  "1,024" reads 1024): arith_word's rule, for word problems answered in numbers (GSM8K-style). An
  answer that is not a plain number ("\\frac{1}{2}" would read 2) is refused, naming math_verify.
- `math_verify`: Hugging Face's Math-Verify (the `math-verify` package; the field's checker of math
  answers, used by open-r1 and TRL's accuracy reward): both sides parsed (LaTeX or plain expressions)
  and compared symbolically, so "\\frac{1}{2}", "0.5" and "1/2" agree. Its timeouts (signal.alarm)
  apply in the main thread; elsewhere it runs without one (the package's own rule).
- `module:function`: your own, importable from the working directory: f(response, answer, prompt) ->
  float or bool, given the row's reference answer as written in the file.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import math
import re
from collections.abc import Callable

from align_lab.tasks.answer_checks import NOTATION, defined, listed, past_a_float, several, unread, worded
from align_lab.tasks.arith_word import NUMBER, final_number
from align_lab.tasks.math_reading import (
    decimal_notation,
    final_expression,
    grouped,
    math_reference,
    math_value,
    read_whole,
    response_parse,
    timeout,
    typeset,
    ungrouped,
    written,
)
from align_lab.tasks.response_reading import (
    RELATION,
    RELATIONS,
    marked,
    qualified,
    response_number,
    without_negations,
)
from align_lab.user_code import why_not_found
from align_lab.user_fds import RunFdsLost, fds_kept
from align_lab.user_limits import RunLimitsLost, limits_kept
from align_lab.user_modes import modes_kept
from align_lab.user_probes import loaded, scored_row
from align_lab.user_signals import run_signals_kept
from align_lab.user_timeouts import BUILDING, CallTimedOut, ImportSaid, bounded, imported, keyed, users_line
from align_lab.value_checks import UserCodeError, callable_as, one_line, timed_out, user_score

BUILT_IN = ("auto", "exact", "numeric", "math_verify")
MATH = ("auto", "numeric", "math_verify")  # the built-in verifiers that read numbers and math
ALLOWED = "auto, exact, numeric, math_verify, or module:function (f(response, answer, prompt) -> float)"


def plain_number(answer: str) -> float | None:
    """The answer's last number when it stands alone, else None: none written, or math notation next
    to it (the nearest other character on either side in NOTATION, or a letter or "." glued before
    it), as in "\\frac{1}{2}", "5/2", "2^{10}", "3\\pi", "x + 1", ".5"; "#### 72" and "$10" are plain,
    "50%" is not (a percentage: Math-Verify's 1/2, right against 0.5 and 50; numeric read it 50 and scored
    0.5 wrong: forty-first hunt, case 41)."""
    found = list(NUMBER.finditer(answer))
    if not found:
        return None
    before, after = answer[: found[-1].start()], answer[found[-1].end() :].strip().removesuffix(".")
    glued = before[-1:].isalpha() or before[-1:] == "." or re.search(r"[A-Za-z]", after) is not None  # 2x
    minus = found[-1][0].startswith("-") and before.rstrip()[-1:].isdigit()  # 5-3: a difference (41st, 5)
    command = re.search(r"\\[A-Za-z]", answer) is not None  # 2\times 3, \log_2 8 (read 8: 2026-12-02)
    percent = after[:1] == "%"
    glued = glued or re.search(rf"(?:{RELATIONS})\s*$", before) is not None  # x > 2: a relation, not its 2
    if glued or minus or command or percent or before.rstrip()[-1:] in NOTATION or after[:1] in NOTATION:
        return None
    return final_number(answer)


def normalised(text: str) -> str:
    """Whitespace runs made one space, ends stripped, a trailing full stop dropped, case folded."""
    return " ".join(text.split()).removesuffix(".").strip().casefold()


def _math_verify(response: str, gold) -> float:
    from math_verify import verify

    response = without_negations(typeset(decimal_notation(response)))
    final = final_expression(response)
    if (digits := ungrouped(final)) is not None:  # 1.000.000 read 1 (forty-fourth hunt, case 4)
        response = response[: response.rindex(final)] + digits
    if qualified(response, final) and not RELATION.search(str(gold[-1])):  # not 5, x < 1/2: no answer of it
        return 0.0  # unless the answer is itself a relation (x > 2)
    predicted = response_parse(response)
    return float(bool(predicted) and verify(gold, predicted, timeout_seconds=timeout(5)))


def _function(name: str, timeout_s: float | None = None) -> Callable:
    """The callable `module:function` names, or a one-line error saying what is wrong with it (its import
    bounded by `timeout_s`, as its calls are: user_timeouts.py imported)."""
    module, _, attr = name.partition(":")
    key = keyed(f"verifier={name}")
    try:
        with limits_kept(key), run_signals_kept(key), modes_kept(key), fds_kept(key):  # its import
            where = imported(module, f"verifier={name}", "verifier_timeout_s", timeout_s)
        found = functools.reduce(getattr, attr.split("."), where)  # Class.method
    except ImportSaid:
        raise
    except RunLimitsLost as e:
        raise ValueError(f"verifier={name}: importing {module} {e.what}") from None
    except (ImportError, AttributeError) as e:
        said = f"{type(e).__name__}: {why_not_found(e)}"  # an AttributeError: its own words
        raise ValueError(f"verifier={name}: cannot import it ({said}); {ALLOWED}") from None
    except Exception as e:  # the user's module raised, or does not parse, as it was imported
        raise ValueError(f"verifier={name}: importing {module} raised {type(e).__name__}: {e}") from None
    if not callable(found):
        raise ValueError(f"verifier={name}: is not callable; {ALLOWED}")
    callable_as(found, f"verifier={name}", "f(response, answer, prompt)", 3)
    return found


def code_digest(name: str) -> str | None:
    """The sha256 of the source of verifier `name`'s module (None for a built-in checker): a stage
    labelled by your function is rebuilt when you edit it."""
    if name in BUILT_IN:
        return None
    module = importlib.import_module(name.partition(":")[0])
    source = inspect.getsource(module) if getattr(module, "__file__", None) else repr(module)
    return hashlib.sha256(source.encode()).hexdigest()


def check_name(name: str) -> None:
    """A one-line error for a verifier that is neither built in nor `module:function`."""
    if name not in BUILT_IN and (":" not in name or not all(name.partition(":")[::2])):
        raise ValueError(f"verifier={name}: must be {ALLOWED}")


def reference(name: str, answer: str, place: str):
    """The reference `answer` as checker `name` compares with it (a number, Math-Verify's parse, the
    normalised text, the text itself for a function), or a one-line error naming `place` when the
    checker cannot read it. Read as `math_reading.written` writes it (`5×10³` 5000, `1e3` 1000: fortieth
    hunt, case 1; Unicode math as LaTeX); a list of numbers only by math_verify (listed)."""
    given = answer  # as the file has it, in each line
    if name in MATH:  # not exact's: its text is compared as written; GSM8K's column: its final answer
        answer = written(answer)  # GSM8K's column: its final answer (47th hunt, case 47)
        unread(answer, given, place, name)
    if name == "numeric":
        several(answer, given, place, name)  # "5 000" was 0 (forty-first hunt, case 8)
        worded(answer, given, place, name)  # words allowed, not refused: 2 million, 5 lakhs (44th hunt, 2)
        listed(answer, given, place, name)
        number = final_number(answer)
        if number is None:
            raise ValueError(f"{place}: answer {given!r} has no number; task.verifier=numeric needs one")
        if plain_number(answer) is None:
            raise ValueError(
                f"{place}: answer {given!r} is not a plain number (task.verifier=numeric would read its "
                f"last number, {number:g}); set task.verifier=math_verify or auto"
            )
        if past_a_float(number):  # 20! = 2432902008176640000: ...0001 and ...39999 were right (43rd, 40)
            raise ValueError(
                f"{place}: answer {given!r} is an integer past 2^53, which task.verifier=numeric compares as "
                "a float (its neighbours right too); set task.verifier=math_verify or auto"
            )
        return number
    if name == "auto":
        several(answer, given, place, name)
        worded(answer, given, place, name)
        if not read_whole(answer):  # a tuple or interval, (2, 3): read whole
            listed(answer, given, place, name)
        number = plain_number(answer)
        if number is not None and not past_a_float(number):
            return number
        parsed = math_reference(answer)  # an integer past 2^53 too: exactly (forty-third hunt, case 40)
        if not parsed:
            raise ValueError(
                f"{place}: answer {given!r} is neither a plain number nor math Math-Verify can parse "
                "(task.verifier=auto); set task.verifier=exact for text answers"
            )
        return defined(parsed, given, place, answer)
    if name == "math_verify":
        parsed = math_reference(answer)
        if not parsed:
            raise ValueError(
                f"{place}: Math-Verify cannot parse answer {given!r} (task.verifier=math_verify)"
            )
        return defined(parsed, given, place, answer)
    if name == "exact":
        return normalised(answer)
    return answer


def verdict(score: float, where: str) -> float:
    """A verifier's score, which must lie in [0, 1] (1 right, 0 wrong, between: partial credit): pass@k
    counts the samples scored 1, so a -5 or a 1e30 would make it a figure of no meaning (pass@1 -5)."""
    for bound in (0.0, 1.0):  # float noise of a sum of checks: 0.9999999999999999 all right, which pass@k
        if abs(score - bound) <= NOISE:  # counted as wrong, and 1.0000000000000002 refused as "returned
            return bound  # 1" (thirty-first hunt, cases 46-47)
    if not 0.0 <= score <= 1.0:
        shown = f"{score:.10g}" if float(f"{score:.10g}") == score else repr(score)  # never "returned 1"
        raise UserCodeError(
            f"{where}: returned {shown}; a verifier scores a response in [0, 1] (1 right, 0 wrong, "
            "between: partial credit); a reward of any scale is reward=function"
        )
    return score


NOISE = 1e-9  # a verifier's score this close to 0 or 1 is that bound


def checker(name: str, timeout_s: float | None = None) -> Callable[[str, object, str], float]:
    """(response, reference as `reference` made it, prompt) -> score, for verifier `name`. Picklable, as a
    data-parallel run's spawned ranks receive the task (fourteenth hunt: closures here made every
    task=verifiable_data run on 2 processes a traceback)."""
    check_name(name)
    builtin = {"exact": _exact, "numeric": _numeric, "auto": _auto, "math_verify": _math}
    return builtin[name] if name in builtin else Yours(name, timeout_s)


def _exact(response: str, gold, prompt: str) -> float:
    return float(normalised(response) == gold)


def _numeric(response: str, gold, prompt: str) -> float:
    response = without_negations(decimal_notation(typeset(marked(response))))  # 1e3 as its answer (41st, 10)
    found = grouped(final_expression(response))  # 5 000 one number (forty-second hunt, case 41)
    found = response_number(response) if found is None else found  # not 5, 5 million (2026-12-02)
    return float(found is not None and same_number(found, gold))


def same_number(found: float, gold: float) -> bool:
    """To 1e-9 relative, as a decimal is read; an integer answer only by that integer (to 1e-6: a value
    Math-Verify computed, 2.9999999999999996 for log_2 8), as far as a float holds one (2^53): 4294967297
    scored right against 4294967296 (twenty-sixth hunt, case 26)."""
    if gold.is_integer() and abs(gold) < 2**53:
        return abs(found - gold) <= 1e-6
    return math.isclose(found, gold, rel_tol=1e-9, abs_tol=1e-12)


def _auto(response: str, gold, prompt: str) -> float:
    """auto: a row whose answer is math, by Math-Verify; a plain-number row by numeric's rule, unless the
    response's final answer is written in math (`2^{5}`, `\\frac{1}{2}`, `1/2`, `\\boxed{2^{5}}`): then by
    the value Math-Verify reads (twenty-sixth hunt, case 5: numeric read `\\frac{1}{2}` as 2 against 0.5,
    and `2^{5}` as 5 against 5); `1e5` and `1*10^5` are 100000 (decimal_notation)."""
    response = without_negations(decimal_notation(typeset(marked(response))))  # 42, not 43: 42 (47th, 3)
    if not isinstance(gold, float):
        return _math_verify(response, gold)
    final = final_expression(response)
    if (value := grouped(final)) is not None:  # 5 000: one number, not its last group (41st hunt, 36)
        return float(same_number(value, gold))
    arithmetic = re.search(r"\d\s*[-+*]\s*\d", final)  # 5-3 read -3 (forty-first hunt, case 36)
    value = math_value(response) if set(final) & set("\\^{_/") or arithmetic else None
    if value is not None and qualified(response, final):  # about 2^{5}: no answer of 32
        return 0.0
    percent = final_number(final) if final.endswith("%") else None  # "50%": 0.5 as Math-Verify reads it
    if value is None and percent is not None and same_number(percent / 100, gold):  # (a row of 1/2 took
        return 1.0  # it, one of 0.5 did not: thirty-second hunt, case 48); 50 too, by numeric's rule
    if value is None:
        return _numeric(response, gold, prompt)
    return float(same_number(value, gold))


def _math(response: str, gold, prompt: str) -> float:
    return _math_verify(response, gold)


class Yours:
    """A verifier of the user's (`task.verifier=module:function`): its failures one line naming it, its
    last rows kept in each checkpoint and asked again on resume (user_probes.py). Pickled by its name:
    a spawned rank loads the function again."""

    def __init__(self, name: str, timeout_s: float | None = None) -> None:
        self.name, self.where, self.function = name, f"task.verifier={name}", _function(name, timeout_s)
        self.timeout_s = timeout_s  # task.verifier_timeout_s: a call past it stops the run (user_timeouts.py)
        loaded(self.where, self.judged)  # a resume asks it again

    def __getstate__(self) -> dict:
        return {"name": self.name, "timeout_s": self.timeout_s}

    def __setstate__(self, state: dict) -> None:
        BUILDING.append("task")  # a spawned rank's lines name its key as rank 0's (38th hunt, case 40)
        try:
            self.__init__(state["name"], state.get("timeout_s"))
        finally:
            BUILDING.pop()

    def judged(self, response: str, gold, prompt: str) -> float:
        try:
            with (
                limits_kept(self.where),
                run_signals_kept(self.where),
                modes_kept(self.where),
                bounded(self.where, "task.verifier_timeout_s", self.timeout_s),
                fds_kept(self.where),  # innermost: what the bound's watch opens is the run's
            ):
                score = self.function(response, gold, prompt)
        except CallTimedOut as e:
            raise timed_out(e) from None
        except (RunFdsLost, RunLimitsLost) as e:
            raise UserCodeError(str(e)) from None
        except Exception as e:  # one line naming the verifier (Interrupted is no Exception)
            raise UserCodeError(f"{self.where}: raised {one_line(e)} at {users_line(e)}") from None
        return verdict(user_score(score, self.where), self.where)

    def __call__(self, response: str, gold, prompt: str) -> float:
        score = self.judged(response, gold, prompt)
        scored_row(self.where, (response, gold, prompt), score)  # kept in each checkpoint (user_probes.py)
        return score
