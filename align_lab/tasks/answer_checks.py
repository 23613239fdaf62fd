"""Answers of your data that a checker reading numbers or math would misread, each refused in one line
naming the row (tasks/verifiers.py reference): a mixed number, a sign of math left in Unicode, an
apostrophe between digits, an undefined value, several numbers with no math between them, a list or a
decimal comma."""

from __future__ import annotations

import math
import re

from align_lab.tasks.arith_word import NUMBER
from align_lab.tasks.math_reading import EXPRESSION, faithful

NOTATION = set("/^_{}()[]*+-\\!π×÷|")  # math around a number: its value is not the number alone
THOUSANDS = re.compile(r"(?<![\d,])\d{1,3}(?:,\d{3})+(?![\d,])")  # 1,000 and 12,345,678: one number
LISTED = re.compile(r"\d\s*,\s*[-+\u2212]?\d")  # any other comma between numbers: a list (reference)
MIXED = re.compile(r"(?<![\d.])\d+\s+\d+\s*/\s*\d+")  # 1 1/2
# a number with a scale after it: 1.5k, 2 million (forty-second hunt, case 2: read 1.5 and 2)
WORDS = "dozen|doz|score|gross|grand|hundred|thousand|million|mio|billion|bln|trillion|lakh|crore"  # any case
SCALED = re.compile(rf"\d\s*(k|K|M|B|bn|mn|(?i:(?:{WORDS})s?))\b")  # 44th hunt, case 2: `2 Million`
TEXT = re.compile(r"\s*\\(?:text|textbf|mathrm|mbox)\s*\{[^{}\d]*\}\s*")  # text alone, no digit
DATE = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b\d{4}/\d{1,2}/\d{1,2}\b")
APPROXIMATE = re.compile(r"(?:^|[\s(=:])~\s*[-+]?\.?\d")  # ~3, "about 3" (case 4: read 3)
EXPONENTS = re.compile(r"\d[eE][-+]?\d+[eE]")  # 3e2e1
LEADING_RELATION = re.compile(
    r"^\s*(?:\\(?:approx|sim|simeq|cong|geq?|leq?|gt|lt|neq?|pm|mp)(?![A-Za-z])|[<>]=?|!=)"
)
BOUND_WORDS = (
    r"or|and|not|no|about|approx\w*|around|roughly|nearly|almost|over|under|more|less|fewer|least|most"
)
TEXT_BOUND = re.compile(
    rf"\\(?:text|mathrm|textbf|mbox|operatorname)\s*\{{[^{{}}]*?\b((?:{BOUND_WORDS}|{WORDS}|k)s?)\b[^{{}}]*\}}",
    re.IGNORECASE,
)


