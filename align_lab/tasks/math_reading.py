"""Reading math out of text, for the verifiers (tasks/verifiers.py): Math-Verify's parse of a reference
answer or a response read as a whole where Math-Verify alone would take a number out of it (bare LaTeX,
a tuple or interval), the final answer a response ends with, and numbers as they are typeset (scientific
notation written out as its decimal: decimal_notation)."""

from __future__ import annotations

import math
import re
import threading


def timeout(seconds: int) -> int | None:
    """Math-Verify's timeout where it can work (signal.alarm: the main thread only), else none."""
    return seconds if threading.current_thread() is threading.main_thread() else None


def math_parse(text: str):
    from math_verify import parse

    return parse(text, parsing_timeout=timeout(3))


def read_whole(text: str) -> bool:
    """Undelimited math Math-Verify would read a number out of, rather than as the whole: LaTeX markup
    (`2^{10}` read 2), or a tuple or interval of numbers (`(2, 3)` read 3: twenty-sixth hunt, case 22)."""
    text = text.strip()
    bracketed = text[:1] in "([" and text[-1:] in ")]" and len(DIGITS.findall(text)) > 1  # (2,3) too
    return bool(set(text) & set("\\^{_")) or bracketed or EXPRESSION.search(text) is not None


# an expression in a variable (`3x+2`, `x+1`, `2y`): Math-Verify read `3x+2` undelimited as 3, so a response
# "3" scored right against it and `$3x+2$` wrong, and refused `x+1` (forty-fifth look, 2026-12-02)
LETTER = r"(?<![A-Za-z])[A-Za-z](?![A-Za-z])"  # one letter alone: a variable
INEQUALITY = "<>\u2264\u2265\u2260"  # x > 2: Math-Verify read it undelimited as 2 (a response "2" right)
EXPRESSION = re.compile(rf"(?:\d|[-+*/={INEQUALITY}]\s*){LETTER}|{LETTER}\s*[-+*/^{INEQUALITY}]")  # 2x, x+1


# a number grouped in threes by spaces (SI's `5 000`, thin or no-break spaces too), by underscores
# (`1_000`), apostrophes (`5'000`) or two or more points (`1.000.000`): one number (forty-first hunt, case 36,
# forty-second, 41: read 0 and 1, their last group or subscript)
SEPARATED = r"\d{1,3}(?:[ \u00a0\u2009\u202f'\u2019]\d{3})+(?:\.\d+)?"  # 5 000, 5'000, 12 345.6
GROUPED = re.compile(rf"[-+]?(?:{SEPARATED}|\d{{1,3}}(?:\.\d{{3}}){{2,}})")  # or 1.000.000
UNDERSCORED = re.compile(r"(?<![\w.])\d{1,3}(?:_\d{3})+(?![\w])")


def grouped(final: str) -> float | None:
    """The value of a final answer that is one number grouped in threes (GROUPED), else None."""
    digits = ungrouped(final)
    return None if digits is None else float(digits)


def ungrouped(final: str) -> str | None:
    """A final answer that is one number grouped in threes (GROUPED) written without its groups' marks
    (`1.000.000`: `1000000`), else None."""
    if not GROUPED.fullmatch(final):
        return None
    return re.sub(r"[\s'\u2019]", "", final if final.count(".") < 2 else final.replace(".", ""))


