"""Your own data files read as you wrote them (tasks/data_files.py), and held-out rows that repeat a
question (tasks/hf_data.py distinct): the thirty-first hunt's cases 27, 32-35 and 55."""

from __future__ import annotations

import json

import pytest

from align_lab.tasks.verifiable_data import VerifiableData

ROWS = [{"q": f"What is {i} plus 1?", "a": str(i + 1)} for i in range(6)]


def task(path, **keys) -> VerifiableData:
    return VerifiableData(path=str(path), prompt_column="q", answer_column="a", eval_rows=2, **keys)


def test_a_parquet_float32_answer_is_its_shortest_decimal_not_its_float64_widening(tmp_path):
    """Thirty-second hunt, case 71: a float32 answer column (pandas' and numpy's common downcast) gave
    references like 0.30000001192092896; the right answer 0.3 scored 0 under auto and exact, in silence."""
    import numpy
    import pandas

    path = tmp_path / "f32.parquet"
    answers = numpy.array([0.1, 0.2, 0.3, 1.5, 2.0, 0.7], dtype=numpy.float32)
    pandas.DataFrame({"q": [r["q"] for r in ROWS], "a": answers}).to_parquet(path)
    for verifier in ("exact", "auto"):
        t = task(path, verifier=verifier)
        assert t.answers("train") + t.answers("eval") == ["0.1", "0.2", "0.3", "1.5", "2", "0.7"], verifier
        assert t.gold_reward([ROWS[2]["q"]] * 2, ["0.3", "0.30000001192092896"], [True] * 2)[0] == 1.0


def test_a_csvs_cells_are_read_as_written_not_as_numbers_or_missing(tmp_path):
    """Case 34: "007" was read as 7 (pandas' type inference), so under task.verifier=exact the answer as
    written scored 0; case 35: an answer `None` or `NA` was "column 'a' is missing"."""
    path = tmp_path / "codes.csv"
    answers = ["007", "042", "None", "NA", "0.50", "null"]
    path.write_text("q,a\n" + "".join(f"what is code {i} ?,{a}\n" for i, a in enumerate(answers)))
    t = task(path, verifier="exact")
    assert t.answers("train") + t.answers("eval") == answers
    prompts = ["what is code 0 ?"] * 2
    assert t.gold_reward(prompts, ["007", "7"], [True, True]) == [1.0, 0.0]


def test_a_jsonl_integer_past_int64_is_its_own_value_not_a_rounded_float(tmp_path):
    """Case 55: pyarrow made the column float64, and 12345678901234567891 was scored as
    12345678901234567168: the right answer scored 0 under exact, a wrong one 1 under numeric."""
    big = 12345678901234567891
    rows = [*ROWS[:4], {"q": "what is big ?", "a": big}, {"q": "what is big 2 ?", "a": big + 2}]
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = task(path, verifier="exact")
    assert t.answers("eval") == [str(big), str(big + 2)]
    assert t.gold_reward(["what is big ?"] * 2, [str(big), "12345678901234567168"], [True] * 2) == [1.0, 0.0]


@pytest.mark.parametrize(
    "line, said",
    [
        ('{"q": "what is big ?", "a": 1e400}', "line 4: column 'a' is inf (NaN, Infinity, or a number past"),
        ('{"q": "broken", "a": 3', "line 4: not valid JSON (Expecting ',' delimiter at column 23)"),
        # thirty-seventh hunt's nits: json's reason cut at its "at" (the position said apart)
        ('{"q": "a\x00b", "a": 3}', "line 4: not valid JSON (Invalid control character at column 9)"),
        ("[1, 2]", "line 4: a JSON list, not an object of columns"),
        ('{"q": "what is 1 plus 1 ?", "a": 99, "a": 2}', "line 4: column 'a' given twice"),  # case 68
    ],
    ids=["1e400", "torn", "control_character", "not_an_object", "a_key_twice"],
)
def test_a_line_python_cannot_read_as_a_row_is_one_line_naming_it(tmp_path, capfd, line, said):
    """Case 27: 1e400 was `not valid JSON lines` (every line parses), after datasets' two lines of its
    own naming a 0-based row; case 33: a torn line was named right, after the same two lines."""
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:3]) + line + "\n" + json.dumps(ROWS[4]))
    with pytest.raises(ValueError) as e:
        task(path)
    assert str(e.value) == f"path={path} {said}" or str(e.value).startswith(f"path={path} {said}")
    assert "Failed to load JSON" not in capfd.readouterr().err


@pytest.mark.parametrize("columns", [False, True], ids=["array", "columns"])
def test_a_json_files_row_or_column_given_twice_is_one_line_naming_it(tmp_path, columns):
    """A .json array whose row names a column twice (or columns named twice) was read keeping the last,
    as a jsonl line once was (thirty-first hunt, case 68: lines alone were checked)."""
    rows = json.dumps(ROWS[:4], indent=2)[:-1] + ',\n  {"q": "what is 1 plus 1 ?", "a": 99, "a": 2}\n]'
    answers = json.dumps([r["a"] for r in ROWS])
    path = tmp_path / "d.json"
    path.write_text(
        f'{{"q": {json.dumps([r["q"] for r in ROWS])}, "a": {answers}, "a": {answers}}}' if columns else rows
    )
    with pytest.raises(ValueError) as e:
        task(path)
    assert str(e.value) == f"path={path}: column 'a' given twice in a row (which one was meant?)"


def test_a_json_dict_of_columns_of_unequal_lengths_is_one_line_naming_them(tmp_path):
    """Thirty-second hunt, case 47: read as one row of lists, blamed on `line 1: column 'q' is list`."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"q": [r["q"] for r in ROWS], "a": [r["a"] for r in ROWS][:-1]}))
    with pytest.raises(ValueError) as e:
        task(path)
    n = len(ROWS)
    assert (
        str(e.value)
        == f"path={path}: its columns differ in length ('q' {n}, 'a' {n - 1} values); each needs one a row"
    )


def test_a_json_array_a_dict_of_columns_and_a_byte_order_mark_are_rows_too(tmp_path):
    array = tmp_path / "a.json"
    array.write_text(json.dumps(ROWS, indent=2))
    columns = tmp_path / "c.json"
    columns.write_text(json.dumps({"q": [r["q"] for r in ROWS], "a": [r["a"] for r in ROWS]}))
    marked = tmp_path / "m.jsonl"
    marked.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\r\n" for r in ROWS).encode())
    for path in (array, columns, marked):
        t = task(path)
        assert t.prompts("train") + t.prompts("eval") == [r["q"] for r in ROWS], path
    assert task(array).where("eval", 0).endswith("row 5") and task(marked).where("eval", 0).endswith("line 5")


def test_held_out_rows_that_repeat_a_question_are_scored_once_and_said(tmp_path, caplog):
    """Case 32: four held-out rows of one question were scored, and compared, as four questions."""
    rows = [*ROWS, ROWS[5], ROWS[5], ROWS[5]]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = VerifiableData(path=str(path), prompt_column="q", answer_column="a", eval_rows=4)
    assert t.prompts("eval") == ["What is 5 plus 1?"]
    assert caplog.messages == [
        f"align_lab: warning: task.path={path}: 3 held-out rows repeat another held-out prompt (line 7 "
        "repeats line 6); left out, so evaluation scores each of its 1 questions once",
    ]
