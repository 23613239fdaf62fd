"""A resume's asking the user's reward again (user_probes.py) as a user meets it (thirteenth hunt): Ctrl-C
while a slow reward is asked was a 21-frame KeyboardInterrupt traceback, and nothing said while it waited;
with resume_changed_inputs=true and a changed input file the reward was not asked at all (its other
scores neither said nor recorded)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SMALL, compose, killed_after_step_2

REWARD = "probe_faults13"
SOURCE = """import os
import signal
import subprocess
import time


def score(prompts, responses):
    if os.environ.get("PROBE_FAULTS13") == "interrupt":
        raise KeyboardInterrupt  # as Ctrl-C lands while a slow judge is asked again
    if os.environ.get("PROBE_FAULTS13") == "sigterm":  # a scheduler's, a timeout's, as it is asked
        subprocess.run(["kill", "-TERM", str(os.getpid())], check=True)  # from another process
        time.sleep(30)
    if os.environ.get("PROBE_FAULTS13") == "slow":
        time.sleep(4)
    return [W * len(r) / 10 for r in responses]


W = 1.0
"""


@pytest.fixture
def stopped(tmp_path, cache_dir, monkeypatch):
    """A toy run of a reward module of the user's, stopped after its step-2 checkpoint; its keys."""

    home = tmp_path / "code"
    home.mkdir()
    (home / f"{REWARD}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(home))
    monkeypatch.delitem(sys.modules, REWARD, raising=False)  # this test's own file, imported afresh
    monkeypatch.delenv("PROBE_FAULTS13", raising=False)
    keys = [
        *(k for k in SMALL if not k.startswith("reward.")),
        "reward=function",
        f"reward.path={REWARD}:score",
        "train.steps=4",
        f"cache_dir={cache_dir}",
    ]
    killed_after_step_2(admit(keys, tmp_path / "run"))
    return home, keys, tmp_path / "run"


def admit(keys, run_dir, *more):
    from align_lab.run.admission import admit_spec, spec_from_config

    cfg, names = compose([*keys, *more])
    return admit_spec(spec_from_config(cfg, names), run_dir)


def test_an_edited_module_and_other_scores_are_both_said_and_recorded_when_allowed(stopped, monkeypatch):
    home, keys, run_dir = stopped
    (home / f"{REWARD}.py").write_text(SOURCE.replace("W = 1.0", "W = 10.0"))
    monkeypatch.delitem(sys.modules, REWARD)  # imported again, as a resume's new process does
    job = admit(keys, run_dir, "resume_changed_inputs=true")
    assert sorted(job.changed_inputs) == ["reward.path", f"scores reward.path={REWARD}:score"]


def test_a_slow_reward_asked_again_is_said_while_it_is(stopped, monkeypatch, caplog):
    _, keys, run_dir = stopped
    monkeypatch.setenv("PROBE_FAULTS13", "slow")
    with caplog.at_level(logging.INFO, logger="align_lab"):
        admit(keys, run_dir, "resume_changed_inputs=true")  # the variable the reward reads changed
    assert f"align_lab: resume: asking reward.path={REWARD}:score again for what it gave" in caplog.text


@pytest.mark.parametrize("how,name", [("interrupt", "SIGINT"), ("sigterm", "SIGTERM")])
def test_ctrl_c_while_a_reward_is_asked_again_is_one_line_and_the_same_command_resumes(stopped, how, name):
    """And a SIGTERM (fifteenth hunt: rc 143 and no line at all)."""
    home, keys, run_dir = stopped
    command = [
        sys.executable,
        "-m",
        "align_lab",
        *keys,
        f"hydra.run.dir={run_dir}",
        "resume_changed_inputs=true",
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{home}", "PROBE_FAULTS13": how}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    code = 128 + getattr(signal, name)
    assert done.returncode == code and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f"align_lab: interrupted by {name} while the run was admitted, before any compute (nothing was "
        "written): rerun the same command"
    )
    env.pop("PROBE_FAULTS13")
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