def typeset(text: str) -> str:
    """A response's or answer's numbers as written to be read: a typeset minus (U+2212) is a minus, and a
    decimal with no leading digit (`.25`) is 0.25 (twenty-sixth hunt, case 23: `−7` scored 0 against -7,
    and numeric read an answer `−7` as 7); a `+` before a number no sign of a sum (`+5`); the Unicode signs
    of math as LaTeX (`√2`, `2π`, `2²`, `½`, `∞` were read 2, 2, 2, refused, refused: fortieth hunt, cases
    66-67; `∛8` 8, `√-1` -1: forty-first, 3-4), an unbraced exponent braced (`2^-1` was 2: case 6), a number
    in Markdown's emphasis or alone in parentheses the number (`**+5**`, `*5*`, `(+5)`: 0 under math_verify,
    forty-second hunt, case 6), digits grouped by underscores one number (`1_000` was 1: case 3)."""
    text = text.replace("\u2212", "-").replace("\uff05", "%").replace("\uff01", "!")  # full-width (44th, 3)
    text = DASH_SIGN.sub("-", text).replace("\\nicefrac", "\\frac").replace("\\sfrac", "\\frac")  # (49th)
    text = text if "\\left" in text else BARS.sub(r"\\left|\1\\right|", text)  # |-5|: 5 (read -5: 49th, 67)
    text = NEGATIVE.sub("-", text).replace("-$", "$-")  # negative 3, minus 5, -$1,234 (47th hunt, 10, 45)
    text = SPACED_MINUS.sub(
        _sign, WRAPPED.sub(r"\1", BOLD.sub(r"\1", text))
    )  # - 5 was 5, \mathbf{5} no number (48th, 35-36)
    text = text.replace("\\%", "%")  # LaTeX's percent sign (case 65)
    text = THIN_SPACE.sub("", text)  # 5\,000: LaTeX's thin space groups threes (48th hunt, case 14: read 0)
    text = REPEATING.sub(_fraction, text)  # 0.\overline{3}: Math-Verify read 0 (47th hunt, case 11)
    text = UNDERSCORED.sub(lambda m: m[0].replace("_", ""), SIGN_PLUS.sub("", text))
    text = ROOT.sub(_root, text.translate(UNICODE_MATH))
    text = RAISED.sub(lambda m: "^{" + m[1].translate(PLAIN) + "}", text)
    text = EMPHASISED.sub(r"\2", TAG.sub(" ", text))
    text = PERCENT_WORDS.sub(r"\1%", FACTORIAL.sub(lambda m: str(math.factorial(int(m[1]))), text))
    return PARENTHESISED.sub(r"\1", LEADING_DOT.sub(r"0.\1", BARE_POWER.sub(r"^{\1}", text)))


THIN_SPACE = re.compile(r"(?<=\d)\\[,;:! ](?=\d{3}(?!\d))|(?<=-)\s*\\[,;:! ]\s*(?=\d)")  # 5\,000, -\,3
# a dash of typesetting in a sign's place (en dash, hyphens, figure dash, small and full-width minus) before a
# number: its minus (forty-ninth hunt, cases 97-100: `–3` read 3); between numbers (`3–5`) left: a range
DASH_SIGN = re.compile("(?<![\\w)\\]}])[\u2013\u2012\u2010\u2011\ufe63\uff0d](?=\\s*[\\d.])")
BOLD = re.compile(r"\\(?:mathbf|boldsymbol|bm)\s*\{((?:[^{}]|\{[^{}]*\})*)\}")  # \mathbf{\frac{1}{2}} (50th)
BARS = re.compile(r"(?<![\\|])\|([^|]+)\|")  # |x|, not \| or ||
REPEATING = re.compile(r"(?<![\d.])(\d+)\.(\d*)\\overline\s*\{(\d+)\}")  # 0.1\overline{6}: 1/6


def _fraction(match: re.Match) -> str:
    """A repeating decimal as the fraction it is: a.b(c) = a + (bc - b) / (10^|b| (10^|c| - 1))."""
    whole, fixed, period = match[1], match[2], match[3]
    denominator = 10 ** len(fixed) * (10 ** len(period) - 1)
    numerator = int(whole) * denominator + int(fixed + period) - int(fixed or "0")
    return f"\\frac{{{numerator}}}{{{denominator}}}"


def _root(match: re.Match) -> str:
    degree = {"\u221a": "", "\u221b": "[3]", "\u221c": "[4]"}[match[1]]
    return f"\\sqrt{degree}{{{match[2] or match[3]}}}"


