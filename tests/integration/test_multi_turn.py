"""Multi-turn runs through the real run entry on the toy world (docs/environments.md): a short GRPO run
with an environment given by its `_target_` completes (an episode that never says done ends at
env.max_turns), and a bad environment (a step that raises, answers a non-string, hangs, or grows the
context past the model's limit) ends the run in one line naming the environment and the turn, with
the checkpoint and the metrics of the step before it kept."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from align_lab.envs.base import LastTurn, Step
from align_lab.run.summary import RunStopped
from align_lab.train.checkpoint_io import checkpoint_step
from tests.conftest import run_in_process

ROWS = 16  # train.rollout_size of tests/conftest.py's SMALL: episodes a step


class Probe:
    """A test environment: answers the first turn with "1 + 1 =" (a tool call, reward 0.25), then
    says done (mode ok) or never does (never_done); from the second step on (after `fail_after`
    episodes), mode raises / non_string / hangs / grows misbehaves at turn 1."""

    multi_turn = True

    def __init__(self, mode="ok", max_turns=3, step_timeout_s=5.0, fail_after=ROWS):
        self.mode, self.max_turns, self.step_timeout_s, self.fail_after = (
            mode,
            max_turns,
            step_timeout_s,
            fail_after,
        )
        self.started = 0

    def start(self, prompt):
        self.started += 1
        return ProbeEpisode(self.mode if self.started > self.fail_after else "ok")


class ProbeEpisode(LastTurn):
    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def step(self, turn):
        self.turns.append(turn)
        if self.mode == "raises":
            raise RuntimeError("the game server is down")  # GAME_DOWN_LINE
        if self.mode == "non_string":
            return Step(observation=42)
        if self.mode == "hangs":
            time.sleep(120)
        if self.mode == "grows":
            return Step(observation=" ".join(["one"] * 80))
        if len(self.turns) == 1 or self.mode == "never_done":
            return Step(observation="1 + 1 =", reward=0.25, tool_call=True)
        return Step(done=True)


def overrides(mode: str, *extra: str) -> list[str]:
    return [
        "algo=grpo",
        "task=toy_arith",
        "reward=gold",
        f"env._target_={__name__}.Probe",
        f"+env.mode={mode}",
        *extra,
    ]


def test_a_multi_turn_grpo_run_completes(tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    summary = run_in_process(
        overrides("never_done", "+env.max_turns=2", "train.eval_every=2"), run_dir, cache_dir
    )
    assert summary["status"] == "completed"
    assert 1 <= summary["eval/turns"] <= 2 and 0 <= summary["eval/tool_calls"] <= 2
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "train/reward" in x] == [1, 2, 3]
    record = json.loads((run_dir / "eval_samples.jsonl").read_text().splitlines()[0])
    assert {"transcript", "turns", "tool_calls"} <= set(record)
    config = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
    assert config["env"] == {"_target_": f"{__name__}.Probe", "mode": "never_done", "max_turns": 2}


DOWN = f"{__file__}:{next(i for i, x in enumerate(open(__file__), 1) if '# GAME_DOWN_LINE' in x)}"


@pytest.mark.parametrize(
    "mode,extra,message",
    [
        (
            "raises",
            [],
            f"error: env=Probe: turn 1: step raised RuntimeError: the game server is down at {DOWN}",
        ),
        ("non_string", [], "error: env=Probe: turn 1: step's observation is a int; must be a string"),
        (
            "hangs",
            ["+env.step_timeout_s=1"],
            "error: env=Probe: turn 1: step took longer than env.step_timeout_s=1",
        ),
        ("grows", [], "error: env=Probe: turn 1: the context holds "),
    ],
)
def test_a_bad_environment_ends_the_run_in_one_line_and_keeps_the_earlier_step(
    mode, extra, message, tmp_path, cache_dir
):
    run_dir = tmp_path / "run"
    with pytest.raises(RunStopped) as e:
        run_in_process(overrides(mode, *extra), run_dir, cache_dir)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert checkpoint_step(run_dir / "checkpoints") == 1  # the first step's checkpoint survives
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "train/reward" in x] == [1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == str(e.value).removeprefix("error: ")


def test_env_max_turns_below_one_is_one_line_before_any_compute(tmp_path, cache_dir):
    from align_lab.config import ConfigError

    with pytest.raises(ConfigError, match=r"^env.max_turns=0: must be an integer >= 1 \(env=Probe\)$"):
        run_in_process(overrides("ok", "+env.max_turns=0"), tmp_path / "run", cache_dir)
    assert not (tmp_path / "run").exists()


def docs_example() -> tuple[str, list[str]]:
    """docs/environments.md's "Your own environment": its my_envs.py and its command's overrides."""
    from tests.conftest import ROOT

    page = (ROOT / "docs" / "environments.md").read_text()
    section = page.split("## Your own environment")[1].split("\n## ")[0]
    blocks = section.split("```")
    code = next(b for b in blocks if b.startswith("python\n# my_envs.py")).removeprefix("python\n")
    command = next(b for b in blocks if b.strip().startswith("python -m align_lab")).split()
    return code, command[3:]


def test_the_docs_own_environment_example_runs_as_written(tmp_path, cache_dir, monkeypatch):
    code, overrides = docs_example()
    (tmp_path / "my_envs.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))  # `python -m align_lab` imports from where it runs
    small = ["task.n_games=40", "task.n_demonstrations=256", "train.steps=2"]  # the size only
    summary = run_in_process([*overrides, *small], tmp_path / "run", cache_dir)
    assert summary["status"] == "completed"
    config = yaml.safe_load((tmp_path / "run" / "config.resolved.yaml").read_text())
    assert config["env"] == {"_target_": "my_envs.StrictGame", "max_turns": 5, "bonus": 0.5}
