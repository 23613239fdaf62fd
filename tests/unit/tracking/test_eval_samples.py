"""eval_samples.jsonl: appended per evaluation, cut on resume like metrics.jsonl, read tolerantly,
texts capped; W&B's eval/samples table read back from a real offline run's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from align_lab.tracking import JsonlTracker, MultiTracker
from align_lab.tracking.samples import SAMPLES_FILE, cap_texts, read_samples
from align_lab.tracking.wandb_tracker import SAMPLES_KEY
from tests.unit.tracking.test_tracking import _wandb_tracker, offline_wandb  # noqa: F401 (a fixture)
from tests.wandb_files import find_wandb_files, wandb_history


def rows(n: int, tag: str = "") -> list[dict]:
    return [{"prompt_id": i, "sample": 0, "response": f"r{i}{tag}", "kl": 0.5 * i} for i in range(n)]


def evaluate_at(tracker, steps, n: int = 2, tag: str = "") -> None:
    for step in steps:
        tracker.log({"train/kl": 0.1}, step=step)
        if step % 2 == 0:  # an evaluation every 2 steps
            tracker.samples(rows(n, tag), step=step)


def test_each_evaluation_appends_its_records_with_their_step(tmp_path: Path) -> None:
    tracker = JsonlTracker(tmp_path)
    evaluate_at(tracker, range(1, 5))
    text = (tmp_path / SAMPLES_FILE).read_text()  # on disk before close
    tracker.close()
    records, skipped = read_samples(tmp_path / SAMPLES_FILE)
    assert skipped == 0 and len(text.splitlines()) == 4  # steps 2 and 4, 2 records each
    assert [(r["step"], r["prompt_id"]) for r in records] == [(2, 0), (2, 1), (4, 0), (4, 1)]
    assert records[1] == {"step": 2, "prompt_id": 1, "sample": 0, "response": "r1", "kl": 0.5}


def test_a_resumed_run_rewrites_the_steps_it_evaluates_again_once(tmp_path: Path) -> None:
    # evaluated at 2, 4, 6; checkpointed at 3; the resumed run (start_step 4) evaluates 4 and 6 again
    first = JsonlTracker(tmp_path)
    evaluate_at(first, range(1, 7), tag="a")
    first.close()
    with open(tmp_path / SAMPLES_FILE, "a") as f:
        f.write('{"step": 8, "prompt_id": 0, "respo')  # killed mid-line
    resumed = JsonlTracker(tmp_path, start_step=4)
    evaluate_at(resumed, range(4, 7), tag="b")
    resumed.close()
    records, skipped = read_samples(tmp_path / SAMPLES_FILE)
    assert skipped == 0  # the torn line went with the cut
    assert [(r["step"], r["response"][-1]) for r in records] == [(2, "a"), (2, "a"), (4, "b"), (4, "b")] + [
        (6, "b"),
        (6, "b"),
    ]


def test_reading_skips_torn_and_damaged_lines_and_counts_them(tmp_path: Path) -> None:
    path = tmp_path / SAMPLES_FILE
    assert read_samples(path) == ([], 0)  # no file: no records, nothing skipped
    path.write_text('{"step": 1, "kl": 0.5}\nnot json\n["a list"]\n{"kl": 1}\n{"step": 2, "kl": 0.25}\n{"st')
    assert read_samples(path) == ([{"step": 1, "kl": 0.5}, {"step": 2, "kl": 0.25}], 4)


def test_texts_are_capped_and_marked_and_non_finite_numbers_become_null(tmp_path: Path) -> None:
    nan = float("nan")
    records = [
        {"prompt": "2 + 2 =", "response": "4", "sft_response": "five", "gold_reward": 1.0},
        {"prompt": "abcdef", "response": "x" * 10, "sft_response": "", "gold_reward": nan},
        {"prompt": "1 =", "response": "1", "sft_response": "12345", "gold_reward": 0.0},
    ]
    # 5 characters: "2 + 2 =" (7) -> "2 + 2"; "abcdef" -> "abcde", 10 x's -> 5; the third fits as it is
    assert list(cap_texts(records, 5)) == [
        {"prompt": "2 + 2", "response": "4", "sft_response": "five", "gold_reward": 1.0, "truncated": True},
        {"prompt": "abcde", "response": "xxxxx", "sft_response": "", "gold_reward": nan, "truncated": True},
        records[2],
    ]
    assert cap_texts(records, 0)[2] == {
        "prompt": "",
        "response": "",
        "sft_response": "",
        "gold_reward": 0.0,
        "truncated": True,
    }
    tracker = JsonlTracker(tmp_path)
    tracker.samples(cap_texts(records, 5), step=3)
    tracker.close()
    lines = (tmp_path / SAMPLES_FILE).read_text().splitlines()
    assert json.loads(lines[1])["gold_reward"] is None  # JSON has no NaN: null


@pytest.mark.slow  # fresh interpreters or a whole W&B run: CI's tier (docs/testing.md)
@pytest.mark.usefixtures("offline_wandb")
def test_wandb_logs_each_evaluation_as_a_table_beside_the_jsonl(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    tracker = MultiTracker([JsonlTracker(run_dir), _wandb_tracker(run_dir)])
    tracker.log({"eval/kl": 0.5}, step=2)
    tracker.samples(
        [
            {"prompt_id": 0, "response": "a b", "gold_reward": None},
            {"prompt_id": 1, "response": "c", "gold_reward": 1.0, "truncated": True},
        ],
        step=2,
    )
    tracker.log({"eval/kl": 0.25}, step=4)
    tracker.close()
    assert [r["step"] for r in read_samples(run_dir / SAMPLES_FILE)[0]] == [2, 2]
    (path,) = find_wandb_files(run_dir)
    history = wandb_history(path)
    assert [h["_step"] for h in history] == [2, 4]
    assert history[0][f"{SAMPLES_KEY}._type"] == "table-file" and history[0][f"{SAMPLES_KEY}.nrows"] == 2
    table = json.loads((path.parent / "files" / history[0][f"{SAMPLES_KEY}.path"]).read_text())
    # every field of any record is a column, in first-seen order; a record without one: null
    assert table["columns"] == ["step", "prompt_id", "response", "gold_reward", "truncated"]
    assert table["data"] == [[2, 0, "a b", None, None], [2, 1, "c", 1.0, True]]