SUPERSCRIPTS = "\u207a\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"  # + - 0 to 9
PLAIN = str.maketrans(SUPERSCRIPTS, "+-0123456789")
SIGNED = f"[{SUPERSCRIPTS[:2]}]?[{SUPERSCRIPTS[2:]}]+"  # an exponent in superscripts
RAISED = re.compile(f"(?<!10)(?<!10[{SUPERSCRIPTS[:2]}])({SIGNED})")  # 2² (10³ is decimal_notation's)
ROOT = re.compile(r"([\u221a\u221b\u221c])\s*(?:\(([^()]*)\)|(-?\d+(?:\.\d+)?|[A-Za-z]))")  # √2, ∛8, √(x+1)
# "+5", "is +5.", "**+5**", not "2 +5" (forty-second hunt, case 6: "**+5**" 0 under math_verify)
SIGN_PLUS = re.compile(
    r"(?:^|(?<=[\s(=:,$*_`]))(?<![\d)\]}] )(?<![^A-Za-z][A-Za-z] )(?<!^[A-Za-z] )\+(?=\s*\d)"
)  # not 3x + 2
# a number in Markdown's emphasis or code (`*5*`, `__5__`, `` `5` ``) or alone in parentheses (`(5)`):
# the number (Math-Verify read them as no number: forty-second hunt, case 6; forty-third, 4)
EMPHASISED = re.compile(r"(?<![\w*`])([*_`]{1,3})\s*([-+]?\d+(?:\.\d+)?)\s*\1(?![\w*`])")
# a tag around the answer (`<answer>5</answer>`, R1's format): a space (math_verify read `>5<` as no number:
# forty-third hunt, case 38); a factorial of a small integer written bare (`3!`): its value, as `$3!$` is
# (case 37); a percentage in words (`50 percent`, `50 per cent`, `50pct`): as `50%` (case 45)
NEGATIVE = re.compile(r"(?<![\d)])(?<![\d)]\s)\b(?:negative|minus)\s+(?=\d)", re.IGNORECASE)
# a minus then spaces before a number, where nothing it could be subtracted from stands before it (the
# start, `=`, `(`, `$`, `is`, `equals`: `- 5`, `x = - 5`, `is - 5`; `Answer - 5` is a label's), is its sign:
# Math-Verify read `- 5` as 5 (forty-eighth hunt, cases 35, 47); `x - 5` and `3 - 5` stay differences
SPACED_MINUS = re.compile(
    r"(?P<before>(?:^|[=(\[{$:,]|\b(?:is|are|was|were|equals|be|of))\s*)-\s+(?=[\d.\\])"
)
# a number in bold or LaTeX text (`\mathbf{5}`, `\text{5}`): the number (read as no number on a plain row: 36)
WRAPPED = re.compile(r"\\(?:mathbf|textbf|text|mathrm|boldsymbol|bm|mbox)\s*\{\s*(-?\d+(?:\.\d+)?)\s*\}")


def _sign(match: re.Match) -> str:
    return f"{match['before']}-"


TAG = re.compile(r"</?[A-Za-z][\w-]*>")
FACTORIAL = re.compile(r"(?<![\w.!])(\d{1,2})!(?![=!\w])")
PERCENT_WORDS = re.compile(r"(\d)\s*(?:percent|per\s+cent|pct)\b", re.IGNORECASE)
PARENTHESISED = re.compile(r"(?<![\w)\]}^_\\-])\(\s*(-?\d+(?:\.\d+)?)\s*\)")  # not -(-5): 5
BARE_POWER = re.compile(r"\^\s*(-?\d+(?:\.\d+)?)")  # 2^-1, 2^10: the exponent whole, as meant
FRACTIONS = {"\u00bd": (1, 2), "\u2153": (1, 3), "\u2154": (2, 3), "\u00bc": (1, 4), "\u00be": (3, 4)}
FRACTIONS |= {"\u2155": (1, 5), "\u2159": (1, 6), "\u215b": (1, 8)}
SIGNS = {"\u03c0": "\\pi ", "\u221e": "\\infty ", "\u00f7": "\\div "}  # pi, infinity, division
SIGNS |= {"\u00d7": "\\times ", "\u00b7": "\\cdot "}  # products (10's power first: decimal_notation)
UNICODE_MATH = str.maketrans(SIGNS | {k: f"\\frac{{{a}}}{{{b}}}" for k, (a, b) in FRACTIONS.items()})


DIGITS = re.compile(r"\d+(?:\.\d+)?")
LEADING_DOT = re.compile(r"(?<![\w.])\.(\d)")


def math_reference(answer: str):
    """Math-Verify's parse of a reference answer as a whole: bare LaTeX (`2^{10}`, `3\\pi`, `\\sqrt{2}`) is
    read as math between `$...$` (undelimited, Math-Verify takes its first number: 2^{10} read 2, so a
    response "2" scored right and "1024" wrong, twenty-fourth hunt, case 19); other answers as they are."""
    answer = typeset(answer)
    delimited = answer.strip().startswith(("$", "\\(", "\\[", "\\boxed"))
    if not delimited and "," in answer and (listed := math_parse(f"\\boxed{{{answer.strip()}}}")):
        return listed  # "-2,1": two solutions, as boxed (bare, a decimal comma: -2.1; 39th hunt, case 33)
    if not delimited and (read_whole(answer) or answer.strip().endswith("!")):  # 3! was 3 (41st hunt, 6)
        whole = math_parse(f"${answer.strip()}$")
        if whole:
            return whole
    parsed = math_parse(answer)
    mathlike = not parsed and re.search(r"[-+*/^()]", answer)  # -(-5): none undelimited; `seven` stays none
    if not delimited and (mathlike or parsed and not faithful(parsed, answer)):  # 2xy read 2: as math
        whole = math_parse(f"${answer.strip()}$")
        return whole if whole and faithful(whole, answer) else parsed or whole
    return parsed


