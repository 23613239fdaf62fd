"""Issue 73, twelfth hunt case 23: an environment of your own (`env._target_=...`) whose answers depend on
a file it reads where no check sees it (a parquet file, read in C, at a path built from pieces), edited
between a kill and the same command, resumed in silence. Each checkpoint keeps the episodes the
environment answered last, and a resume plays them again on a replica of it (envs/base.py replayed,
user_probes.py): other answers are refused in one line naming the environment; the same resume."""

from __future__ import annotations

import json

import pytest

from align_lab.config import ConfigError
from tests.conftest import SMALL, compose, killed_after_step_2

ENV = "resume_env_probe13"  # a module name of this file's alone (sys.modules is the session's)
SOURCE = '''from pathlib import Path

import pandas as pd

from align_lab.envs.base import LastTurn, Step


class Scaled:
    """One turn, rewarded by its length times a weight read from a parquet file beside this folder."""

    multi_turn, max_turns, step_timeout_s = True, 1, 30.0

    def __init__(self):
        self.started = 0  # state of its own: a replay on resume must not move it

    def start(self, prompt):
        self.started += 1
        where = Path(__file__).resolve().parent.parent / "edata13" / "w.parquet"
        return Episode(float(pd.read_parquet(where)["W"][0]))


class Episode(LastTurn):
    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def step(self, turn):
        self.turns.append(turn)
        return Step(observation="", reward=self.weight * len(turn) / 10, done=True)
'''


@pytest.fixture
def env_home(tmp_path, monkeypatch):
    """A folder holding the environment's module (importable) and, one level up, its weight file."""
    pd = pytest.importorskip("pandas")
    home = tmp_path / "code"
    home.mkdir()
    (home / f"{ENV}.py").write_text(SOURCE)
    (tmp_path / "edata13").mkdir()
    monkeypatch.syspath_prepend(str(home))

    def weigh(w: float) -> None:
        pd.DataFrame({"W": [w]}).to_parquet(tmp_path / "edata13" / "w.parquet")

    weigh(1.0)
    return weigh


KEYS = [
    *(k for k in SMALL if not k.startswith("reward.")),
    "algo=grpo",
    "task=toy_arith",
    "reward=gold",
    f"env._target_={ENV}.Scaled",
    "train.steps=4",
]


def admit(run_dir, cache_dir, *more):
    from align_lab.run.admission import admit_spec, spec_from_config

    cfg, names = compose([*KEYS, f"cache_dir={cache_dir}", *more])
    return admit_spec(spec_from_config(cfg, names), run_dir)


def stop_after_step_2(run_dir, cache_dir, monkeypatch) -> None:
    killed_after_step_2(admit(run_dir, cache_dir))


def files(run_dir) -> dict:
    return {p: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_an_environment_that_answers_its_last_episodes_otherwise_on_resume_is_refused(
    env_home, tmp_path, cache_dir, monkeypatch
):
    run_dir = tmp_path / "run"
    stop_after_step_2(run_dir, cache_dir, monkeypatch)
    before = files(run_dir)
    env_home(10.0)
    with pytest.raises(ConfigError) as e:
        admit(run_dir, cache_dir)
    assert str(e.value).startswith(
        "resume_changed_inputs=false: env=Scaled answers the turns it answered last before the checkpoint "
        f"in {run_dir / 'checkpoints'} otherwise now ("
    ), str(e.value)
    assert files(run_dir) == before  # nothing written
    job = admit(run_dir, cache_dir, "resume_changed_inputs=true")
    assert list(job.changed_inputs) == ["scores env=Scaled"]


def test_an_unchanged_environment_resumes_to_the_metrics_of_an_uninterrupted_run(
    env_home, tmp_path, cache_dir, monkeypatch
):
    """The replay runs on a replica: the run's own environment keeps its state (its episode counter),
    and the resumed run logs exactly what the uninterrupted one logs."""
    from align_lab.run.execute import run

    assert run(admit(tmp_path / "straight", cache_dir))["status"] == "completed"
    stop_after_step_2(tmp_path / "resumed", cache_dir, monkeypatch)
    job = admit(tmp_path / "resumed", cache_dir)
    assert job.changed_inputs == {}
    assert job.spec.env.started == 0  # replayed on a replica
    assert run(job)["status"] == "completed"

    def without_time(run_dir) -> list[dict]:
        rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/", "memory/"))} for r in rows]

    assert without_time(tmp_path / "resumed") == without_time(tmp_path / "straight")
