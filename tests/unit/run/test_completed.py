"""run/completed.py: a completed run asked again is the same run where only what a resume may change
changed (fifteenth hunt), but not with another judge's address (sixteenth hunt: "this run was already
completed" for a judge the run never asked)."""

from __future__ import annotations

import yaml

from align_lab.run.completed import SAME_RUN, completed_as_asked, same_run_digest
from align_lab.run.resumable import config_digest


def test_a_completed_run_is_the_same_run_with_other_threads_not_with_another_judge(tmp_path):
    config = {
        "train": {"steps": 2},
        "hardware": {"num_threads": 2},
        "reward": {"url": "http://127.0.0.1:1/score", "timeout_s": 30},
    }
    (tmp_path / "config.resolved.yaml").write_text(yaml.safe_dump(config))
    summary = {"status": "completed", "config_digest": config_digest(config)}
    threads = config | {"hardware": {"num_threads": 1}}
    slower = config | {"reward": config["reward"] | {"timeout_s": 60}}
    assert completed_as_asked(threads, tmp_path, summary) and completed_as_asked(slower, tmp_path, summary)
    judge = config | {"reward": config["reward"] | {"url": "http://127.0.0.1:2/score"}}
    longer = config | {"train": {"steps": 3}}
    assert not completed_as_asked(judge, tmp_path, summary)
    assert not completed_as_asked(longer, tmp_path, summary)


def test_a_completed_run_that_lost_its_config_file_is_told_by_its_summary(tmp_path):
    """Sixteenth hunt, case 51: a completed run whose config.resolved.yaml was deleted, asked with only a
    may-change key, was "another config"; summary.json's same_run digest tells it (and refuses another)."""
    config = {"train": {"steps": 2}, "hardware": {"num_threads": 2}, "reward": {"url": "http://h:1/s"}}
    summary = {
        "status": "completed",
        "config_digest": config_digest(config),
        SAME_RUN: same_run_digest(config),
    }
    threads = config | {"hardware": {"num_threads": 1}}
    assert completed_as_asked(threads, tmp_path, summary)
    (tmp_path / "config.resolved.yaml").mkdir()  # a folder where the file was: damaged the same way
    assert completed_as_asked(threads, tmp_path, summary)
    for other in (config | {"train": {"steps": 3}}, config | {"reward": {"url": "http://h:2/s"}}):
        assert not completed_as_asked(other, tmp_path, summary)
    assert not completed_as_asked(threads, tmp_path, {k: v for k, v in summary.items() if k != SAME_RUN})
