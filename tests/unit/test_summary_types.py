"""A summary.json whose JSON parses but whose fields hold other types than align_lab writes (`{"status": 5,
"algo": [1]}`, a seed that is a string) is damaged, as a torn one is: compare, study status, a resume and
a teacher read it with the line a summary that is not JSON gets (issue 73's fresh hunt)."""

from __future__ import annotations

import json
import re

import pytest

from align_lab.config import ConfigError
from align_lab.folder import summary_problem

TORN = '{"status": "compl'
WRONG_TYPES = {
    "status_and_algo": {"status": 5, "algo": [1]},
    "a_string_seed": {"status": "running", "config_digest": "abc", "seed": "0", "threads": 4},
    "a_list_of_names": {"status": "completed", "config_digest": "abc", "names": ["algo"]},
    # ninth hunt: "completed in nan s", time/total_s nan
    "a_nan_segment": {"status": "interrupted", "config_digest": "abc", "segments_s": [float("nan")]},
}


def folder_with(tmp_path, text: str):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "summary.json").write_text(text)
    return run_dir


@pytest.mark.parametrize("case", list(WRONG_TYPES))
def test_a_summary_with_fields_of_other_types_reads_as_a_torn_one(case, tmp_path):
    """Before: compare read status '5' (or a run of seed '0'), study status called it running, a resume
    of the string-seeded one was admitted, a teacher's status 5 said `its summary.json says 5`."""
    from align_lab.results.runs import load_run
    from align_lab.run.folder_checks import check_folder
    from align_lab.run.run_folder import RunFolder
    from align_lab.run.teacher_run import finished_teacher
    from align_lab.study.status import folder_state

    def seen(text: str) -> tuple:
        run_dir = folder_with(tmp_path / str(len(list(tmp_path.iterdir()))), text)
        run = load_run(run_dir)
        state = folder_state(0, run_dir)
        with pytest.raises(ConfigError) as resume:
            check_folder(None, run_dir)  # refused before the spec is read
        with pytest.raises(ConfigError) as teacher:
            finished_teacher(str(run_dir))
        lines = (run.status, run.error.split(":")[0], run.summary, state.state, state.detail)
        said = (str(resume.value), str(teacher.value), RunFolder(run_dir).read_summary())
        # the resume and teacher lines say why it is damaged (JSON's error, or the field's): that aside
        return tuple(
            re.sub(r"damaged \(.*?\)(?=[;,] )", "damaged (why)", str(x).replace(str(run_dir), "<run>"))
            for x in (*lines, *said)
        )

    assert seen(json.dumps(WRONG_TYPES[case])) == seen(TORN)
    assert seen(TORN)[:2] == ("unknown", "summary.json unreadable")
    with pytest.raises(ConfigError, match=r"summary.json damaged \(status is 5, not a string\); move "):
        check_folder(None, folder_with(tmp_path / "why", json.dumps(WRONG_TYPES["status_and_algo"])))


def test_the_types_align_lab_writes_are_a_summary_and_the_problem_names_the_field():
    written = {"status": "completed", "algo": None, "seed": 3, "started": 1.5, "names": {"algo": "dpo"}}
    assert summary_problem(written | {"eval/gold_reward": float("nan"), "segment_threads": [None, 2]}) is None
    assert summary_problem({"status": 5, "algo": [1]}) == "status is 5, not a string"
    assert summary_problem({"status": "running", "seed": True}) == "seed is true, not an integer"
    assert summary_problem([1]) == "not a mapping (a list)"
    assert summary_problem({"status": "running", "segments_s": [1e308, 1e308]}).startswith(
        "started or segments_s"
    )
    assert summary_problem({"status": "running", "segments_s": [1.0, -2.0]}) == (
        "started or segments_s is [null, 1.0, -2.0], not a time in seconds"
    )
