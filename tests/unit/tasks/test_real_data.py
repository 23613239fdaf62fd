"""Bad dataset input ends at build (before any compute) with one line naming the file and the row."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from align_lab.config import ConfigError
from align_lab.run.admission import spec_from_config
from align_lab.run.cross_checks import check_run
from tests.conftest import compose


def build_task(path, *extra):
    cfg, names = compose(["task=hf_prefs", f"task.path={path}", "cache_dir=/nonexistent", *extra])
    return spec_from_config(cfg, names)


def error(path, *extra) -> str:
    with pytest.raises(ConfigError) as e:
        build_task(path, *extra)
    assert "\n" not in str(e.value)
    return str(e.value)


def jsonl(tmp_path, rows: list[dict], name="d.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GOOD = [{"prompt": f"p{i}", "chosen": "a b", "rejected": "c d"} for i in range(4)]


def test_a_column_missing_from_the_file_names_the_columns_there(tmp_path):
    path = jsonl(tmp_path, [{"prompt": "p", "chosen": "a"}] * 3)
    assert error(path) == f"task.path={path}: no column 'rejected'; columns: prompt, chosen"


def test_a_value_missing_from_one_line_names_the_line(tmp_path):
    path = jsonl(tmp_path, [*GOOD[:2], {"prompt": "p", "chosen": "a"}, *GOOD[2:]])
    assert error(path) == f"task.path={path} line 3: column 'rejected' is missing or null (no value)"
    path = jsonl(tmp_path, [*GOOD[:2], {"prompt": "p", "chosen": "a", "rejected": None}, *GOOD[2:]])
    assert error(path) == f"task.path={path} line 3: column 'rejected' is missing or null (no value)"


def test_an_empty_prompt_names_the_line_after_blank_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps(r) for r in GOOD[:2]] + ["", json.dumps({**GOOD[2], "prompt": "  "})]
    path.write_text("\n".join(lines) + "\n")  # the blank line 3 is skipped, the bad row is line 4
    assert error(path) == f"task.path={path} line 4: column 'prompt' is empty"


def test_a_chosen_equal_to_its_rejected_names_the_parquet_row(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame([*GOOD[:3], {"prompt": "p", "chosen": "same", "rejected": "same"}]).to_parquet(path)
    assert error(path) == f"task.path={path} row 4: column 'chosen' equals 'rejected'"


def test_skip_invalid_drops_bad_rows_instead(tmp_path):
    path = jsonl(tmp_path, [*GOOD, {"prompt": "p", "chosen": "x", "rejected": "x"}])
    spec = build_task(path, "task.skip_invalid=true", "task.eval_rows=1")
    assert spec.task.skipped == 1 and len(spec.task.prompts("train")) == 3


def test_an_empty_csv_cell_names_the_files_line(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame([*GOOD, {"prompt": "", "chosen": "a", "rejected": "b"}]).to_csv(path, index=False)
    cfg, names = compose(["task=hf_prompts", f"task.path={path}", "cache_dir=/nonexistent"])
    with pytest.raises(ConfigError) as e:
        spec_from_config(cfg, names)
    # its cell is there, and empty: read as written, not as a missing value (thirty-first hunt, case 35);
    # the 5th row is the file's line 6, below its header (thirty-third hunt, case 65: said as "row 5")
    assert str(e.value) == f"task.path={path} line 6: column 'prompt' is empty"
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0], '"a\nquestion over\nthree lines",x,y', *text[1:]]) + "\n")
    with pytest.raises(ConfigError) as e:  # a quoted cell over three lines: the bad row is line 9
        spec_from_config(*compose(["task=hf_prompts", f"task.path={path}", "cache_dir=/nonexistent"]))
    assert str(e.value) == f"task.path={path} line 9: column 'prompt' is empty"


@pytest.mark.parametrize(
    "name,content,expected",
    [
        ("d.jsonl", '{"prompt": "p", "chosen": "a"}\n{"prompt": oops}\n', "line 2: not valid JSON"),
        ("d.parquet", "not a parquet file", ": unreadable as parquet ("),
        ("d.txt", "x", ": unknown file type '.txt'; allowed: .jsonl, .json, .parquet, .csv"),
    ],
)
def test_an_unreadable_file_is_one_line(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    message = error(path)
    assert message.startswith(f"task.path={path}") and expected in message, message


def test_a_folder_given_as_the_data_file_is_said_to_be_one(tmp_path):
    """Thirty-eighth hunt, case 31: a folder (a partitioned parquet dataset's) was `unknown file type ''`."""
    (tmp_path / "ds").mkdir()
    message = error(tmp_path / "ds")
    assert (
        message
        == f"task.path={tmp_path / 'ds'}: a folder, not a file; give one file (.jsonl, .json, .parquet, .csv)"
    )


def test_a_link_named_like_a_data_file_is_read_by_its_name(tmp_path):
    """Twentieth hunt, case 3: a `.jsonl` link to a blob without a suffix (the HF hub's cache, git-annex,
    DVC) was refused as "unknown file type ''": the format was the link target's."""
    blob = jsonl(tmp_path, GOOD, name="5f3a9c")
    (tmp_path / "d.jsonl").symlink_to(blob)
    assert len(build_task(tmp_path / "d.jsonl", "task.eval_rows=1").task.prompts("train")) == 3
    (tmp_path / "d.txt").symlink_to(blob)
    assert error(tmp_path / "d.txt").endswith(
        ": unknown file type '.txt'; allowed: .jsonl, .json, .parquet, .csv"
    )


def test_a_missing_file_is_one_line(tmp_path):
    assert error(tmp_path / "none.jsonl") == f"task.path={tmp_path / 'none.jsonl'}: no such file"
    (tmp_path / "dir.jsonl").mkdir()  # seventh hunt: a folder named like a file said "no such file"
    assert error(tmp_path / "dir.jsonl") == f"task.path={tmp_path / 'dir.jsonl'}: a folder, not a file"
    os.mkfifo(tmp_path / "pipe.jsonl")  # thirty-fourth hunt, case 76: a named pipe said "no such file"
    assert error(tmp_path / "pipe.jsonl") == (
        f"task.path={tmp_path / 'pipe.jsonl'}: a named pipe or device, not a file: write what it gives to a "
        "file first, and name that"
    )
    read, write = os.pipe()  # bash's `task.path=<(cat q.jsonl)`: /dev/fd/63, no suffix (hunt 76, s2: it was
    try:  # "unknown file type ''")
        assert error(f"/dev/fd/{read}") == (
            f"task.path=/dev/fd/{read}: a named pipe or device, not a file: write what it gives to a file "
            "first, and name that"
        )
    finally:
        os.close(read), os.close(write)


def test_a_hub_name_without_network_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = error("nobody-align-lab/no-such-dataset")
    assert message.startswith(
        "task.path=nobody-align-lab/no-such-dataset: not a local file, and loading it from the Hugging Face "
        "Hub needs network"
    ), message


def test_a_prompt_longer_than_the_model_limit_names_the_line(tmp_path, hf_assets):
    more = [{**r, "prompt": f"{r['prompt']} more"} for r in GOOD]  # not the held-out prompts again
    rows = [*GOOD, {"prompt": " ".join(["river"] * 30), "chosen": "a", "rejected": "b"}, *more]
    path = jsonl(tmp_path, rows)
    model = ["model=hf", f"model.name_or_path={hf_assets.policy}", "model.max_prompt_tokens=16"]
    spec = build_task(path, *model)
    with pytest.raises(ConfigError) as e:
        check_run(spec)
    # BOS + "user :" + 30 words + "assistant :" in the chat template = 35 tokens
    limit = "must be <= model.max_prompt_tokens=16"
    assert str(e.value) == f"task.path={path} line 5: prompt has 35 tokens; {limit}"


def test_hh_transcripts_split_into_prompt_and_responses(tmp_path):
    hh = [  # four prompts: the held-out ones are not trained on again
        {"chosen": f"\n\nHuman: hi{i}\n\nAssistant: a b", "rejected": f"\n\nHuman: hi{i}\n\nAssistant: c"}
        for i in ("", 1, 2, 3)
    ]
    path = jsonl(tmp_path, hh)
    spec = build_task(path, "task=hh_rlhf", "task.eval_split=null", "task.skip_invalid=false")
    pair = spec.task.preference_pairs()[0]
    assert (pair.prompt, pair.chosen, pair.rejected) == ("\n\nHuman: hi\n\nAssistant:", " a b", " c")


def test_a_real_text_task_needs_a_pretrained_model(tmp_path):
    spec = build_task(jsonl(tmp_path, GOOD))
    with pytest.raises(ConfigError) as e:
        check_run(spec)
    assert str(e.value).startswith("task=hf_prefs: real text needs model=hf")


@pytest.mark.parametrize(
    "choices,needs",
    [
        (["algo=dpo", "reward=function", "reward.path=align_lab.rewards.function:word_count"], "algo=dpo"),
        (["algo=reinforce_pp", "reward=learned_rm"], "reward=learned_rm"),
    ],
)
def test_a_pair_loss_or_learned_reward_needs_pairs(tmp_path, hf_assets, choices, needs):
    path = tmp_path / "p.parquet"
    pd.DataFrame([{"prompt": f"p{i}"} for i in range(4)]).to_parquet(path)
    model = ["model=hf", f"model.name_or_path={hf_assets.policy}"]
    cfg, names = compose(["task=hf_prompts", f"task.path={path}", *model, *choices])
    with pytest.raises(ConfigError) as e:
        check_run(spec_from_config(cfg, names))
    assert str(e.value) == f"{needs}: needs preference pairs; task=hf_prompts has none (use task=hf_prefs)"


@pytest.mark.parametrize("name", ["d.jsonl", "d.csv"])
def test_undecodable_text_names_the_file_line_and_byte(tmp_path, name):
    path = tmp_path / name
    good = '{"prompt": "p", "chosen": "a"}\n' if name.endswith("jsonl") else "prompt,chosen\np,a\n"
    path.write_bytes(good.encode() + b"caf\xe9 latin-1\n")  # a Latin-1 e-acute: not UTF-8
    message = error(path)
    line = 2 if name.endswith("jsonl") else 3
    assert (
        message == f"task.path={path} line {line}: not UTF-8 text (byte 0xe9 at column 4); save it as UTF-8"
    )


def test_kto_on_unpaired_samples_needs_a_task_that_samples_them(tmp_path, hf_assets):
    model = ["model=hf", f"model.name_or_path={hf_assets.policy}", "reward=function"]
    model.append("reward.path=align_lab.rewards.function:word_count")
    spec = build_task(jsonl(tmp_path, GOOD), *model, "algo=kto", "algo.desirable_threshold=0.5")
    with pytest.raises(ConfigError) as e:
        check_run(spec)
    assert str(e.value) == (
        "algo.desirable_threshold=0.5: labels responses the SFT policy samples (task.n_pairs x "
        "task.pair_samples); task=hf_prefs is a dataset task and samples none (null: KTO on its pairs)"
    )


@pytest.mark.parametrize("kind", ["hf_prompts", "hf_prefs", "verifiable_data"])
def test_every_task_of_your_file_leaves_out_training_rows_that_repeat_a_held_out_prompt(
    kind, tmp_path, caplog
):
    """Issue 73 hunt: the held-out check was verifiable_data's alone, so task=hf_prompts (and hf_prefs, its
    presets) with a duplicate row trained on a held-out prompt in silence; and a repeat that differs only
    in whitespace (a trailing space) was not one. Now HFData's, for every task of your own file."""
    from align_lab.tasks.hf_data import HFPrefs, HFPrompts
    from align_lab.tasks.verifiable_data import VerifiableData

    rows = [
        {"prompt": f"p{i} q", "response": "a b", "chosen": "a b", "rejected": "c d", "answer": "1"}
        for i in range(6)
    ]
    rows = [*rows[:4], {**rows[4], "prompt": "p4  q "}, rows[5]]  # line 5: held-out line 5's prompt again
    rows += [rows[5], {**rows[3], "prompt": "p4 q"}]  # held out (eval_rows=2): lines 7 and 8
    path = jsonl(tmp_path, rows)
    make = {"hf_prompts": HFPrompts, "hf_prefs": HFPrefs, "verifiable_data": VerifiableData}[kind]
    keys = {"verifier": "exact"} if kind == "verifiable_data" else {}
    if kind == "hf_prompts":
        keys["response_column"] = "response"
    t = make(path=str(path), eval_rows=2, **keys)
    assert [e.prompt for e in t.examples("train")] == ["p0 q", "p1 q", "p2 q", "p3 q"]
    assert caplog.messages == [
        f"align_lab: warning: task.path={path}: 2 training rows repeat a held-out prompt (line 5 repeats "
        "held-out line 8); left out of training, which keeps 4 rows, so evaluation scores only questions "
        "the run never trained on"
    ]


def test_a_repeat_of_a_held_out_question_up_to_case_and_a_space_before_punctuation_is_left_out(
    tmp_path, caplog
):
    """Issue 73 fresh hunt: `what is 2+2 ?` held out and `What is 2+2?` in training was trained on (only
    whitespace runs were made one space); now case and a space before punctuation are aside too."""
    from align_lab.tasks.verifiable_data import VerifiableData

    rows = [{"question": f"What is {i}+{i}?", "answer": str(2 * i)} for i in range(1, 6)]
    rows += [{"question": "what is 2+2 ?", "answer": "4"}, {"question": "WHAT IS 3+3 ?", "answer": "6"}]
    path = jsonl(tmp_path, rows)
    t = VerifiableData(path=str(path), eval_rows=2, prompt_column="question", verifier="exact")
    assert [e.prompt for e in t.examples("train")] == ["What is 1+1?", "What is 4+4?", "What is 5+5?"]
    assert caplog.messages == [
        f"align_lab: warning: task.path={path}: 2 training rows repeat a held-out prompt (line 2 repeats "
        "held-out line 6); left out of training, which keeps 3 rows, so evaluation scores only questions "
        "the run never trained on"
    ]


@pytest.mark.parametrize(
    "held_out",
    [  # no mark, zero-width, NFKC; the fifth hunt: wrapped in quotes or `**`, `。`, curly quotes
        "What is 2+2",
        "What is 2\u200b+2?",
        "Ｗhat is ２+2?",
        "What is 2+2?!",
        '"What is 2+2?"',
        "**What is 2+2?**",
        "What is 2+2。",
        "\u201cWhat is 2+2?\u201d",
        "(What is 2+2?)",  # the sixth hunt: wrapped in brackets
    ],
)
def test_a_repeat_of_a_held_out_question_up_to_unicode_form_and_its_closing_mark_is_left_out(
    tmp_path, held_out
):
    """Issue 73 fourth hunt: a held-out repeat of `What is 2+2?` without its question mark, with a
    zero-width space inside or with full-width letters (NFKC-equal) was trained on in silence."""
    from align_lab.tasks.hf_data import same_prompt
    from align_lab.tasks.verifiable_data import VerifiableData

    assert same_prompt(held_out) == same_prompt("What is 2+2?")
    assert same_prompt("What is 2+2?") != same_prompt("What is 2+3?")
    assert same_prompt("What is 2-2?") != same_prompt("What is 2+2?")  # math is never punctuation aside
    assert same_prompt("-3 + 5 = ?") != same_prompt("3 + 5 = ?")  # a sign at the start stays
    assert same_prompt("(1+2)*(3+4)") != same_prompt("1+2)*(3+4")  # brackets that are the math stay
    assert same_prompt("Dara\u2019s age?") == same_prompt("Dara's age?")  # a curly apostrophe
    rows = [{"question": f"What is {i}+{i}?", "answer": str(2 * i)} for i in range(1, 6)]
    rows += [{"question": held_out, "answer": "4"}, {"question": "What is 9+9?", "answer": "18"}]
    t = VerifiableData(path=str(jsonl(tmp_path, rows)), eval_rows=2, prompt_column="question")
    assert "What is 2+2?" not in [e.prompt for e in t.examples("train")]
