"""task=verifiable_data: your own questions and reference answers, checked by a verifier (tasks/verifiers.py).
Scores are derived by hand in each test; bad input ends at build in one line naming the file and row."""

from __future__ import annotations

import json
import logging
import random
import sys

import pytest

from align_lab.config import ConfigError
from align_lab.run.admission import spec_from_config
from align_lab.tasks import verifiers
from align_lab.tasks.verifiable_data import VerifiableData
from tests.conftest import ROOT, compose

ROWS = [{"q": f"What is {i} plus 1?", "a": str(i + 1)} for i in range(6)]


def jsonl(tmp_path, rows, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def task(path, **keys) -> VerifiableData:
    return VerifiableData(path=str(path), prompt_column="q", answer_column="a", eval_rows=2, **keys)


def built(path, *extra):
    keys = ["task=verifiable_data", f"task.path={path}", "task.prompt_column=q", "task.answer_column=a"]
    cfg, names = compose([*keys, "reward=verifier", "cache_dir=/nonexistent", *extra])
    return spec_from_config(cfg, names)


def error(path, *extra) -> str:
    with pytest.raises(ConfigError) as e:
        built(path, *extra)
    assert "\n" not in str(e.value)
    return str(e.value)


def score(name: str, answer: str, response: str) -> float:
    return verifiers.checker(name)(response, verifiers.reference(name, answer, "row"), "prompt")


@pytest.mark.parametrize(
    "answer,response,expected",
    [
        ("Paris", "  paris. ", 1.0),  # case, ends and a trailing full stop ignored
        ("New York", "new   york", 1.0),  # whitespace runs are one space
        ("Paris", "It is Paris", 0.0),  # more words: not the same answer
    ],
)
def test_exact_compares_normalised_text(answer, response, expected):
    assert score("exact", answer, response) == expected


@pytest.mark.parametrize(
    "answer,response,expected",
    [
        ("1024", "First 12, then 1,024", 1.0),  # the last number, commas dropped: 1024
        ("2.5", "so 2.50", 1.0),  # 2.5 == 2.50 ("about 2.50" is a bound: wrong, below)
        ("12", "12 and then 13", 0.0),  # the last number is 13
        ("7", "seven", 0.0),  # no number written
        ("#### 42", "so 42", 1.0),  # the reference's last number too (GSM8K's '#### 42')
    ],
)
def test_numeric_compares_the_last_numbers(answer, response, expected):
    assert score("numeric", answer, response) == expected


@pytest.mark.parametrize(
    "answer,response,expected",
    [
        ("$\\frac{1}{2}$", "The answer is $0.5$", 1.0),  # 1/2 = 0.5, symbolically
        ("$\\frac{1}{2}$", "The answer is $0.3$", 0.0),
        ("$x^2$", "so we get $x \\cdot x$", 1.0),  # x*x = x^2
        ("4", "I am not sure", 0.0),  # nothing to parse
    ],
)
def test_math_verify_compares_symbolically(answer, response, expected):
    assert score("math_verify", answer, response) == expected


def test_a_function_verifier_gets_the_answer_as_written(tmp_path, monkeypatch):
    (tmp_path / "my_checks.py").write_text(
        "def length(response, answer, prompt):\n    return len(answer + prompt) / len(response)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert score("my_checks:length", "abc", "abcdefghijklmno") == 9 / 15  # len("abc" + "prompt") / 15 chars


OUT_OF_RANGE = (
    "a verifier scores a response in [0, 1] (1 right, 0 wrong, between: partial credit); "
    "a reward of any scale is reward=function"
)
BAD_VERIFIERS = """
import math
def raises(response, answer, prompt):
    raise RuntimeError("no\\nanswer")
def nan(response, answer, prompt):
    return math.nan
def word(response, answer, prompt):
    return "yes"
def nothing(response, answer, prompt):
    return None
def negative(response, answer, prompt):
    return -5.0
def huge(response, answer, prompt):
    return 1e30
def half(response, answer, prompt):
    return 0.5
"""


@pytest.mark.parametrize(
    "name,expected",
    [  # before: 64-66-line tracebacks; a NaN read as "diverged ... lower algo.lr"
        ("raises", "raised RuntimeError: no answer at {tmp_path}/bad_checks.py:4"),  # its line: 36th hunt, 21
        ("nan", "returned nan; must be a finite number"),
        ("word", "returned 'yes', not a number"),
        ("nothing", "returned None, not a number"),
        # before: pass@1 -5.0 and pass@2 -65.0 (1e30: -4.6e18) in summary.json, rc 0, no line
        ("negative", "returned -5; " + OUT_OF_RANGE),
        ("huge", "returned 1e+30; " + OUT_OF_RANGE),
    ],
)
def test_a_verifier_function_that_raises_or_returns_no_number_is_one_line_naming_it(
    name, expected, tmp_path, monkeypatch
):
    from align_lab.value_checks import UserCodeError

    (tmp_path / "bad_checks.py").write_text(BAD_VERIFIERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    # this file, not one another test of this process imported from its own folder (a worker's order)
    monkeypatch.delitem(sys.modules, "bad_checks", raising=False)
    with pytest.raises(UserCodeError) as e:
        score(f"bad_checks:{name}", "1", "1")
    assert str(e.value) == f"task.verifier=bad_checks:{name}: {expected.format(tmp_path=tmp_path)}"


def test_a_partial_credit_counts_in_the_gold_reward_not_in_pass_at_k(tmp_path, monkeypatch):
    from align_lab.train.evaluate import pass_metrics, right

    (tmp_path / "bad_checks.py").write_text(BAD_VERIFIERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    # this file, not one another test of this process imported from its own folder (a worker's order)
    monkeypatch.delitem(sys.modules, "bad_checks", raising=False)
    assert score("bad_checks:half", "1", "1") == 0.5
    # two prompts, two samples each: 0.5 everywhere is no right answer (before: pass@2 0.83, pass@1 0.5)
    gold = [0.5, 0.5, 1.0, 0.0]
    fields = {"pass@1": right(gold), "sft_gold_reward": [0.5, 0.5, 0.5, 1.0]}
    out = pass_metrics(fields, 2, 2)
    assert out["eval/pass@1"] == 0.25 and out["eval/pass@2"] == 0.5
    assert out["eval/pass@1_sft"] == 0.25 and out["eval/pass@2_sft"] == 0.5


def test_the_task_scores_each_response_against_its_prompts_answer(tmp_path):
    t = task(jsonl(tmp_path, ROWS))
    assert t.prompts("eval") == ["What is 4 plus 1?", "What is 5 plus 1?"]  # the last eval_rows rows
    responses = ["5", "It is 5, no 6", "6"]  # right; last number 6 is wrong for 4+1; right
    prompts = ["What is 4 plus 1?", "What is 4 plus 1?", "What is 5 plus 1?"]
    assert t.gold_reward(prompts, responses, [True] * 3) == [1.0, 0.0, 1.0]
    assert t.demonstrations()[0] == ("What is 0 plus 1?", "1")  # no response_column: the answers
    assert t.verifiable and t.has_gold_reward and t.preference_pairs() is None


def test_pairs_are_a_right_response_over_a_wrong_one(tmp_path):
    t = task(jsonl(tmp_path, ROWS))
    pairs = t.label_samples("p", ["a", "b", "c"], [0.0, 1.0, 0.0], random.Random(0))
    assert len(pairs) == 1 and pairs[0].chosen == "b" and pairs[0].rejected in ("a", "c")
    assert t.label_samples("p", ["a", "b"], [1.0, 1.0], random.Random(0)) == []  # no contrast


def test_json_numbers_are_answers_too(tmp_path):
    rows = [{"q": f"q{i}", "a": v} for i, v in enumerate([42, 2.5, 3.0, -1])]
    t = task(jsonl(tmp_path, rows))
    assert t.answers("train") + t.answers("eval") == ["42", "2.5", "3", "-1"]


def test_a_missing_answer_column_names_the_columns(tmp_path):
    path = jsonl(tmp_path, [{"q": "x", "answer": "1"}] * 3)
    assert error(path) == f"task.path={path}: no column 'a'; columns: q, answer"


def test_an_answer_the_verifier_cannot_read_names_the_line(tmp_path):
    path = jsonl(tmp_path, [*ROWS[:2], {"q": "How many?", "a": "seven"}, *ROWS[2:]])
    assert error(path) == (
        f"task.path={path} line 3: answer 'seven' is neither a plain number nor math Math-Verify can parse "
        "(task.verifier=auto); set task.verifier=exact for text answers"
    )
    assert error(path, "task.verifier=numeric") == (
        f"task.path={path} line 3: answer 'seven' has no number; task.verifier=numeric needs one"
    )
    built(path, "task.verifier=exact")  # the same answer is fine for exact match


def test_an_answer_past_floats_range_is_read_exactly_and_numeric_refuses_it(tmp_path):
    """Fortieth hunt, case 4: `1e400` (as text; a JSON number 1e400 was refused) was admitted as inf under
    auto, a row no response can get right (then refused as inf; read exactly since the forty-ninth hunt)."""
    for answer in ("1e400", "-1e400"):  # since 2026-12-03 read exactly, as an integer past 2^53 is (49th, 28)
        assert (score("auto", answer, answer), score("auto", answer, answer.replace("1e", "2e"))) == (
            1.0,
            0.0,
        )
        path = jsonl(tmp_path, [*ROWS[:2], {"q": "How many?", "a": answer}, *ROWS[2:]])
        assert "is an integer past 2^53" in error(path, "task.verifier=numeric")


def test_skip_invalid_drops_rows_whose_answer_cannot_be_read(tmp_path, caplog):
    """Forty-first hunt, case 53: the rows were dropped with no line, and summary.json, which docs/tasks.md
    says counts them, had no count (start.py records `task/skipped_rows`)."""
    path = jsonl(tmp_path, [*ROWS, {"q": "How many?", "a": "seven"}])
    with caplog.at_level(logging.WARNING, logger="align_lab"):
        spec = built(path, "task.skip_invalid=true", "task.eval_rows=2")
    assert spec.task.skipped == 1 and len(spec.task.prompts("train")) == 4  # 6 good rows - 2 held out
    [line] = [m for m in caplog.messages if "skip_invalid" in m]
    assert line == (
        "align_lab: warning: task.skip_invalid=true dropped 1 row(s) of split train; the first: "
        f"task.path={path} line 7: answer 'seven' is neither a plain number nor math Math-Verify can parse "
        "(task.verifier=auto); set task.verifier=exact for text answers"
    )


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    assert str(path) in error(path) and "empty.jsonl" in error(path)


def test_a_prompt_with_two_answers_is_refused(tmp_path):
    path = jsonl(tmp_path, [*ROWS, {"q": "What is 0 plus 1?", "a": "2"}])
    assert error(path) == (
        f"task.path={path} line 7: prompt repeats task.path={path} line 1 with another answer ('2', was '1')"
    )


def test_a_prompt_repeated_in_another_spelling_with_another_answer_is_refused(tmp_path):
    """Forty-seventh hunt, case 80: `What is 2+2?` -> 4 and `what is 2+2 ?` -> 5 both trained, no word (the
    held-out check already read them as one question)."""
    path = jsonl(tmp_path, [*ROWS, {"q": "  what is 0 PLUS 1 ?", "a": "2"}])
    assert error(path) == (
        f"task.path={path} line 7: prompt repeats task.path={path} line 1 with another answer ('2', was '1')"
    )


def test_a_prompt_repeated_with_its_answer_in_another_spelling_is_not_another_answer(tmp_path):
    """Fifty-first hunt, case 20: `2` and `2.0` (one number under auto) were refused as another answer."""
    path = jsonl(tmp_path, [*ROWS, {"q": "What is 0 plus 1?", "a": "1.0"}])
    assert built(path).task.prompts("train")  # admitted (the held-out copy left out of training)
    path = jsonl(tmp_path, [*ROWS, {"q": "What is 0 plus 1?", "a": "\\frac{2}{2}"}])  # 52nd hunt, case 29
    assert built(path).task.prompts(
        "train"
    )  # a number and Math-Verify's reading: each right against the other
    path = jsonl(tmp_path, [*ROWS, {"q": "What is 0 plus 1?", "a": "1.5"}])
    assert "with another answer ('1.5', was '1')" in error(path)


def test_an_unknown_or_unimportable_verifier_is_refused_before_the_data_is_read(tmp_path):
    missing = tmp_path / "never_read.jsonl"  # not read: the verifier is checked first
    allowed = "auto, exact, numeric, math_verify, or module:function (f(response, answer, prompt) -> float)"
    assert error(missing, "task.verifier=regex") == f"task.verifier=regex: must be {allowed}"
    assert error(missing, "task.verifier=no_such_module:f").startswith(
        "task.verifier=no_such_module:f: cannot import it (ModuleNotFoundError: "
    )


def test_the_verifier_function_source_is_in_the_fingerprint(tmp_path, monkeypatch):
    module = tmp_path / "my_score.py"
    module.write_text("def f(response, answer, prompt):\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = task(jsonl(tmp_path, ROWS), verifier="my_score:f").fingerprint()["verifier_code"]
    assert task(jsonl(tmp_path, ROWS), verifier="numeric").fingerprint()["verifier_code"] is None
    assert len(first) == 64


def test_how_long_the_verifier_is_waited_for_is_no_part_of_the_stage_keys(tmp_path):
    """task.verifier_timeout_s (user_timeouts.py) changes no label: the stages built before it came, and
    those of a resume with a longer bound, are the same."""
    fingerprints = [
        task(jsonl(tmp_path, ROWS), verifier_timeout_s=t).fingerprint() for t in (60.0, 5.0, None)
    ]
    assert fingerprints[0] == fingerprints[1] == fingerprints[2]
    assert "verifier_timeout_s" not in fingerprints[0]

    for bad in (-2, 0, float("inf"), "soon", 1e10):  # 1e10: the deadline's timestamp overflowed (39th, 61)
        with pytest.raises(
            ValueError, match=rf"verifier_timeout_s={bad}: must be a number of seconds in \(0, 1e8\]"
        ):
            task(jsonl(tmp_path, ROWS), verifier_timeout_s=bad)


def test_the_shipped_example_file_builds_with_the_documented_keys():
    spec = built(
        ROOT / "examples" / "questions.jsonl", "task.prompt_column=question", "task.answer_column=answer"
    )
    assert len(spec.task.prompts("train")) + len(spec.task.prompts("eval")) == 96


def test_training_rows_that_repeat_a_held_out_prompt_are_left_out_and_counted(tmp_path, caplog):
    """Issue 73: a duplicate row of your own data trained on held-out questions in silence."""
    path = jsonl(tmp_path, [*ROWS, ROWS[4], ROWS[0], ROWS[5]])  # 9 rows: the last 2 held out (eval_rows=2)
    t = task(path)
    assert t.prompts("eval") == ["What is 0 plus 1?", "What is 5 plus 1?"]  # lines 8 and 9
    # lines 1-7 trained before; line 1 (0 plus 1) and line 6 (5 plus 1) repeat held-out prompts
    assert t.prompts("train") == [f"What is {i} plus 1?" for i in (1, 2, 3, 4)] + ["What is 4 plus 1?"]
    assert caplog.messages == [
        f"align_lab: warning: task.path={path}: 2 training rows repeat a held-out prompt (line 1 repeats "
        "held-out line 8); left out of training, which keeps 5 rows, so evaluation scores only questions "
        "the run never trained on"
    ]
    every = jsonl(tmp_path, [ROWS[0]] * 4, "same.jsonl")  # every training row is a held-out question
    with pytest.raises(
        ValueError, match=r"every training row repeats a held-out prompt \(line 1 repeats held-out"
    ):
        task(every)


FRACTIONS = [*ROWS, {"q": "What is half of 1?", "a": "\\frac{1}{2}"}, {"q": "What is 5 over 2?", "a": "5/2"}]


def test_the_default_verifier_reads_a_latex_answer_as_its_value(tmp_path):
    """Issue 73: under the default verifier a `\\frac{1}{2}` answer is 1/2 = 0.5, not its last number 2
    (numeric's reading, which scored "5/2" and "2" right and "0.5" wrong); "5/2" is 2.5, not 2."""
    spec = built(jsonl(tmp_path, FRACTIONS), "task.eval_rows=2")
    half, five_halves = "What is half of 1?", "What is 5 over 2?"
    prompts = [half] * 4 + [five_halves] * 3
    responses = ["0.5", "$\\frac{1}{2}$", "5/2", "2", "2.5", "2", "5"]
    assert spec.task.gold_reward(prompts, responses, [True] * 7) == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    right, wrong = spec.task.gold_reward(["What is 4 plus 1?"] * 2, ["5", "5/2"], [True] * 2)
    assert (right, wrong) == (1.0, 0.0)  # a plain number is read as numeric reads it
    spec = built(jsonl(tmp_path, FRACTIONS), "task.eval_rows=2", "task.answer_format=last")
    right, wrong = spec.task.gold_reward(["What is 4 plus 1?"] * 2, ["so 5", "5/2"], [True] * 2)
    assert (right, wrong) == (1.0, 0.0)  # last: its last number, words before it aside


@pytest.mark.parametrize(
    "answer,value",
    [
        ("42", 42.0),
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", 72.0),  # GSM8K: '#### 72' stands alone
        ("$10", 10.0),  # a currency sign is not math notation
        ("50%", None),  # a percentage: Math-Verify's 1/2 (forty-first hunt, case 41: numeric's 50)
        ("\\frac{1}{2}", None),  # '{' and '}' touch the 2
        ("5/2", None),
        ("2^{10}", None),
        ("3\\pi", None),
        ("x + 1", None),
        ("(1, 2)", None),
        ("\\frac12", None),  # a letter glued before it
        (".5", None),
    ],
)
def test_a_plain_number_is_a_last_number_no_math_notation_touches(answer, value):
    assert verifiers.plain_number(answer) == value


def test_numeric_refuses_a_percentage_it_would_read_as_its_number():
    from align_lab.tasks.verifiers import reference

    with pytest.raises(ValueError) as e:
        reference("numeric", "50%", "row 1")
    assert str(e.value) == (
        "row 1: answer '50%' is not a plain number (task.verifier=numeric would read its last number, 50); "
        "set task.verifier=math_verify or auto"
    )


def test_numeric_refuses_an_answer_whose_last_number_is_not_its_value(tmp_path):
    path = jsonl(tmp_path, FRACTIONS)
    assert error(path, "task.verifier=numeric") == (
        f"task.path={path} line 7: answer '\\\\frac{{1}}{{2}}' is not a plain number "
        "(task.verifier=numeric would read its last number, 2); set task.verifier=math_verify or auto"
    )


@pytest.mark.parametrize(
    "answer, read",
    [("\u22123", -3.0), ("1e5", 100000.0), ("2.5E-3", 0.0025), ("#### 72", 72.0), ("1,024", 1024.0)],
)
def test_the_default_verifier_reads_a_typeset_minus_and_scientific_notation_as_their_value(answer, read):
    """Third fresh hunt (issue 73): under task.verifier=auto a reference "−3" (U+2212) read 3.0, so "3"
    scored right and "-3" wrong, and "1e5" read 1 (Math-Verify), in silence."""
    from align_lab.tasks.verifiers import reference

    assert reference("auto", answer, "row 1") == read


@pytest.mark.parametrize("answer, value", [("1e3", 1000), ("2.5e-3", 0.0025), ("\u22124E2", -400)])
def test_math_verify_reads_a_reference_in_scientific_notation_as_its_value(answer, value):
    """Thirty-fifth hunt, case 16: under task.verifier=math_verify a reference "1e3" read 1 ("1" scored
    right, "1000" wrong) and "2.5e-3" read 2.5, in silence; it was refused since. Fortieth hunt, case 1:
    it is written out as its decimal first, as a response's is, and read as the number it is."""
    assert score("math_verify", answer, str(value)) == 1.0 and score("math_verify", answer, answer) == 1.0
    assert score("math_verify", answer, str(value + 1)) == 0.0
    assert score("math_verify", "3.0e+0", "3") == 1.0 and score("math_verify", "3.0e+0", "4") == 0.0


@pytest.mark.parametrize("name", ["math_verify", "auto"])
@pytest.mark.parametrize(
    "answer, response, score",
    [
        ("1", "1e-9", 0.0),
        ("1", "1e300", 0.0),
        ("2.5", "2.5e-3", 0.0),
        ("1", "\\boxed{1e-9}", 0.0),
        ("1000", "1e3", 1.0),
        ("0.0025", "2.5e-3", 1.0),
        ("1000", "The answer is 1e3.", 1.0),
        ("\\frac{1}{2}", "5e-1", 1.0),
        # thirty-seventh hunt, case 2: a longer exponent, a typeset minus, a letter after it
        ("1", "1e1000", 0.0),
        ("1", "1e-0009", 0.0),
        ("1", "1e\u22129", 0.0),
        ("1", "1e-9x", 0.0),
        ("1", "1e999999", 0.0),  # past EXPONENT_WRITTEN: \infty, not a million digits
        ("0.000000001", "1e\u22129", 1.0),
        # thirty-eighth hunt, case 2: a power of ten read as its mantissa
        ("1", "1*10^-9", 0.0),
        ("5", "5*10^-3", 0.0),
        ("5", "5\\times10^-3", 0.0),
        ("1", "1\u00b710^-9", 0.0),
        ("0.005", "5*10^-3", 1.0),
        ("0.005", "5\\cdot 10^{-3}", 1.0),
        ("5000", "5*10^3", 1.0),
        # thirty-ninth hunt, case 2: the boxed answer's own brace taken by the power's ("\\boxed{5000")
        ("5000", "\\boxed{5\\times10^3}", 1.0),
        ("3000", "\\boxed{3*10^3}", 1.0),
        ("5000", "The answer is $\\boxed{5 \\times 10^3}$.", 1.0),
        ("7000", "\\frac{7\\times10^3}{1}", 1.0),
        ("0.005", "\\boxed{5 \\cdot 10^-3}", 1.0),
        # case 3: other signs of a product, a bare power, superscripts
        ("5", "5x10^-3", 0.0),
        ("0.005", "5x10^-3", 1.0),
        ("5", "5\u22c510^-3", 0.0),
        ("5", "5\u202210^-3", 0.0),
        ("10", "10^-3", 0.0),
        ("0.001", "10^-3", 1.0),
        ("5", "5*10\u207b\u00b3", 0.0),
        ("0.005", "5*10\u207b\u00b3", 1.0),
        # the thirty-eighth's nits: a minus written as an en dash, a wide hyphen, two signs
        ("1", "1e\u20139", 0.0),
        ("1", "1e\uff0d9", 0.0),
        ("1", "1e+-9", 0.0),
        ("0.000000001", "1e\u20139", 1.0),
    ],
)
def test_a_response_in_scientific_notation_is_scored_as_the_number_it_is(name, answer, response, score):
    """Thirty-sixth hunt, case 3: under task.verifier=math_verify a response "1e-9" scored 1 against the
    answer 1, "2.5e-3" against 2.5 (Math-Verify reads its first number): a hack a policy could learn."""
    from align_lab.tasks.verifiers import checker, reference

    assert checker(name)(response, reference(name, answer, "row 1"), "") == score


@pytest.mark.parametrize("answer", ["5:30", "2, 3", "1 000", "12 hours 30 minutes"])
def test_the_default_verifier_refuses_an_answer_of_several_numbers_without_math(answer):
    """These read as their last number (30, 3, 0, 30) or Math-Verify's first (5, ...), in silence."""
    from align_lab.tasks.verifiers import reference

    with pytest.raises(ValueError, match=r"^row 1: answer .* holds 2 numbers and no math notation, which"):
        reference("auto", answer, "row 1")


@pytest.mark.parametrize(
    "answer, right, wrong",
    [
        ("2^{10}", ["1024", "$2^{10}$"], ["2", "10"]),
        ("3\\pi", ["9.42477796076938", "$3\\pi$"], ["3"]),
        ("\\sqrt{2}", ["1.4142135623730951", "$\\sqrt{2}$"], ["2"]),  # was refused as "not math"
        ("\\frac{1}{2}", ["0.5", "$\\frac{1}{2}$"], ["2", "1"]),
    ],
)
@pytest.mark.parametrize("name", ["auto", "math_verify"])
def test_a_bare_latex_answer_is_read_whole_not_as_its_first_number(name, answer, right, wrong):
    """Twenty-fourth hunt, case 19: under the default verifier `2^{10}` read 2 and `3\\pi` 3 (Math-Verify
    takes a number out of undelimited text), so a response "2" scored right and "1024" wrong, in silence;
    docs/tasks.md names both as answers auto reads as their value."""
    from align_lab.tasks.verifiers import checker, reference

    gold, check = reference(name, answer, "row 1"), checker(name)
    assert [check(r, gold, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)


@pytest.mark.parametrize(
    "answer, right, wrong",
    [
        (
            "2^{10}",
            ["2^{10}", "The answer is 2^{10}.", "so 2^{10} = 1024", "It is 2^{10} I think"],
            ["2", "2^{9}"],
        ),
        ("3\\pi", ["3\\pi", "The answer is 3\\pi.", "so x = 3\\pi"], ["3", "The answer is 2\\pi."]),
        ("\\frac{1}{2}", ["\\dfrac{1}{2}", "It is \\frac{1}{2}\\text{ cm}."], ["\\frac{1}{3}", "2"]),
        ("$2$", ["2", "it is 2"], ["2^{10}"]),  # was right: Math-Verify read the bare 2^{10} as 2
    ],
)
@pytest.mark.parametrize("name", ["auto", "math_verify"])
def test_a_response_ending_in_bare_latex_is_read_whole(name, answer, right, wrong):
    """Twenty-fifth hunt, case 16: a response that wrote the reference's own bare LaTeX (`2^{10}`,
    `The answer is 3\\pi.`, `\\dfrac{1}{2}` for `\\frac{1}{2}`) scored 0: Math-Verify read its first
    number."""
    from align_lab.tasks.verifiers import checker, reference

    gold, check = reference(name, answer, "row 1"), checker(name)
    assert [check(r, gold, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)


@pytest.mark.parametrize(
    "answer, right, wrong",
    [
        (
            "32",
            ["2^{5}", "x = 2^{5}", "$2^{5}$", "\\boxed{2^{5}}", "The answer is $x = 2^{5}$.", "so 32."],
            ["5", "2^{4}"],
        ),
        # "50%" on a row of 0.5 as on a row of 1/2 (thirty-second hunt, case 48: 0 there, 1 here)
        (
            "0.5",
            ["\\frac{1}{2}", "$\\frac{1}{2}$", "1/2", "0.5", "50%", "It is 50%."],
            ["2", "\\frac{1}{3}", "5%"],
        ),
        ("50", ["50%", "50"], ["0.5%"]),
        # forty-first hunt, case 41: an answer of "50%" was read 50, and 0.5 scored wrong
        ("50%", ["0.5", "50", "50%", "\\frac{1}{2}", "It is 50%."], ["5", "0.05", "5%"]),
        # case 36's rest: a response's last group or digit was read as its value, so wrong ones scored right
        ("0", ["0", "so 0"], ["5 000", "The answer is 5 000.", "1/0", "x = 1/0"]),
        ("-1", ["-1"], ["\u221a-1", "\\sqrt{-1}"]),
        ("1000", ["1_000", "1 000", "1\u202f000", "so 1 000."], ["000", "1_0"]),
        ("1", ["1"], ["1_000", "1 000"]),
        # forty-second hunt, case 41: an apostrophe's or points' groups read as the last group
        ("0", ["0"], ["5'000", "5\u2019000", "1.000.000"]),
        ("5000", ["5'000", "5\u2019000"], ["000"]),
        ("1000000", ["1.000.000", "1 000 000"], ["0"]),
        ("5", ["\\frac{10}{2}", "10/2", "5", "(5)"], ["\\frac{1}{5}", "1/5", "2^{5}"]),
        ("2", ["2", "it is 2"], ["\\frac{1}{2}", "\\sqrt{2}", "1/2"]),
        ("#### 72", ["#### 72", "She pays $10, then $62 more: $72.", "\\boxed{72}"], ["$10"]),
        ("100000", ["1e5", "The answer is 1e5.", "10^{5}"], ["5"]),
    ],
)
def test_auto_reads_a_response_in_math_by_its_value_on_a_plain_number_row(answer, right, wrong):
    """Twenty-sixth hunt, case 5: on a plain-number row auto took numeric's rule for the response too,
    its last number: `\\frac{1}{2}` read 2 against 0.5 (scored 0), `2^{5}` read 5 (right against 5, wrong
    against 32), and pass@k and the reward followed, in silence."""
    from align_lab.tasks.verifiers import checker, reference

    gold, check = reference("auto", answer, "row 1"), checker("auto")
    assert [check(r, gold, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)


@pytest.mark.parametrize(
    "answer, right, wrong",
    [  # forty-fourth hunt, case 4: under math_verify a response's points or apostrophes grouping a number
        ("1000000", ["1.000.000", "So 1.000.000.", "1 000 000"], ["1", "1.000"]),  # read its first group
        ("5000", ["5'000", "5\u2019000", "It is 5 000."], ["5"]),
        ("1", ["1"], ["1.000.000"]),
        ("5", ["5"], ["5'000"]),
    ],
)
def test_math_verify_reads_a_number_grouped_in_threes_as_auto_and_numeric_do(answer, right, wrong):
    gold, check = verifiers.reference("math_verify", answer, "row 1"), verifiers.checker("math_verify")
    assert [check(r, gold, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)


@pytest.mark.parametrize(
    "answer, right, wrong",
    [
        (
            "(2, 3)",
            ["(2, 3)", "(2,3)", "$(2, 3)$", "\\boxed{(2, 3)}", "The answer is (2, 3)."],
            ["3", "(5, 3)"],
        ),
        ("[1, 2]", ["[1, 2]"], ["2", "[0, 2]"]),
    ],
)
@pytest.mark.parametrize("name", ["auto", "math_verify"])
def test_a_tuple_or_interval_answer_is_read_whole_not_as_its_last_number(name, answer, right, wrong):
    """Twenty-sixth hunt, case 22: `(2, 3)` was read 3, so `(5, 3)` and `3` scored right and `(2,3)` or
    `\\boxed{(2, 3)}` wrong: MATH-style coordinates and intervals trained on the last coordinate."""
    from align_lab.tasks.verifiers import checker, reference

    gold, check = reference(name, answer, "row 1"), checker(name)
    assert [check(r, gold, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)


@pytest.mark.parametrize(
    "answer, right, wrong",
    [
        ("-7", ["\u22127", "The answer is \u22127.", "-7"], ["7"]),
        ("\u22127", ["\u22127", "-7"], ["7"]),
        ("0.25", [".25", "The answer is .25", "0.25"], ["25"]),
    ],
)
@pytest.mark.parametrize("name", ["auto", "numeric", "math_verify"])
def test_a_typeset_minus_and_a_leading_dot_read_as_written_on_both_sides(name, answer, right, wrong):
    """Twenty-sixth hunt, case 23: a response `\u22127` (U+2212) scored 0 against -7 and against its own
    text; `.25` scored 0 against 0.25; `numeric` read an answer `\u22127` as 7, so `7` scored right."""
    from align_lab.tasks.verifiers import checker, reference

    gold, check = reference(name, answer, "row 1"), checker(name)
    assert [check(r, gold, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)


@pytest.mark.parametrize("name", ["auto", "numeric"])
def test_an_integer_answer_is_right_only_for_that_integer(name):
    """Twenty-sixth hunt, case 26: to 1e-9 relative, 4294967297 and 4294967300 scored right against
    4294967296 (and 1234567892 against 1234567891); a decimal answer keeps the relative tolerance."""
    from align_lab.tasks.verifiers import checker, reference

    check = checker(name)
    big, decimal = reference(name, "4294967296", "row 1"), reference(name, "0.1", "row 2")
    assert [check(r, big, "q") for r in ["4294967296", "4294967296.0", "4294967297", "4294967300"]] == [
        1,
        1,
        0,
        0,
    ]
    assert [check(r, decimal, "q") for r in ["0.1", "0.10000000001", "0.1001"]] == [1, 1, 0]


@pytest.mark.parametrize(
    "answer, right, wrong",
    [
        (
            "0.5",
            [
                "\\frac{1}{2} cups",
                "\\boxed{\\frac{1}{2}} is the final answer",
                "$\\frac{1}{2}$ cups",
                "1/2 cup",
            ],
            ["2 cups"],
        ),
        ("32", ["2^{5} apples", "$2^{5}$ apples", "\\boxed{2^{5}} in total"], ["5 apples"]),
        ("5", ["5 of them"], ["2^{5} apples", "\\frac{1}{5} of them", "$\\frac{1}{5}$ cups"]),
    ],
)
@pytest.mark.parametrize("name", ["auto", "math_verify"])
def test_an_answer_in_math_followed_by_words_is_read_by_its_value(name, answer, right, wrong):
    """Twenty-seventh hunt, case 2: a unit or a sentence after the math (`\\frac{1}{2} cups`, `\\boxed{...}
    is the final answer`) sent auto to the response's last number: `\\frac{1}{5} of them` scored right
    against 5 and `\\boxed{\\frac{1}{2}} is the final answer` wrong against 0.5."""
    from align_lab.tasks.verifiers import checker, reference

    gold, check = reference(name, answer, "row 1"), checker(name)
    assert [check(r, gold, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)


@pytest.mark.parametrize("answer", ["0.5", "\\frac{1}{2}"])
@pytest.mark.parametrize("name", ["auto", "math_verify"])
def test_an_answer_in_math_after_a_label_is_read_as_math_verify_reads_it(name, answer):
    """Twenty-eighth hunt, case 2: `Answer: \\frac{1}{2}` (the commonest prompt format) scored 0 against 0.5
    and against `\\frac{1}{2}` under auto and math_verify: the label's colon was kept with the final
    expression, read whole as the string ": \\frac{1}{2}". A minus written against its number stays."""
    from align_lab.tasks.verifiers import checker, reference

    gold, check = reference(name, answer, "row 1"), checker(name)
    right = [
        "Answer: \\frac{1}{2}",
        "Final answer: \\frac{1}{2}",
        "The answer is: \\frac{1}{2}",
        "Answer:\\frac{1}{2}",
        "**Answer:** \\frac{1}{2}",
        "Answer - \\frac{1}{2}",
        "Answer; \\frac{1}{2}",
        "Answer = \\frac{1}{2}",
        "half : \\frac{1}{2}",
        # twenty-ninth hunt, case 2: GSM8K's `#### `, arrows, a full-width colon
        "#### \\frac{1}{2}",
        "Answer -> \\frac{1}{2}",
        "Answer => \\frac{1}{2}",
        "Answer \u2192 \\frac{1}{2}",
        "Answer > \\frac{1}{2}",
        "Answer | \\frac{1}{2}",
        "Answer ~ \\frac{1}{2}",
        "Answer\uff1a\\frac{1}{2}",
        "\u7b54\u6848\uff1a\\frac{1}{2}",
    ]
    wrong = ["Answer: -\\frac{1}{2}", "Answer: \\frac{1}{3}", "#### -\\frac{1}{2}"]
    assert [check(r, gold, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)


@pytest.mark.parametrize(
    "response, final",
    [
        ("The answer is 2^{10}.", "2^{10}"),
        ("so x = 3\\pi", "x = 3\\pi"),
        ("It is \\frac{1}{2}\\text{ cm}.", "\\frac{1}{2}\\text{ cm}"),
        ("2^{10} I think", "2^{10}"),  # the words after the answer (twenty-seventh hunt, case 2)
        ("\\boxed{\\frac{1}{2}} is the final answer", "\\boxed{\\frac{1}{2}}"),
        ("$2^{5}$ apples", "$2^{5}$"),
        ("no math at all", ""),
        ("", ""),
    ],
)
def test_final_expression_is_the_math_a_response_ends_with(response, final):
    from align_lab.tasks.math_reading import final_expression

    assert final_expression(response) == final


@pytest.mark.parametrize(
    "answer, response, score",
    [
        ("-2,1", "-2.1", 0.0),  # the decimal Math-Verify read the answer as
        ("-2,1", "-2, 1", 1.0),
        ("-2,1", "1,-2", 1.0),
        ("-2,1", "\\boxed{-2,1}", 1.0),
        ("-2,1", "x = -2, 1", 1.0),
        ("1,2", "1.2", 0.0),
        ("1,2,3", "\\boxed{3,2,1}", 1.0),
        ("1,000", "1000", 1.0),  # a thousands separator stays one
        ("1,000", "The answer is 1,000.", 1.0),
        ("2", "1, 2", 0.0),
    ],
)
def test_math_verify_reads_two_solutions_written_with_a_comma_as_two(answer, response, score):
    """Thirty-ninth hunt, case 33: the answer `-2,1` (MATH's way of writing two roots) was read as the
    decimal -2.1 under task.verifier=math_verify: `-2.1` scored right, `-2, 1`, `1,-2` and the answer
    itself boxed wrong. A comma between numbers is read as a list, as Math-Verify reads it when boxed."""
    from align_lab.tasks.verifiers import checker, reference

    assert checker("math_verify")(response, reference("math_verify", answer, "row 1"), "") == score


@pytest.mark.parametrize(
    "answer, right, wrong",
    [  # fortieth hunt, case 1: read 5, 10, 5, 10; `5 x 10^3` as the symbol x (nothing could match)
        ("5\u00d710\u00b3", "5000", "5"),
        ("5 \u00d7 10\u00b3", "5000", "10"),
        ("5\u00b710^3", "5000", "5"),
        ("10\u00b3", "1000", "10"),
        ("5 x 10^3", "5000", "5"),
        ("5\u00b710\u00b3", "5000", "5"),  # case 3: refused as "no math notation", pointed to exact
        # case 66: read 2, 2, 2
        ("\u221a2", "\\sqrt{2}", "2"),
        ("2\u03c0", "2\\pi", "2"),
        ("2\u00b2", "4", "2"),
        ("+5", "5", "-5"),  # case 67: refused as no number nor math, pointed to exact
        ("\u00bd", "0.5", "1"),
        # forty-first hunt: read 8, -1, -3, 3 (and 3 under math_verify), 2
        ("\u221b8", "2", "8"),
        ("\u221a-1", "\\sqrt{-1}", "-1"),
        ("5\u22123", "2", "-3"),
        ("5-3", "2", "-3"),
        ("3!", "6", "3"),
        ("2^-1", "0.5", "2"),
        ("2\u00d73", "6", "3"),  # a product left once the power of ten is read
        ("6\u00f73", "2", "3"),
    ],
)
def test_an_answer_in_unicode_math_or_scientific_notation_is_read_as_the_number_it_is(answer, right, wrong):
    for name in ("auto", "math_verify"):
        assert score(name, answer, right) == 1.0 and score(name, answer, wrong) == 0.0, name


@pytest.mark.parametrize("answer", ["-2,1", "2,1", "12,34", "1,2345", "1,-2", "-2, 1", "0,5"])
def test_a_list_or_a_decimal_comma_as_a_plain_answer_is_refused_naming_the_list_verifier(answer):
    """Fortieth hunt, cases 2 and 66: read -21, 21, 1234, 12345, -2, 1 and 5 under auto and numeric."""
    for name in ("auto", "numeric"):
        with pytest.raises(ValueError) as e:
            verifiers.reference(name, answer, "row 1")
        assert str(e.value) == (
            f"row 1: answer {answer!r} is a list of numbers, or a decimal comma (a comma between numbers is "
            f"no thousands grouping, which takes three digits after each comma); task.verifier={name} would "
            "read it as one number: a list, set task.verifier=math_verify; a decimal, write its point"
        )
    assert verifiers.reference("auto", "1,000", "row") == 1000.0
    assert verifiers.reference("auto", "(2, 3)", "row")  # a tuple, read whole
    with pytest.raises(ValueError, match="answer '1 1/2' is a mixed number; write it in digits or LaTeX"):
        verifiers.reference("auto", "1 1/2", "row")  # case 66: read 1


@pytest.mark.parametrize(
    "name, answer, why",
    [  # forty-first hunt, cases 7-9: 1/0 admitted (zoo), `5 000` read 0 under numeric, `5'000` 5
        ("auto", "1/0", "is undefined (zoo): no response can match it"),
        ("math_verify", "0/0", "is undefined (nan): no response can match it"),
        ("numeric", "5 000", "holds 2 numbers and no math notation, which task.verifier=numeric would read"),
        ("math_verify", "5'000", "holds an apostrophe between digits (a thousands separator?); write it in"),
        ("auto", "\u22483.14", "holds '\u2248', a sign the verifiers do not read; write it in digits"),
        # forty-second hunt, cases 2 and 4: read 1.5, 2, 0, 2 and 3, each with no line
        ("auto", "1.5k", "writes its number with a scale ('k'), which the verifiers read as the number"),
        ("numeric", "2 million", "writes its number with a scale ('million'), which the verifiers read as"),
        ("auto", "1e-400", "is a number too small for a float (it reads as 0); write it in digits"),
        ("auto", "2\u2030", "holds '\u2030', a sign the verifiers do not read"),
        ("math_verify", "~3", "holds '~' before its number (approximately?), which the verifiers read as"),
        # forty-third hunt, cases 2-3: read 1, 1 and 3
        ("auto", "1_00", "holds an underscore between digits that groups no threes"),
        ("math_verify", "1__000", "holds an underscore between digits that groups no threes"),
        ("numeric", "3 dozen", "writes its number with a scale ('dozen')"),
        ("auto", "3 score", "writes its number with a scale ('score')"),
        ("auto", "2 Million", "writes its number with a scale ('Million')"),  # forty-fourth hunt, case 2
        ("numeric", "5 lakhs", "writes its number with a scale ('lakhs')"),
        ("auto", "3 grand", "writes its number with a scale ('grand')"),
        ("math_verify", "3!!", "holds a double factorial (n!!), which the verifiers read as (n!)!"),
        ("auto", "5\u2032", "holds '\u2032', a sign the verifiers do not read"),  # 5′ (feet) read 5
        ("numeric", "2432902008176640000", "is an integer past 2^53, which task.verifier=numeric compares"),
        ("auto", "5+", "ends with '+', math left unfinished"),  # read 5 (5, or 5 or more?): 2026-12-03
        ("math_verify", "x^", "ends with '^', math left unfinished"),
        # forty-seventh hunt, cases 32, 34, 51, 63: math_verify read 2, 2, 5 and text (no response right)
        (
            "math_verify",
            "2ab",
            "is read by Math-Verify as '2' alone; write it as a number or as math in LaTeX",
        ),
        ("math_verify", "3 ln 2", "writes 'ln' without its backslash, which Math-Verify reads as letters"),
        ("auto", "gcd(4,6)", "writes 'gcd' without its backslash, which Math-Verify reads as letters"),
        (
            "math_verify",
            "5 \u043c\u043b\u043d",
            "holds '\u043c\u043b\u043d', letters Math-Verify does not read",
        ),
        ("math_verify", "5 apples", "is read by Math-Verify as '5' alone"),
        # forty-eighth hunt, cases 4-7, 11, 15-17: each admitted as another value
        ("auto", "5\\text{ million}", "holds 'million' in LaTeX text, a bound or a scale"),
        ("math_verify", "5 \\text{ or more}", "holds 'or' in LaTeX text, a bound or a scale"),
        ("auto", "\\approx 5", "starts with '\\\\approx', a bound or relation, not a value"),
        ("math_verify", ">= 5", "starts with '>=', a bound or relation, not a value"),
        ("auto", "5?", "ends with '?': no definite value"),
        ("math_verify", "1, 2, \\ldots, n", "holds an ellipsis ('\\\\ldots'), which the verifiers"),
        (
            "math_verify",
            "0x1F",
            "is written in base 16, 2 or 8 ('0x1F'), which Math-Verify reads as a product",
        ),
        ("math_verify", "1.23.456", "holds '1.23.456', a number with two decimal points"),
        ("math_verify", "3e2e1", "holds two exponents ('3e2e')"),
        ("auto", "2^3^2", "stacks powers without braces"),
        # forty-ninth hunt: each admitted as another value (13-23: a command dropped, its number read)
        ("auto", "\\leqslant 5", "holds \\leqslant, a LaTeX command the verifiers do not read"),
        ("math_verify", "\\gg 5", "holds \\gg, a LaTeX command the verifiers do not read"),
        ("auto", "x \\to 5", "holds \\to, a LaTeX command the verifiers do not read"),
        ("auto", "5^{+}", "ends with '^{+}', a one-sided value, not a value"),
        ("auto", "- -5", "holds two signs ('- -5'): write the one it means"),  # 61, 85: read -5
        ("auto", "0.5e", "ends with '5e': an exponent cut off, or Euler's e?"),  # 72-73
        ("auto", "\u066b5", "holds '\u066b', a sign the verifiers do not read"),  # 77: read 5
        ("auto", "5 \\mid 6", "holds two numbers apart"),  # 95
        (
            "auto",
            "\\sqrt{2} \\approx 1.414",
            "holds \\approx, a LaTeX command the verifiers do not read",
        ),  # 50th
    ],
)
def test_an_answer_the_checker_would_misread_is_refused_naming_why(name, answer, why):
    with pytest.raises(ValueError) as e:
        verifiers.reference(name, answer, "row 1")
    assert str(e.value).startswith(f"row 1: answer {answer!r} {why}"), str(e.value)


@pytest.mark.parametrize("name", ["auto", "numeric"])
@pytest.mark.parametrize(
    "answer, word",  # each read as its number alone, in silence, until 2026-12-02: the scales no hunt had
    [  # named yet, a bound, a unit, a label (the words are an allow-list now, not a list of scales)
        ("4 quintillion", "quintillion"),
        ("1 myriad", "myriad"),
        ("about 5", "about"),
        ("at least 3", "at"),
        ("5 apples", "apples"),
        ("The answer is 5", "The"),
        ("2\u4e07", "\u4e07"),  # 2万 (20000), 3千, 2 миллиона, 2θ: read 2 and 3 (letters of other scripts)
        ("3\u5343", "\u5343"),
        (
            "2 \u043c\u0438\u043b\u043b\u0438\u043e\u043d\u0430",
            "\u043c\u0438\u043b\u043b\u0438\u043e\u043d\u0430",
        ),
        ("2\u03b8", "\u03b8"),
    ],
)
def test_an_answer_with_a_word_beside_its_number_is_refused_by_the_number_readers(name, answer, word):
    with pytest.raises(ValueError) as e:
        verifiers.reference(name, answer, "row 1")
    assert str(e.value).startswith(
        f"row 1: answer {answer!r} holds the word {word!r} beside its number, which "
        f"task.verifier={name} does not read"
    ), str(e.value)


@pytest.mark.parametrize("name", ["auto", "numeric"])
def test_a_responses_last_number_with_a_bound_negation_or_scale_beside_it_is_not_that_number(name):
    """Each of these wrong responses read as the bare number, right against 5 or 100, and `5 million` wrong
    against 5000000 (2026-12-02)."""
    wrong = ["not 5", "x \u2260 5", "x < 5", "about 5", "at least 5", "~5", "\u22485", "\u00b15", "5\u2030"]
    wrong += ["5i", "5+", "5 million", "5k", "5 thousand", "x \\neq 5", "x \\leq 5"]
    wrong += ["The answer isn't 5", "between 4 and 5", "5 >= 5", "x <= 5", "x != 5"]
    right = ["5", "The answer is 5.", "She has 5 apples.", "not 4 but 5", "Game over. 5", "x = 5", "**5**"]
    gold, check = verifiers.reference(name, "5", "row 1"), verifiers.checker(name)
    assert [check(r, gold, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)
    million = verifiers.reference(name, "5000000", "row 1")
    assert [check(r, million, "q") for r in ["5 million", "5 Million.", "5,000,000"]] == [1.0] * 3
    kelvin = verifiers.reference(name, "300", "row 1")  # a unit, no scale
    assert [check(r, kelvin, "q") for r in ["300 K", "300K", "300 k", "300k"]] == [
        1.0,
        0.0,
        1.0,
        0.0,
    ]  # 300K?
    hundred = verifiers.reference(name, "100", "row 1")
    assert [check(r, hundred, "q") for r in ["1,00", "10,0", "100", "1 hundred"]] == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("name", ["auto", "math_verify"])
def test_math_with_a_bound_or_relation_beside_it_is_no_answer_of_its_value_and_an_inequality_is_read_whole(
    name,
):
    """Math-Verify read `not 1/2`, `about 0.5`, `x < 1/2`, `about 2^{5}` as the bare value, right; and an
    answer `x > 2` undelimited as 2 (a response "2" right, `x > 2` wrong under math_verify) (2026-12-02)."""
    half, check = verifiers.reference(name, "\\frac{1}{2}", "row 1"), verifiers.checker(name)
    right, wrong = (
        ["1/2", "0.5", "Answer -> \\frac{1}{2}"],
        ["not 1/2", "about 0.5", "x < 1/2", "at least 0.5", "isn't 1/2", "isn't \\frac{1}{2}", "x != 0.5"],
    )
    assert [check(r, half, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)
    power = verifiers.reference(name, "32", "row 1")
    assert [check(r, power, "q") for r in ["2^{5}", "about 2^{5}"]] == [1.0, 0.0]
    relation = verifiers.reference(name, "x > 2", "row 1")
    right, wrong = ["x > 2", "x>2", "(2, \\infty)"], ["2", "3", "x < 2"]
    assert [check(r, relation, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)


@pytest.mark.parametrize("name", ["auto", "numeric", "math_verify"])
def test_an_alternative_ruled_out_after_the_answer_leaves_the_answer_and_an_open_end_is_none(name):
    """Forty-seventh hunt, cases 2-3: `The answer is 42, not 43.` scored 0 (its last number, 43, negated),
    `42 or more` 1."""
    gold, check = verifiers.reference(name, "42", "row 1"), verifiers.checker(name)
    right = ["The answer is 42, not 43.", "42 (not 43)", "not 41 but 42", "42 I think"]
    wrong = ["not 42", "not 42, it is 41", "42 or more", "42 or so", "42 and up", "42 or less", "42i"]
    assert [check(r, gold, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)
    if name != "numeric":
        half = verifiers.reference(name, "\\frac{1}{2}", "row 1")
        assert [check(r, half, "q") for r in ["1/2, not 1/3", "\\frac{1}{2} (not \\frac{1}{3})"]] == [
            1.0,
            1.0,
        ]


@pytest.mark.parametrize("name", ["auto", "numeric"])
def test_forty_seventh_hunts_responses_are_read_as_meant(name):
    """Cases 20-26, 41, 10, 45, 21: each scored the other way, in silence."""
    gold, check = verifiers.reference(name, "5", "row 1"), verifiers.checker(name)
    wrong = ["5 at most", "5 at least", "5 approximately", "approx. 5", "less than or equal to 5", "never 5"]
    wrong += ["5ish", "5-ish", "5 or fewer", "5^+", "5 (approximately)", "5 (approx.)", "5K", "negative 5"]
    right = ["The final answer is $\\boxed{5}$. I used 2 steps.", "<answer>5</answer>\nThat took 2 steps."]
    right += ["#### 5\nCheck: 5 + 2 = 7"]
    assert [check(r, gold, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)
    negative = verifiers.reference(name, "-5", "row 1")
    assert [check(r, negative, "q") for r in ["negative 5", "minus 5", "-5"]] == [1.0] * 3
    money = verifiers.reference(name, "-1234", "row 1")
    assert [check(r, money, "q") for r in ["-$1,234", "$-1,234"]] == [1.0, 1.0]


@pytest.mark.parametrize(
    "answer, why",  # forty-seventh hunt, cases 28-30, 15, 11: read 2, 2023, a symbol, 2 - 7*d*o, 0
    [
        ("2pi", "holds the word 'pi' beside its number"),
        ("2023-01-05", "is a date, which the verifiers read as one of its numbers"),
        ("\\text{20 minutes}", "holds the word 'minutes' beside its number"),
        ("2 \\pmod{7}", "holds a congruence (\\pmod), which the verifiers do not read"),
        ("\\text{(C)}", "is text in LaTeX, which a response `(C)` or `C` would not match"),
        # case 69 (case 68, 10^{1000}: the task refuses an infinite reference, verifiable_data.example)
        ("\\frac{1}{", "has unbalanced braces; write it as LaTeX that closes"),
    ],
)
def test_forty_seventh_hunts_answers_are_refused_naming_why(answer, why):
    with pytest.raises(ValueError) as e:
        verifiers.reference("auto", answer, "row 1")
    assert str(e.value).startswith(f"row 1: answer {answer!r} {why}"), str(e.value)


def test_forty_seventh_hunts_last_cases_fixed_in_the_session():
    """Cases 53, 65, 85: an answer `x >= 2` read as 2; `10\\%` wrong against 10; `5 i.e. five` read as 5i."""
    check = verifiers.checker("auto")
    relation = verifiers.reference("auto", "x >= 2", "row 1")
    assert [check(r, relation, "q") for r in ["x >= 2", "x \\geq 2", "2"]] == [1.0, 1.0, 0.0]
    ten, five = verifiers.reference("auto", "10", "row 1"), verifiers.reference("auto", "5", "row 1")
    assert check("10\\%", ten, "q") == 1.0 and check("5 i.e. five", five, "q") == 1.0


def test_gsm8ks_answer_column_is_read_by_its_final_answer():
    """Forty-seventh hunt, case 47: GSM8K's own answer column (its worked solution, then `#### 72`) was
    refused for the words of its solution."""
    solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72"
    assert verifiers.reference("auto", solution, "row 1") == 72.0


def test_an_answer_with_a_latex_command_is_no_plain_number():
    """`\\log_2 8` was the plain number 8 under auto: a response "8" right, "3" wrong (2026-12-02)."""
    gold, check = verifiers.reference("auto", "\\log_2 8", "row 1"), verifiers.checker("auto")
    assert [check(r, gold, "q") for r in ["3", "\\log_2 8", "8"]] == [1.0, 1.0, 0.0]


@pytest.mark.parametrize("name", ["auto", "numeric"])
@pytest.mark.parametrize("answer", ["5 m", "2 x", "(C) 5"])
def test_a_letter_beside_an_answers_number_with_no_math_is_refused_as_a_unit_or_a_variable(name, answer):
    """`5 m` was 5 under auto, and `2x` 2 (a response `3x+2` right against it): a unit, or a product?"""
    with pytest.raises(ValueError, match=r"^row 1: answer .* holds the letter '[mxC]' beside its number"):
        verifiers.reference(name, answer, "row 1")


@pytest.mark.parametrize("name", ["auto", "math_verify"])
@pytest.mark.parametrize("answer", ["3x+2", "3x + 2", "$3x+2$"])
def test_an_answer_in_a_variable_is_read_whole_not_as_its_first_number(name, answer):
    """Math-Verify read an undelimited `3x+2` as 3, so "3" scored right and `$3x+2$` wrong; typeset took
    the plus of `3x + 2` for a sign (3x*2); `x+1` was refused as no math (2026-12-02)."""
    gold, check = verifiers.reference(name, answer, "row 1"), verifiers.checker(name)
    right, wrong = ["3x+2", "$3x+2$", "The answer is 3x + 2.", "2 + 3x"], ["3", "2", "3x", "5x"]
    assert [check(r, gold, "q") for r in right + wrong] == [1.0] * len(right) + [0.0] * len(wrong)
    assert check("x+1", verifiers.reference(name, "x+1", "row 1"), "q") == 1.0
    assert check("2x", verifiers.reference(name, "2x", "row 1"), "q") == 1.0
    assert check("2", verifiers.reference(name, "2x", "row 1"), "q") == 0.0


@pytest.mark.parametrize(
    "answer",
    [
        "#### 72",
        "$10",
        "x = 5",
        "x \\in [-2,7]",
        "\\frac{1}{2}x",
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        "3\\pi",
        "\\sin(2)",
        "5\\text{ cm}",
        "\\ln 2",
    ],
)
def test_math_words_latex_commands_and_latex_text_are_no_refused_words(answer):
    assert verifiers.reference("auto", answer, "row 1") is not None


def test_numeric_reads_a_responses_scientific_notation_as_its_answers_and_a_sign_before_a_number_is_none():
    """Forty-first hunt, cases 10 and 12: under numeric an answer `1e3` was 1000 and the response `1e3`
    scored 0; under math_verify `The answer is +5.` scored 0 against 5."""
    sci = "5\u00d710\u00b3"
    assert score("numeric", "1e3", "1e3") == 1.0 and score("numeric", sci, sci) == 1.0
    assert score("math_verify", "5", "The answer is +5.") == 1.0
    assert score("math_verify", "7", "2 +5 = 7") == 1.0
    emphases = ("**+5**", "The answer is **+5**.", "*+5*", "(+5)", "(5)", "*5*")  # 42nd hunt, 6
    for emphasised in (*emphases, "__5__", "_5_", "__+5__", "The answer is __5__.", "`5`"):  # 43rd hunt, 4
        assert score("math_verify", "5", emphasised) == 1.0, emphasised
    assert score("math_verify", "24", "2*3*4") == 1.0  # a product's stars are no emphasis
    # forty-third hunt, cases 37, 38, 40, 45: each scored the other way, in silence
    assert score("auto", "3!", "3!") == 1.0 and score("math_verify", "3!", "3!") == 1.0
    assert score("math_verify", "5", "<think>7</think><answer>5</answer>") == 1.0
    assert score("math_verify", "5", "<answer>5</answer>") == 1.0
    for percent in ("50 percent", "50 per cent", "50pct"):
        assert score("auto", percent, "0.5") == 1.0 and score("math_verify", percent, "0.5") == 1.0, percent
    assert score("auto", "50\uff05", "0.5") == 1.0  # a full-width percent sign (forty-fourth hunt, case 3)
    assert score("auto", "3\uff01", "6") == 1.0 and score("auto", "6", "3\uff01") == 1.0  # a full-width !
    big = "2432902008176640000"  # 20!: its float's neighbours were right under auto
    assert score("auto", big, big) == 1.0 and score("auto", big, "2432902008176640001") == 0.0
    assert score("math_verify", "1000", "1_000") == 1.0 and score("auto", "1_000", "1000") == 1.0  # case 3
    assert score("exact", "5\u00d710\u00b3 Paris", "5\u00d710\u00b3 paris") == 1.0  # exact: as written
    assert verifiers.reference("exact", "5\u00d710\u00b3 \u03c0", "row") == "5\u00d710\u00b3 \u03c0"


@pytest.mark.parametrize(
    "answer, response, expected",
    [  # forty-first hunt, case 36: on plain-number rows, wrong responses scored right by their last number
        ("-3", "5-3", 0.0),
        ("2", "5-3", 1.0),
        ("8", "\u221b8", 0.0),
        ("2", "2^-1", 0.0),
        ("7", "3 + 4 = 7", 1.0),  # the final answer, not the arithmetic before it
    ],
)
def test_a_responses_final_arithmetic_or_unicode_math_is_read_as_its_value_on_a_plain_number_row(
    answer, response, expected
):
    assert score("auto", answer, response) == expected


@pytest.mark.parametrize("name", ["auto", "math_verify", "numeric"])
def test_a_number_grouped_by_points_is_one_number_in_an_answer(name):
    """`2.500.000` was refused under auto as two numbers (forty-seventh hunt, case 90) and read as 2.5 by
    math_verify: two points are no decimal point, as a response's `1.000.000` reads."""
    assert score(name, "2.500.000", "2500000") == 1.0
    assert score(name, "2.500.000", "2.5") == 0.0


def test_math_in_letters_is_read_whole_by_math_verify():
    """An answer `2xy` was read as 2 by math_verify (a response `2` right): read between `$...$` it is
    2*x*y, so under the default answer format a response `2xy` is right and `2` wrong; `\\gcd(4,6)` is 2."""
    from align_lab.tasks.answer_format import format_checker

    check, gold = format_checker("math_verify", "marked"), verifiers.reference("math_verify", "2xy", "row")
    assert (check("2xy", gold, "p"), check("2", gold, "p")) == (1.0, 0.0)
    assert score("math_verify", "\\gcd(4,6)", "2") == 1.0


def test_a_thin_space_groups_threes_in_an_answer():
    """`5\\,000` (LaTeX's thin space between groups, as MATH writes it) was admitted as 0 (forty-eighth
    hunt, case 14): every right answer scored 0."""
    assert verifiers.reference("auto", "5\\,000", "row") == 5000.0
    assert score("auto", "5\\,000", "5000") == 1.0


@pytest.mark.parametrize(
    "answer, value",
    [("- 5", -5.0), ("\u2212 5", -5.0), ("- 5.5", -5.5), ("\\mathbf{5}", 5.0), ("\\text{5}", 5.0)],
)
def test_a_spaced_minus_is_the_sign_and_a_bold_number_the_number(answer, value):
    """Forty-eighth hunt, cases 35-36, 39, 48: `- 5` was admitted as +5 under auto and math_verify, and
    `\\mathbf{5}` as math, so a response `5` (its value) was read another way than `\\mathbf{5}`."""
    assert verifiers.reference("auto", answer, "row") == value
    assert score("math_verify", answer, str(value)) == 1.0
    assert score("math_verify", answer, str(-value)) == 0.0


@pytest.mark.parametrize(
    "answer, value",
    [("|-5|", 5.0), ("\u20133", -3.0), ("\uff0d3", -3.0), ("-(-5)", 5.0)],  # 49th hunt, 67, 81, 89, 99-100
)
def test_bars_and_typeset_dashes_are_read_as_meant_in_an_answer(answer, value):
    """`|-5|` was read as -5 (numeric too), `–3` and `－3` as +3: a right response scored 0."""
    assert score("auto", answer, str(value)) == 1.0
    assert score("auto", answer, str(-value)) == 0.0
    with pytest.raises(ValueError):
        verifiers.reference("numeric", "|-5|", "row")


def test_an_answer_of_invisible_characters_is_empty(tmp_path):
    """Forty-ninth hunt, cases 31, 34: a NUL or a zero-width space alone was admitted under exact."""
    path = jsonl(tmp_path, [*ROWS[:2], {"q": "How many?", "a": "\u200b"}, *ROWS[2:]])
    assert error(path, "task.verifier=exact").endswith("line 3: column 'a' holds invisible characters only")