def written(answer: str) -> str:
    """A reference answer as the number and math readers read it: GSM8K's column's text after `####`,
    scientific notation written out, typeset, a number grouped in threes by points one number."""
    answer = typeset(decimal_notation(answer.rpartition("####")[2]))
    lhs, equals, rhs = answer.rpartition("=")  # \binom{5}{2} = 10: its value (50th hunt, case 5: no response)
    if equals and rhs.strip() and not re.search(r"[A-Za-z<>!=]", re.sub(r"\\[A-Za-z]+", "", lhs)):
        answer = rhs
    return ungrouped(answer.strip()) if re.fullmatch(r"\s*\d{1,3}(?:\.\d{3}){2,}\s*", answer) else answer


def content(text: str) -> str:
    """The letters and digits of math as written, LaTeX's command names and text without digits aside."""
    text = re.sub(r"\\(?:text|mathrm|textbf|mbox)\s*\{[^{}\d]*\}", "", text)  # a unit: 5\text{ cm}
    return "".join(c for c in re.sub(r"\\[A-Za-z]+", "", text).casefold() if c.isalnum())


def faithful(parsed: list, answer: str) -> bool:
    """Whether Math-Verify's parse read all that `answer` (typeset) writes: the text it extracted holds
    the answer's letters and digits (an equation's right side, its value: `x = 5` is 5). Undelimited it
    stops early: `2xy` and `2ab` read 2, `2.500.000` 2.5, `5 млн` 5, `3 ln 2` 2 (forty-seventh hunt)."""
    read = content(str(parsed[-1]))
    return read == content(answer) or read == content(answer.rpartition("=")[2])


LATEX_TOKEN = re.compile(r"\\[A-Za-z]+|[A-Za-z]+|\s+|.")
DELIMITED = ("$", "\\(", "\\[", "\\boxed")


def final_expression(response: str) -> str:
    """The last math a response writes: its last run of numbers, operators, LaTeX commands, single letters
    and braced groups, after the words and stops that follow it ("The answer is 2^{10}." -> "2^{10}",
    "so x = 3\\pi" -> "x = 3\\pi", "\\frac{1}{2} cups" -> "\\frac{1}{2}": twenty-seventh hunt, case 2, where a
    unit after the answer sent it to its last number), less a label's stops before it ("Answer: x" -> "x");
    "" where it writes none."""
    tokens, depth, kept = LATEX_TOKEN.findall(response), 0, []
    while tokens and (tokens[-1].isspace() or tokens[-1] in TRAILING or is_word(tokens[-1])):
        tokens.pop()  # the words and stops after the answer
    for token in reversed(tokens):
        depth += (token == "}") - (token == "{")
        if depth <= 0 and is_word(token):  # a word, not \\pi or x or {cm}
            break
        kept.append(token)
    return LABEL_END.sub("", "".join(reversed(kept))).strip()


TRAILING = set(".,;:!?")
# what ends a label before the answer ("Answer: ", "**Answer:** ", "Answer = ", "Answer - ", GSM8K's "#### ",
# "Answer -> ", "=> ", "→ ", a full-width colon: twenty-ninth hunt, case 2): not the
# answer's (twenty-eighth hunt, case 2: `Answer: \frac{1}{2}` read as the string ": \frac{1}{2}", 0 against
# 0.5); a minus written against its number (`: -\frac{1}{2}`) is the answer's, as Math-Verify reads both
LABEL_END = re.compile(r"^\s*(?:[:;,.!?*=#>|~\u2192\uff1a]+\s*|-+>\s*|[-\u2013\u2014]\s+)*")


def is_word(token: str) -> bool:
    """A word of the text, not math: two letters or more (not a LaTeX command), or "I" and "a"."""
    return token[0].isalpha() and (len(token) > 1 or token in ("I", "a", "A"))


