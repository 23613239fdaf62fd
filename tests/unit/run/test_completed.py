"""run/completed.py: a completed run asked again is the same run where only what a resume may change
changed (fifteenth hunt), but not with another judge's address (sixteenth hunt: "this run was already
completed" for a judge the run never asked)."""

from __future__ import annotations

import yaml

from align_lab.run.completed import completed_as_asked
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
