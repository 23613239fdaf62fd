"""train.stop_at on the toy world through the real run entry: a threshold every evaluation reaches
(eval/win_rate_vs_sft >= 0: a rate is never below 0) stops a run of 4 steps at its first evaluation,
step 2 (train.eval_every=2); the summary and the checkpoint say so, and a resume says it is complete."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from align_lab.config import ConfigError
from tests.conftest import SMALL, compose, run_in_process

STOP = [
    "train.steps=4",
    "train.eval_every=2",
    "train.stop_at.metric=eval/win_rate_vs_sft",
    "train.stop_at.value=0",
]


def admit(run_dir, cache_dir, *overrides):
    from align_lab.run.admission import admit_spec, spec_from_config

    cfg, names = compose([*SMALL, f"cache_dir={cache_dir}", *overrides])
    return admit_spec(spec_from_config(cfg, names), run_dir, here=False)


def saved(run_dir) -> dict:
    from align_lab.train.checkpoint_io import checkpoint_file

    return torch.load(checkpoint_file(run_dir / "checkpoints"), weights_only=False)


def logged_steps(run_dir) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, cache_dir):
    """A grpo run of 4 steps stopped at step 2 by train.stop_at, and the lines it printed."""
    run_dir = tmp_path_factory.mktemp("stop_at") / "run"
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    log = logging.getLogger("align_lab")
    level, _ = log.level, log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        summary = run_in_process(["algo=grpo", *STOP], run_dir, cache_dir)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    return run_dir, summary, lines


@pytest.mark.fast
def test_a_reached_threshold_stops_the_run_and_says_why(stopped):
    run_dir, summary, lines = stopped
    stop = summary["stopped"]
    assert summary["status"] == "completed"
    assert {k: stop[k] for k in ("reason", "metric", "threshold", "step", "steps")} == {
        "reason": "stop_at",
        "metric": "eval/win_rate_vs_sft",
        "threshold": 0.0,
        "step": 2,
        "steps": 4,
    }
    assert stop["value"] == summary["eval/win_rate_vs_sft"]  # the final evaluation is the stop's
    assert json.loads((run_dir / "summary.json").read_text())["stopped"] == stop
    assert logged_steps(run_dir) == [1, 2]  # no step after the stop
    assert stop["generated_tokens"] > 0  # what compare lines it up by
    done = next(line for line in lines if " completed" in line)
    assert " completed, stopped at step 2 of 4 (train.stop_at: eval/win_rate_vs_sft = " in done
    # the checkpoint is written at the stop step, its record inside
    state = saved(run_dir)
    assert state["step"] == 2 and state["stopped"] == stop


@pytest.mark.fast
def test_a_resume_of_a_stopped_run_says_it_is_complete(stopped, cache_dir, caplog):
    from align_lab.run.execute import run

    run_dir, summary, _ = stopped
    job = admit(run_dir, cache_dir, "algo=grpo", *STOP)
    assert job.completed
    with caplog.at_level(logging.INFO, logger="align_lab"):
        assert run(job) == summary
    assert "align_lab: this run was already completed (stopped at step 2 of 4 (train.stop_at: " in caplog.text
    assert "); nothing to do" in caplog.text


@pytest.mark.fast
def test_a_rerun_of_a_stopped_run_with_another_threshold_is_refused_in_one_line(stopped, cache_dir):
    run_dir, summary, _ = stopped
    with pytest.raises(ConfigError) as e:
        admit(run_dir, cache_dir, "algo=grpo", *STOP[:-1], "train.stop_at.value=0.9")
    value = summary["stopped"]["value"]
    assert str(e.value) == (
        f"train.stop_at.value=0.9: hydra.run.dir={run_dir} holds this run completed, stopped at step 2 of 4 "
        f"(train.stop_at: eval/win_rate_vs_sft = {value:.3g} >= 0), with train.stop_at.value=0 (a "
        "completed run is not extended or cut); choose another hydra.run.dir to train it with this threshold"
    )


@pytest.mark.fast
def test_a_checkpoint_at_a_stop_finishes_without_training_further(stopped, cache_dir, tmp_path):
    """The process died after the stop's checkpoint, before its summary said completed: the resume with
    the same threshold trains no step, re-evaluates and completes; another threshold is refused."""
    import shutil

    from align_lab.run.execute import run
    from align_lab.run.run_folder import RunFolder

    run_dir = tmp_path / "run"
    shutil.copytree(stopped[0], run_dir)
    folder = RunFolder(run_dir)
    folder.write_summary(folder.read_summary() | {"status": "interrupted"})
    with pytest.raises(ConfigError, match=r"^train.stop_at=eval/win_rate_vs_sft >= 0.5: the checkpoint in "):
        admit(run_dir, cache_dir, "algo=grpo", *STOP[:-1], "train.stop_at.value=0.5")
    summary = run(admit(run_dir, cache_dir, "algo=grpo", *STOP))
    assert summary["status"] == "completed" and summary["stopped"] == stopped[1]["stopped"]
    assert logged_steps(run_dir) == [1, 2] and saved(run_dir)["step"] == 2


@pytest.mark.fast
def test_the_pairwise_loop_stops_too(tmp_path, cache_dir):
    summary = run_in_process(["algo=dpo", *STOP], tmp_path / "run", cache_dir)
    assert summary["stopped"]["step"] == 2 and logged_steps(tmp_path / "run") == [1, 2]
    assert saved(tmp_path / "run")["step"] == 2
