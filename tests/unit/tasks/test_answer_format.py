"""task.answer_format (tasks/answer_format.py): under `marked`, the default, a response's answer is the text
it marks (last \\boxed{}, <answer>, ####, a labelled line, else its last line), read as an answer of your file
is: a number or math alone, or wrong. Each expected score is derived by hand from that rule."""

from __future__ import annotations

import pickle

import pytest

from align_lab.tasks import verifiers
from align_lab.tasks.answer_format import final_answer, format_checker
from tests.unit.tasks.test_verifiable_data import built, error, jsonl

ROWS = [{"q": f"What is {i} plus 1?", "a": str(i + 1)} for i in range(6)]


def marked(name: str, answer: str, response: str) -> float:
    return format_checker(name, "marked")(response, verifiers.reference(name, answer, "row"), "prompt")


@pytest.mark.parametrize(
    "response, answer",
    [
        ("5", "5"),
        ("The answer is 5.", "5"),
        ("**Answer:** 5", "5"),
        ("Therefore, the final answer is: $5$.", "5"),
        ("Work: 2 + 3.\nSo the final answer is $\\boxed{5}$. I used 2 steps.", "5"),  # the last box
        ("\\boxed{5}\n\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("<answer> 7 </answer> then 8", "7"),
        ("Natalia sold 48/2 = 24 clips.\n#### 72\nDone", "72"),
        ("Answer: 5\n\n(Note: not 6)", "5"),  # a labelled line is the mark, a note after it aside
        ("Step 1: 2 + 3 = 5\n\n5", "5"),
        ("$$\\frac{1}{2}$$", "\\frac{1}{2}"),
        ("\\(10\\)", "10"),
        ("1 000", "1000"),  # grouped in threes: one number
        ("1.000.000", "1000000"),
        ("", ""),
        ("\\boxed{5", ""),  # a box never closed (cut at the token limit): no answer
    ],
)
def test_the_final_answer_is_what_the_response_marks(response, answer):
    assert final_answer(response) == answer


@pytest.mark.parametrize(
    "name, answer, response, expected",
    [
        ("auto", "5", "The answer is 5.", 1.0),
        ("auto", "5", "x = 5", 1.0),  # Math-Verify's right side
        ("auto", "5", "The answer is 2+3=5", 1.0),  # the equation's right side: 5 (47th hunt, case 42: 0)
        ("auto", "0.5", "\\boxed{\\frac{1}{2}}", 1.0),
        ("auto", "\\frac{1}{2}", "0.5", 1.0),
        ("auto", "32", "2^{5}", 1.0),
        ("auto", "0.05", "5%", 1.0),
        ("auto", "\\frac{1}{3}", "0.\\overline{3}", 1.0),  # a repeating decimal: 1/3 (47th hunt, case 11: 0)
        ("auto", "-5", "negative 5", 1.0),
        ("auto", "1000000", "1.000.000", 1.0),
        ("auto", "18", "$18", 1.0),
        # each read as its number by `last` (or by the forty-seventh hunt's readers): no answer of it here
        ("auto", "5", "about 5", 0.0),
        ("auto", "5", "not 5", 0.0),
        ("auto", "5", "5 or more", 0.0),
        ("auto", "5", "5+", 0.0),
        ("auto", "5", "x < 5", 0.0),
        ("auto", "5", "5 ± 1", 0.0),
        ("auto", "5", "is ~ 5", 0.0),  # 47th hunt, case 75
        ("auto", "5", "5 apples", 0.0),
        ("auto", "5", "5 m^2", 0.0),  # a unit with a power (case 31)
        ("auto", "5", "\\boxed{\\text{not } 5}", 0.0),  # case 88
        ("auto", "5", "\\textbf{(A) }5", 0.0),  # case 16
        ("auto", "5000000", "5 million", 0.0),  # a scale: refused in your file, so in a response
        ("auto", "5000000", "5\\text{ million}", 0.0),  # case 82
        ("auto", "5000000", "5.5M", 0.0),
        ("auto", "0.75", "3/4. Check: 1/4 + 3/4 = 1", 0.0),  # case 66: its last line is no answer alone
        ("auto", "0.5", "1/2 at most", 0.0),  # case 76
        ("auto", "2", "\\sqrt{-4}", 0.0),  # case 70: no real number
        ("auto", "3.5", "\u0663\u066b\u0665", 0.0),  # Arabic digits and separator (case 56)
        ("auto", "18", "Janet makes $18 every day.", 0.0),  # prose: no marked answer
        ("auto", "10", "ten", 0.0),
        ("auto", "x > 2", "2", 0.0),
        ("auto", "x > 2", "x > 2", 1.0),
        # numeric reads plain numbers only, in a response as in your file
        ("numeric", "32", "2^{5}", 0.0),
        ("numeric", "5", "Answer: 5", 1.0),
        ("numeric", "5", "5 apples", 0.0),
        # math_verify: a word the reference does not hold is no answer of it (it admits 2xy, math in words)
        ("math_verify", "5", "about 5", 0.0),  # 47th hunt, case 84
        ("math_verify", "5", "\\boxed{5}", 1.0),
        ("math_verify", "-5", "negative 5", 1.0),
        ("math_verify", "\\frac{1}{2}", "The answer is $0.5$.", 1.0),
        ("exact", "Paris", "The capital of France.\nThe answer is Paris.", 1.0),
        ("exact", "Paris", "It is Paris", 0.0),
    ],
)
def test_a_marked_answer_is_read_as_an_answer_of_your_file(name, answer, response, expected):
    assert marked(name, answer, response) == expected


def test_last_reads_the_response_anywhere_as_before():
    gold = verifiers.reference("auto", "5", "row")
    assert format_checker("auto", "last")("so 5", gold, "p") == 1.0
    assert format_checker("auto", "marked")("so 5", gold, "p") == 0.0


def test_the_checker_pickles_for_a_spawned_rank():
    check = pickle.loads(pickle.dumps(format_checker("auto", "marked")))
    assert check("\\boxed{6}", 6.0, "p") == 1.0


@pytest.mark.parametrize("value, shown", [("boxed", "boxed"), ("null", "null")])
def test_an_unknown_format_is_refused_in_one_line(tmp_path, value, shown):
    """Forty-eighth hunt, cases 40-41: the key was named twice (`task.task.answer_format`), and null met
    OmegaConf's type line, which names no allowed value."""
    message = error(jsonl(tmp_path, ROWS), f"task.answer_format={value}")
    assert message.endswith(f"task.answer_format={shown}: must be marked or last"), message


def test_the_format_is_in_the_tasks_fingerprint(tmp_path):
    """A stage labelled by the verifier (pairs, evaluation) is rebuilt when the format changes."""
    path = jsonl(tmp_path, ROWS)
    marked_print = built(path, "task.eval_rows=2").task.fingerprint()
    last_print = built(path, "task.eval_rows=2", "task.answer_format=last").task.fingerprint()
    assert marked_print["answer_format"] == "marked" and last_print["answer_format"] == "last"


@pytest.mark.parametrize(
    "name, answer, response, expected",
    [  # forty-eighth hunt (2026-12-03), cases 1-13, on the first day of `marked`
        ("auto", "5", "**Answer: 5**", 1.0),  # case 1: bold around the labelled line
        ("auto", "5", "The answer is **5**.", 1.0),  # case 2
        ("auto", "5", "Answer:\n5", 1.0),  # case 3: the label on its own line
        ("auto", "5", "The answer is:\n\n**5**", 1.0),
        ("auto", "5", "\\boxed{5 \\text{ million}}", 0.0),  # case 4: a scale in LaTeX text
        ("auto", "5", "\\boxed{5 \\text{ or more}}", 0.0),  # case 5: a bound in LaTeX text
        ("auto", "5", "\\boxed{5 \\text{ (approx.)}}", 0.0),
        ("auto", "5", "\\boxed{\\approx 5}", 0.0),  # cases 6, 11: a leading relation
        ("math_verify", "5", "\\boxed{\\geq 5}", 0.0),
        ("auto", "5", "Answer: 5?", 0.0),  # case 7
        ("auto", "5", "\\boxed{5 \\ldots}", 0.0),
        ("auto", "120", "The answer is 5!", 0.0),  # case 8: a sentence's exclamation, not 5 factorial
        ("auto", "5", "The answer is 5!", 1.0),
        ("auto", "120", "\\boxed{5!}", 1.0),  # in a box: the factorial
        ("auto", "5", "\\boxed{{5}}", 1.0),  # case 9: braces around it
        ("auto", "50", "Answer: 50%", 1.0),  # case 10: 50% is 1/2, right against 50 as against 0.5
        ("auto", "50", "\\boxed{50\\%}", 1.0),
        ("exact", "Paris", "\\boxed{\\text{Paris}}", 1.0),  # case 13
        ("exact", "Answer: 5", "5", 1.0),
        ("auto", "5000", "5\\,000", 1.0),  # case 14: LaTeX's thin space groups threes
        ("auto", "5", "x = - 5", 0.0),  # case 47: a spaced minus is the sign
        ("auto", "-5", "The answer is - 5.", 1.0),
        ("auto", "2", "5 - 3", 1.0),  # a difference stays one
        ("auto", "5", "\\boxed{\\mathbf{5}}", 1.0),  # cases 36, 48: a number in bold or LaTeX text
        ("auto", "5", "\\boxed{\\text{5}}", 1.0),
        ("math_verify", "(2, 3)", "Answer: 2, 3", 0.0),  # case 12: two numbers are no interval
        ("math_verify", "(2, 3)", "\\boxed{(2, 3)}", 1.0),
    ],
)
def test_forty_eighth_hunts_marked_answers_are_read_as_meant(name, answer, response, expected):
    assert marked(name, answer, response) == expected


LABELLED = [
    "Answer: {}",
    "Final answer: {}",
    "The answer is: {}",
    "Answer:{}",
    "**Answer:** {}",
    "Answer - {}",
]
LABELLED += ["Answer = {}", "#### {}", "Answer -> {}", "Answer => {}", "Answer \u2192 {}", "Answer > {}"]
LABELLED += ["Answer | {}", "Answer ~ {}", "Answer\uff1a{}", "Answer; {}"]


def test_the_labels_the_last_reading_knows_mark_an_answer():
    """The twenty-eighth and twenty-ninth hunts' label forms mark the answer after them under `marked` too,
    and a spaced minus after `is` is the answer's sign (forty-eighth hunt, case 47)."""
    gold = verifiers.reference("auto", "0.5", "row")
    check = format_checker("auto", "marked")
    assert [check(form.format("\\frac{1}{2}"), gold, "p") for form in LABELLED] == [1.0] * len(LABELLED)
    assert check("The answer is - \\frac{1}{2}", gold, "p") == 0.0
    assert check("Answer: -\\frac{1}{2}", gold, "p") == 0.0


@pytest.mark.parametrize(
    "name, answer, response, expected",
    [  # forty-ninth hunt (2026-12-03), on the marked reading and the answers' readers
        (
            "auto",
            "10",
            "#### Step 1: Add\n2+3 = 5\n#### Step 2: Double\n5*2 = 10\n\n**Answer: 10**",
            1.0,
        ),  # 1
        ("auto", "5", "2+3=5\n#### Final Answer: 5", 1.0),  # case 2
        ("auto", "5", "#### Final Answer\n5", 1.0),
        ("auto", "5", "Final Answer: The final answer is $5$. I hope it is correct.", 1.0),  # 3: Minerva's
        ("auto", "5", "<think>Maybe \\boxed{4}? No, recount: 5.</think>\n<answer>5</answer>", 1.0),  # 4
        ("auto", "5", "\\boxed{\\lesssim 5}", 0.0),  # 13-23: a command the readers do not read
        ("auto", "5", "\\boxed{\\nleq 5}", 0.0),
        ("math_verify", "5", "\\boxed{x \\to 5}", 0.0),
        ("auto", "5", "\\boxed{5^{+}}", 0.0),
        ("auto", "5", "\\boxed{\\neg 5}", 0.0),
        ("auto", "5", "\\boxed{\\operatorname{not} 5}", 0.0),  # 24
        ("auto", "5", "\\boxed{5\\text{K}}", 0.0),
        ("auto", "42", "The correct answer is 42.", 1.0),  # 35
        ("auto", "42", "Answer (in dollars): 42", 1.0),
        ("auto", "0.5", "Answer: 0.5%", 0.0),  # 38: 0.005
        ("auto", "5", "\\boxed{|-5|}", 1.0),  # 84, 87: an absolute value
        ("auto", "-5", "\\boxed{|-5|}", 0.0),
        ("auto", "5", "\\boxed{-(-5)}", 1.0),  # 90
        ("auto", "-5", "\\boxed{- -5}", 0.0),  # 91
        ("auto", "6", "\\boxed{5 \\mid 6}", 0.0),  # 95: two numbers
        ("auto", "6", "\\boxed{5 \\\\ 6}", 0.0),
        ("auto", "-3", "\\boxed{-\\,3}", 1.0),  # 97-98: a thin space, dashes as the minus
        ("auto", "3", "\\boxed{\u20133}", 0.0),
        ("auto", "-3", "Answer: \uff0d3", 1.0),
        ("auto", "0.5", "\\boxed{\\nicefrac{1}{2}}", 1.0),  # 92
        ("auto", "(2, 3)", "\\boxed{\\left(2, 3\\right)}", 1.0),  # 104-107
        ("math_verify", "\\left( 3, \\frac{\\pi}{2} \\right)", "\\left( 3, \\frac{\\pi}{2} \\right)", 1.0),
    ],
)
def test_forty_ninth_hunts_marked_answers_are_read_as_meant(name, answer, response, expected):
    assert marked(name, answer, response) == expected


@pytest.mark.parametrize(
    "name, answer, response, expected",
    [  # fiftieth hunt (2026-12-03)
        ("auto", "18", "Answer: x \\approx 18", 0.0),  # case 3: an approximation
        ("auto", "18", "\\boxed{x \\sim 18}", 0.0),
        ("auto", "\\binom{5}{2} = 10", "\\boxed{10}", 1.0),  # case 5: an equation's value
        ("math_verify", "\\frac{1}{2} = 0.5", "\\boxed{0.5}", 1.0),
        ("auto", "0.5", "\\boxed{\\mathbf{\\frac{1}{2}}}", 1.0),  # case 6
        ("auto", "18", "- Answer: 18", 1.0),  # case 7: a list's marker before the label
        ("auto", "18", "1. Answer: 18", 1.0),
        ("auto", "18", "Answer: 18 \u2705", 1.0),  # case 8: a check mark after it
        ("numeric", "18", "\\boxed{\\,18\\,}", 1.0),  # case 9: LaTeX's spaces
        ("numeric", "18", "\\boxed{18\\ }", 1.0),
    ],
)
def test_fiftieth_hunts_marked_answers_are_read_as_meant(name, answer, response, expected):
    assert marked(name, answer, response) == expected


@pytest.mark.parametrize(
    "response", ["\\boxed{10^{10^{10}}}", "\\boxed{9^{9^{9}}}", "Answer: 2^{2^{40}}", "9^{99999}"]
)
@pytest.mark.parametrize("answer_format", ["marked", "last"])
def test_a_power_too_large_to_evaluate_scores_0_at_once(response, answer_format):
    """Fiftieth hunt, case 12: `\\boxed{10^{10^{10}}}` never returned (killed at 250 s): a training run
    would have stalled in its scoring with no line. A tower whose value is small still reads (2^{3^2})."""
    gold = verifiers.reference("auto", "512", "row")
    assert format_checker("auto", answer_format)(response, gold, "p") == 0.0
    assert format_checker("auto", answer_format)("\\boxed{2^{3^{2}}}", gold, "p") == 1.0
    with pytest.raises(ValueError, match="a power too large to evaluate"):
        verifiers.reference("auto", response.removeprefix("Answer: "), "row")
