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


def test_another_judges_address_is_the_key_the_refusal_names_not_a_may_change_key_beside_it(tmp_path):
    """Hunt of 2026-12-04, r5c: reward.url respelled (localhost for 127.0.0.1) refused a completed run as
    "another config", naming no key, its only way out deleting the run's results."""
    from align_lab.run.completed import another_config, first_difference

    config = {"train": {"steps": 2}, "hardware": {"num_threads": 2}, "reward": {"url": "http://127.0.0.1:1/"}}
    (tmp_path / "config.resolved.yaml").write_text(yaml.safe_dump(config))
    asked = config | {"hardware": {"num_threads": 1}, "reward": {"url": "http://localhost:1/"}}
    assert first_difference(asked, tmp_path) == ("reward.url", "http://127.0.0.1:1/", "http://localhost:1/")
    line = str(another_config(asked, tmp_path, {"status": "completed"}))
    assert (
        line.endswith(
            "(reward.url=http://127.0.0.1:1/ there, http://localhost:1/ here); choose another folder, or "
            "ask it with reward.url=http://127.0.0.1:1/ to see its results"
        )
        and "delete" not in line
    )
    (tmp_path / "config.resolved.yaml").unlink()  # lost: which keys differ cannot be told
    assert first_difference(asked, tmp_path) is None
    assert "is missing, so which keys differ cannot be told" in str(another_config(asked, tmp_path, {}))