# what an answer (as typeset) may hold that the verifiers would read as something else, each with why (a
# match's text as {0}): read as the number alone, a part of it, or a product, in silence, until refused
MISREAD = [
    (SCALED, "writes its number with a scale ({1!r}), which the verifiers read as the number alone"),
    (
        APPROXIMATE,
        "holds '~' before its number (approximately?), which the verifiers read as the number alone",
    ),
    (re.compile(r"\d_+\d"), "holds an underscore between digits that groups no threes"),  # 1_00 (43rd, 2)
    (
        re.compile(r"\d\s*!!"),
        "holds a double factorial (n!!), which the verifiers read as (n!)!",
    ),  # (44th, 28)
    (DATE, "is a date, which the verifiers read as one of its numbers"),  # 2023-01-05 read 2023 (47th, 29)
    (re.compile(r"\\[pb]mod\b"), "holds a congruence (\\pmod), which the verifiers do not read"),  # (case 15)
    (re.compile(r"[-+*/^=]\s*$"), "ends with {0!r}, math left unfinished"),  # 5+ read 5 (or 5 or more?)
    (re.compile(r"\d'\d"), "holds an apostrophe between digits (a thousands separator?)"),
    # forty-eighth hunt (2026-12-03): a leading relation (`\approx 5`, `\geq 5`: read 5), a question or an
    # ellipsis after it (`5?`), a bound or a scale in LaTeX text (`5\text{ million}`, `5 \text{ or more}`),
    # hexadecimal or binary (`0x1F`: 0*x*1*f), two decimal points (`1.2.3`: a product), a second exponent
    # (`3e2e1`), stacked powers (`2^3^2`: read (2^3)^2)
    (LEADING_RELATION, "starts with {0!r}, a bound or relation, not a value"),
    (re.compile(r"\?\s*$"), "ends with '?': no definite value"),
    (
        re.compile(r"\\[lcv]?dots\b|\.\.\.|\u2026"),
        "holds an ellipsis ({0!r}), which the verifiers do not read",
    ),
    (TEXT_BOUND, "holds {1!r} in LaTeX text, a bound or a scale the verifiers read as the number alone"),
    (
        re.compile(r"\b0[xXbBoO][0-9A-Fa-f]+\b"),
        "is written in base 16, 2 or 8 ({0!r}), which Math-Verify reads as a product",
    ),
    (re.compile(r"\d+\.\d+\.\d+"), "holds {0!r}, a number with two decimal points"),
    (EXPONENTS, "holds two exponents ({0!r})"),
    # forty-ninth hunt: two signs (`- -5` read -5), an exponent cut off or Euler's e (`1e`, `0.5e`), two
    # numbers a line break, an alignment or a set's operator apart (`5 \\ 6`, `5 \mid 6`: read 6)
    (re.compile(r"(?<![\w)}\]])-\s+-\s*\d"), "holds two signs ({0!r}): write the one it means"),
    (
        re.compile(r"\d[eE]\s*$"),
        "ends with {0!r}: an exponent cut off, or Euler's e? write e^{{1}} or 2 \\cdot e",
    ),
    (
        re.compile(
            r"(?s)^(?!.*\\begin).*?(\d\s*(?:\\\\|\\&|&|\\(?:mid|setminus|cup|cap|lor|land|wedge|vee))\s*-?\d)"
        ),
        "holds two numbers apart ({1!r})",  # a matrix's rows aside
    ),
    (re.compile(r"\^\s*\{?\s*(?:[-+]|\\pm)\s*\}?\s*$"), "ends with {0!r}, a one-sided value, not a value"),
    (
        re.compile(r"\^\s*(?:\{[^{}]*\}|[^\s{}^])\s*\^"),
        "stacks powers without braces ({0!r}): write 2^{{3^2}} or (2^3)^2",
    ),
]


def unread(answer: str, given: str, place: str, name: str) -> None:
    """A one-line error for an answer, as typeset, that holds what the checker would misread: a mixed
    number (`1 1/2` read 1: fortieth hunt, case 66), a sign of math left in Unicode (`≈3.14` read 3.14),
    an apostrophe between digits (`5'000` read 5: forty-first hunt, case 9), a scale (`1.5k`), a `~`, a
    number past float's smallest (`1e-400` read 0), and each of MISREAD."""
    import unicodedata

    signs = ("Sm", "So")  # and per mille's, per ten thousand's (2‰ read 2: forty-second hunt, case 4)
    left = [
        c for c in answer if not c.isascii() and (unicodedata.category(c) in signs or c in "‰‱′″‴٫٬–")
    ]  # 5′ (feet, minutes) read 5; Arabic separators (٫5 read 5), a dash between numbers (3–5: a range?)
    why = "is a mixed number" if MIXED.search(answer) else None
    why = why or (f"holds {left[0]!r}, a sign the verifiers do not read" if left else None)
    if why is None and any(_underflows(n) for n in NUMBER.findall(answer)):
        why = "is a number too small for a float (it reads as 0)"
    if why is None and (huge := unbounded_power(answer)):  # 10^{10^{10}} never returned (50th hunt, 12)
        why = f"holds {huge!r}, a power too large to evaluate"
    for pattern, says in MISREAD:  # the answer as read; two exponents as written (3e2e1 is 300e1 once read)
        if why is None and (found := pattern.search(given if pattern is EXPONENTS else answer)):
            why = says.format(found[0].strip(), found[found.lastindex or 0])
    if TEXT.fullmatch(answer):  # \text{(C)}: a response (C) scored 0 (forty-seventh hunt, case 14)
        why = "is text in LaTeX, which a response `(C)` or `C` would not match; for text answers"
        raise ValueError(f"{place}: answer {given!r} {why} set task.verifier=exact")
    foreign = re.search(r"[^\W\d_A-Za-z\u0370-\u03ff]+", answer) if name == "math_verify" else None
    if why is None and foreign:  # 5 млн read 5
        why = f"holds {foreign[0]!r}, letters Math-Verify does not read (it reads the number alone)"
    unknown = [c for c in re.findall(r"\\([A-Za-z]+)", answer) if c not in LATEX_READ]
    if why is None and unknown:
        why = f"holds \\{unknown[0]}, a LaTeX command the verifiers do not read (they read what is beside it)"
    if why is None and (bare := BARE_FUNCTION.search(answer)):  # 3 ln 2: 3*l*n*2 (47th hunt, case 32)
        why = (
            f"writes {bare[1]!r} without its backslash, which Math-Verify reads as letters: write \\{bare[1]}"
        )
    if why:
        raise ValueError(f"{place}: answer {given!r} {why}; write it in digits or LaTeX ({name})")