def response_parse(response: str):
    """Math-Verify's parse of a response, whose final answer, when it is bare LaTeX (no `$`, `\\(`,
    `\\[` or `\\boxed` anywhere), is read whole as `math_reference` reads an answer: undelimited,
    Math-Verify read `2^{10}` as 2, so a response that wrote the reference itself scored 0
    (twenty-fifth hunt, case 16). Where that whole is no math (marks before it read as a string), the
    response as Math-Verify reads it (twenty-ninth hunt, case 2: `#### \\frac{1}{2}` scored 0)."""
    if not any(mark in response for mark in DELIMITED):
        final = final_expression(response)
        listed = math_parse(f"\\boxed{{{final}}}") if "," in final else None  # "-2, 1" as math_reference
        if listed and not isinstance(listed[0], str):  # reads a list (bare, a decimal comma: -2.1)
            return listed
        if read_whole(final):
            whole = math_parse(f"${final}$")
            if whole and not isinstance(whole[0], str):  # read as math: else as Math-Verify reads it all
                return whole
    return math_parse(response)


def math_value(response: str) -> float | None:
    """The real number Math-Verify reads as a response's final answer (`x = 2^{5}`: its right side), NaN
    where it is a number but no real one (`1/0`, `\\sqrt{-1}`: no answer's value; numeric's last number
    had scored them right against 0 and -1, forty-first hunt, case 36), or None: nothing parsed, or not a
    number (a set, an interval, an expression in x)."""
    return value_of(response_parse(response))


def value_of(parsed: list) -> float | None:
    """The real number a Math-Verify parse is (math_value), NaN where it is no real one, else None."""
    import sympy

    for item in parsed:
        expr = item.rhs if isinstance(item, sympy.Eq) else item
        if isinstance(expr, sympy.Expr) and expr.is_number:
            try:
                return float(expr.evalf())
            except (TypeError, ValueError):  # complex, or undefined (zoo)
                return math.nan
            except OverflowError:  # past a float
                return None
    return None


# a number in scientific notation inside a response: Math-Verify reads "2.5e-3" as 2.5 ("1e-9" as 1, a
# hack a policy could learn against an answer of 1: thirty-sixth hunt, case 3); written out as the decimal
# it is first (`decimal_notation`), whatever follows it (a full stop, "x": thirty-seventh hunt, case 2,
# as with any exponent's length), its minus any dash a typesetter writes (38th hunt's nits, "1e–9")
MINUS = "\u2212\u2013\u2012\u2010\u2011\ufe63\uff0d"  # minus, en dash, figure dash, hyphens, small, wide
SIGN = rf"(?P<s>(?:[-+{MINUS}]\s*){{0,2}})"  # "1e+-9": the signs' product, as arithmetic reads it
IN_TEXT = re.compile(rf"(?<![\w.])(?P<m>\d+(?:\.\d*)?)[eE]{SIGN}(?P<d>\d+)")
EXPONENT_WRITTEN = 10_000  # past it, a number is written as what it reads as: \infty, or 0 (not its digits)


# the same written with a power of ten: "5*10^-3" read as 5 (thirty-eighth hunt, case 2), any sign of a
# product between (x, dot operators, bullets: 39th hunt, case 3), a brace or bracket around the exponent
# only where it opened one ("\boxed{5\times10^3}": its own brace taken, unbalanced, scored 0: case 2);
# a bare power of ten ("10^-3") is 1 times it
TIMES = r"\*|x|X|\\times|\\cdot|[\u00d7\u00b7\u22c5\u2219\u2022\u2715\u2a2f]"
TIMES_TEN = re.compile(
    rf"(?<![\w.^])(?:(?P<m>\d+(?:\.\d*)?)\s*(?:{TIMES})\s*)?10\s*\^\s*"
    rf"(?P<b>\{{)?\s*(?P<p>\()?\s*{SIGN}(?P<d>\d+)\s*(?(p)\))\s*(?(b)\}})"
)
POWER = re.compile(f"10({SIGNED})")  # 10 to the -3 in superscripts


def decimal_notation(text: str) -> str:
    """`text` with each number in scientific notation written as its exact decimal ("2.5e-3", "2.5*10^-3":
    "0.0025")."""
    text = POWER.sub(lambda m: "10^{" + m[1].translate(PLAIN) + "}", text)
    return IN_TEXT.sub(_written_out, TIMES_TEN.sub(_written_out, text))


def _written_out(match: re.Match) -> str:
    from decimal import Decimal

    mantissa, digits = match["m"] or "1", match["d"].lstrip("0") or "0"
    sign = "-" if sum(c == "-" or c in MINUS for c in match["s"]) % 2 else ""
    if len(digits) > 5 or int(digits) > EXPONENT_WRITTEN:  # 1e999999: a million digits, or none
        return "0" if sign == "-" or Decimal(mantissa) == 0 else "\\infty"
    return format(Decimal(f"{mantissa}e{sign}{digits}"), "f")
