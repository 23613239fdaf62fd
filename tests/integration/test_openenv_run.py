"""env=openenv trains: two steps of a toy run (the default world, reward=gold) through the real run entry,
each episode played in-process by the echo environment that the OpenEnv package writes (`openenv init`,
tests/unit/envs/test_openenv_hub.py). The echo environment is never done, so every episode plays
env.max_turns=2 turns."""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import openenv_site

openenv_site()  # .openenv where scripts/test.sh installed it (scripts/setup_openenv.sh)
pytest.importorskip(
    "openenv.core.env_server.interfaces", reason="env=openenv needs openenv-core (docs/environments.md)"
)

from tests.conftest import run_in_process  # noqa: E402
from tests.unit.envs.test_openenv_hub import ECHO  # noqa: E402


@pytest.fixture
def echo(tmp_path, monkeypatch):
    """The package's echo environment (`openenv init echo_toy`), importable by the run."""
    from openenv.cli.commands.init import init

    init("echo_toy", output_dir=str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    return ECHO


def test_a_toy_run_trains_two_steps_on_the_echo_environment(echo, tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    summary = run_in_process(
        ["env=openenv", f"env.environment={echo}", "reward=gold", "train.steps=2"], run_dir, cache_dir
    )
    assert summary["status"] == "completed"
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "train/loss" in x]
    assert [x["step"] for x in steps] == [1, 2]
    assert all(math.isfinite(x["train/loss"]) for x in steps)
    records = [json.loads(x) for x in (run_dir / "eval_samples.jsonl").read_text().splitlines()]
    assert max(r["turns"] for r in records) == 2  # never done: every episode plays env.max_turns=2