# the words an answer may hold beside its number under auto and numeric: none written in plain text (math's
# own as LaTeX commands: \pi, \ln); any word is refused, as its meaning is not read (an allow-list, where a
# deny-list of scales met a new one in each hunt: 2 million, 3 dozen, 5 lakhs, 2 bln; 2pi read 2: 47th, 28)
WORD = re.compile(r"\\[A-Za-z]+|[^\W\d_]+")  # a LaTeX command (its name no word), or letters in any script


def worded(answer: str, given: str, place: str, name: str) -> None:
    """A one-line error for an answer that holds a number and a word the checker does not read (`2 million`,
    `about 5`, `at least 3`, `5 apples`, `2pi`): a scale, a bound or a unit read as the number alone. LaTeX's
    commands and what a `\\text{}` without digits holds are Math-Verify's to read."""
    if not re.search(r"\d", answer):
        return
    bare = re.sub(r"\\(?:text|mathrm|textbf|mbox|operatorname|begin|end)\s*\{[^{}\d]*\}", " ", answer)
    found = [w for w in WORD.findall(bare) if not w.startswith("\\")]  # 2pi, 2 log: in LaTeX (47th hunt, 28)
    words = [w for w in found if len(w) > 1 or not w.isascii()]  # x, y: a variable; 万, θ: words (2万 read 2)
    math = EXPRESSION.search(bare) or re.search(r"[$=]|\\[(\[A-Za-z]", bare)  # 3x+2, x = 5, $2x$, x \in
    words = words or ([] if math else [w for w in found if w.isascii()])  # 5 m: a unit, or 5 times m?
    if words:
        kind = "word" if len(words[0]) > 1 or not words[0].isascii() else "letter"
        raise ValueError(
            f"{place}: answer {given!r} holds the {kind} {words[0]!r} beside its number, which "
            f"task.verifier={name} does not read (a scale, a bound or a unit would be read as the number "
            "alone); write the answer as a number or math alone, or set task.verifier=math_verify (math in "
            "words: 2xy) or exact (text answers)"
        )


TOWER = re.compile(r"\^\s*\{\s*(\d+)\s*\^\s*\{?\s*(\d+)\s*\}?\s*\}")  # 10^{10^{10}}: its exponent b^c


def unbounded_power(answer: str) -> str | None:
    """A power whose exponent passes 10,000 (`9^{99999}`, `2^{2^{40}}`), or a tower whose exponent is
    no plain b^c (`10^{x^{2}}` aside, as math in a variable): evaluating it did not end."""
    for m in TOWER.finditer(answer):
        base, power = int(m[1]), int(m[2])
        if power > 64 or base > 1 and base**power > 10_000:
            return m[0]
    nested = re.search(r"\^\s*\{[^{}]*\^\s*\{?[^{}]*\d[^{}]*\}?[^{}]*\}", answer)
    if nested and not TOWER.search(nested[0]) and not re.search(r"[A-Za-z]", nested[0]):
        return nested[0]
    big = re.search(r"\^\s*\{?\s*(\d{5,})", answer)
    return big[0] if big and int(big[1]) > 10_000 else None


def _underflows(number: str) -> bool:
    """A number written with a digit other than 0 that a float reads as 0 (`1e-400`, written out)."""
    try:
        return float(number.replace(",", "")) == 0 and bool(set(number) & set("123456789"))
    except ValueError:
        return False


# the LaTeX commands the readers of math read (Math-Verify's parser, latex2sympy2_extended: its grammar's
# commands, Greek letters, delimiters and spacing): another command beside a number was dropped, the
# number read alone (`\\lesssim 5`, `\\nleq 5`, `\\neg 5`, `x \\to 5` as 5: forty-ninth hunt, 13-23)
LATEX_READ = set(
    """frac dfrac tfrac cfrac sqrt pi infty le ge leq geq lt gt neq ne in notin cup cap setminus emptyset
    varnothing subset subseteq supset supseteq mid pm mp left right big Big bigl bigr Bigl Bigr bigg Bigg
    text textbf textrm mathrm mathbf mathit mbox boldsymbol bm displaystyle textstyle begin end pmatrix
    bmatrix matrix vmatrix array vec hat bar prime angle circ degree binom dbinom tbinom choose cdot times
    div ln log exp lg sin cos tan cot sec csc sinh cosh tanh arcsin arccos arctan arccot arcsec arccsc
    arcsinh arccosh arctanh det gcd lcm max min mod ceil floor lceil rceil lfloor rfloor langle rangle
    lbrace rbrace lbrack rbrack lvert rvert vert mathbb quad qquad operatorname phantom boxed fbox
    alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi
    omicron rho varrho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma
    Upsilon Phi Psi Omega overline""".split()
)
BARE_FUNCTION = re.compile(
    r"(?<![\\A-Za-z])(ln|log|exp|sin|cos|tan|sqrt|gcd|lcm|det|arc(?:sin|cos|tan))(?![A-Za-z])"
)


def read_in_full(parsed: list, answer: str, given: str, place: str) -> None:
    """A one-line error for an answer Math-Verify reads only part of (`2ab` as 2, `2.500.000` as 2.5, `5 млн`
    as 5: each admitted as that value under math_verify until 2026-12-03), or reads as text alone."""
    if not any(not isinstance(p, str) for p in parsed):  # gcd(4,6): a string, no math
        raise ValueError(
            f"{place}: answer {given!r} is read by Math-Verify as text, not math; write it as math in LaTeX "
            "or set task.verifier=exact"
        )
    if not faithful(parsed, answer):
        raise ValueError(
            f"{place}: answer {given!r} is read by Math-Verify as {str(parsed[-1])!r} alone; write it as a "
            "number or as math in LaTeX, or set task.verifier=exact"
        )


def defined(parsed: list, given: str, place: str, answer: str | None = None) -> list:
    """Math-Verify's reading of an answer, refused where it is undefined (`1/0`, sympy's zoo, or nan): no
    response can match it (forty-first hunt, case 7), or where it reads only part of `answer` (as typeset:
    read_in_full)."""
    if given.count("{") != given.count("}"):  # \frac{1}{ admitted, no response could match (47th hunt, 69)
        raise ValueError(f"{place}: answer {given!r} has unbalanced braces; write it as LaTeX that closes")
    value = parsed[0].doit() if hasattr(parsed[0], "doit") else parsed[0]  # 1/0 unevaluated: zoo
    if str(value) in ("zoo", "nan"):
        raise ValueError(f"{place}: answer {given!r} is undefined ({value}): no response can match it")
    if answer is not None:
        read_in_full(parsed, answer, given, place)
    return parsed


def several(answer: str, given: str, place: str, name: str) -> None:
    """A one-line error for an answer of several numbers and no math notation ("5:30", "2, 3", "1 000",
    "12 h 30 min"), which a checker reading one number would read as one of them."""
    numbers = NUMBER.findall(answer)
    if len(numbers) > 1 and not set(answer) & NOTATION:
        raise ValueError(
            f"{place}: answer {given!r} holds {len(numbers)} numbers and no math notation, which "
            f"task.verifier={name} would read as one of them; set task.verifier=exact (text answers) or "
            "your own module:function"
        )


def listed(answer: str, given: str, place: str, name: str) -> None:
    """A one-line error for an answer that is a list of numbers, or one with a decimal comma: a comma
    between numbers that is no thousands grouping (`-2,1` was -21 under auto and numeric, `1,-2` -2,
    `0,5` 5: fortieth hunt, cases 2 and 66)."""
    if LISTED.search(THOUSANDS.sub("0", answer)):
        raise ValueError(
            f"{place}: answer {given!r} is a list of numbers, or a decimal comma (a comma between numbers "
            f"is no thousands grouping, which takes three digits after each comma); task.verifier={name} "
            "would read it as one number: a list, set task.verifier=math_verify; a decimal, write its point"
        )


def past_a_float(number: float) -> bool:
    """An integer a float holds no longer exactly (past 2^53): its neighbours read as it; or past a
    float's range (10^400 written out read inf, right against any number as large: 49th hunt, 28, 32)."""
    return not math.isfinite(number) or (number.is_integer() and abs(number) >= 2**53)
