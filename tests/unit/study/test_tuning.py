"""Tuned studies (docs/studies.md, "Tuned studies"): tune: checked before anything runs (equal budgets,
a search space per arm, a tuning seed off the claims' seeds), the tuning split of the training prompts,
the tuning curve, and the resume logic on a real Optuna SQLite storage."""

from __future__ import annotations

import json

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus

from align_lab.config import ConfigError
from align_lab.results.tuning import best_so_far, tuning_lines
from align_lab.study.tune_spec import check_tune, split_jobs
from align_lab.study.tuning import finish_running, metric_of, trials_left
from align_lab.tasks.tuning_split import TuningSplit, tuning_indices

SPACE = {"rloo": {"algo.lr": "tag(log, interval(1e-4, 1e-2))"}, "ppo": {"algo.lr": "interval(1e-4, 1e-2)"}}


def tune(**kw) -> dict:
    return {"trials": 3, "space": SPACE, **kw}


def test_one_budget_is_every_arms():
    t = check_tune(tune(), ["rloo", "ppo"], [0, 1], "algo")
    assert t.trials == {"rloo": 3, "ppo": 3} and t.seed == 1000 and t.split == 0.2


def test_unequal_budgets_are_refused_in_one_line():
    with pytest.raises(ValueError) as e:
        check_tune(tune(trials={"rloo": 3, "ppo": 5}), ["rloo", "ppo"], [0], "algo")
    assert str(e.value) == (
        "tune.trials: unequal budgets (rloo 3, ppo 5); a fair comparison tunes every arm on the same "
        "number of trials: one number, or tune.allow_unequal=true"
    )


def test_unequal_budgets_pass_when_allowed():
    t = check_tune(tune(trials={"rloo": 3, "ppo": 5}, allow_unequal=True), ["rloo", "ppo"], [0], "algo")
    assert t.trials == {"rloo": 3, "ppo": 5}


@pytest.mark.parametrize(
    "node, message",
    [
        (tune(trials=0), "tune.trials=0 (arm rloo): must be an integer >= 1"),
        (tune(trials={"rloo": 3}), "tune.trials: no budget for arm ppo; give every arm its trials"),
        (tune(space={"rloo": SPACE["rloo"]}), "tune.space.ppo=None: every arm needs a search space"),
        (tune(space={**SPACE, "dpo": {}}), "tune.space.dpo: no such arm; the sweep's arms are rloo, ppo"),
        (tune(space={**SPACE, "ppo": {"seed": "range(0,3)"}}), "tune.space.ppo.seed: the study sets seed"),
        (tune(seed=1), "tune.seed=1: among the sweep's seeds (0, 1); the chosen values run on fresh seeds"),
        (tune(direction="up"), "tune.direction='up': must be maximize or minimize"),
        # fifth hunt of 2026-12-04: a trial's "seed=abc" (a key never typed), numpy's 50-line traceback, and
        # True read as seed 1, each after the study's folder was made
        (
            tune(seed="abc"),
            "tune.seed='abc': must be an integer in [-9223372036854775808, 18446744073709551616)",
        ),
        (tune(seed=True), "tune.seed=True: must be an integer in "),
        (tune(sampler_seed=-1), "tune.sampler_seed=-1: must be an integer in [0, 2147483648)"),
        (tune(sampler_seed="abc"), "tune.sampler_seed='abc': must be an integer in [0, 2147483648)"),
        (tune(split=1.5), "tune.split=1.5: must be a share in (0, 1) of the training prompts"),
        (tune(budget=3), "tune.budget: no such key; allowed: trials, space, seed, split, metric"),
        ({"space": SPACE}, "tune.trials: missing; a tuned study needs trials and space"),
    ],
)
def test_a_bad_tune_is_one_line_naming_the_key(node, message):
    with pytest.raises(ValueError) as e:
        check_tune(node, ["rloo", "ppo"], [0, 1], "algo")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_jobs_split_into_arms_and_seeds():
    jobs = [["algo=rloo", "seed=0", "x=1"], ["algo=rloo", "seed=1", "x=1"], ["algo=ppo", "seed=0", "x=1"]]
    assert split_jobs(jobs, "algo", 7) == ({"rloo": ["algo=rloo", "x=1"], "ppo": ["algo=ppo", "x=1"]}, [0, 1])
    assert split_jobs([["algo=rloo"]], "algo", 7) == ({"rloo": ["algo=rloo"]}, [7])  # no seed swept: seed
    with pytest.raises(ValueError, match="sets no algo"):
        split_jobs([["x=1"]], "algo", 0)


def test_the_tuning_curve_is_the_best_so_far():
    # maximize: 0.1, then max(0.1, 0.3) = 0.3, a failed trial keeps 0.3, then max(0.3, 0.2) = 0.3
    assert best_so_far([0.1, 0.3, None, 0.2], "maximize") == [0.1, 0.3, 0.3, 0.3]
    # minimize: none yet, then 0.5, then min(0.5, 0.7) = 0.5, then min(0.5, 0.2) = 0.2
    assert best_so_far([None, 0.5, 0.7, 0.2], "minimize") == [None, 0.5, 0.5, 0.2]


class FourPrompts:
    def prompts(self, split):
        return {"train": ["a", "b", "c", "d", "e"], "eval": ["X", "Y"]}[split]

    def references(self, split):
        return None

    def gold_reward(self, prompts, responses, finished):
        return [1.0] * len(prompts)


def test_the_tuning_split_is_held_out_of_the_training_prompts_never_the_eval_ones():
    # round(5 x 0.4) = 2 of the 5 training prompts
    assert len(tuning_indices(5, 0.4)) == 2
    view = TuningSplit(FourPrompts(), 0.4)
    train, tuning = view.prompts("train"), view.prompts("eval")
    assert len(tuning) == 2 and len(train) == 3
    assert sorted(train + tuning) == ["a", "b", "c", "d", "e"]  # disjoint, together the training prompts
    assert view.gold_reward(["a"], ["r"], [True]) == [1.0]  # the rest is the task's
    assert tuning_indices(5, 0.01) == tuning_indices(5, 0.01) and len(tuning_indices(5, 0.99)) == 4


class Launched:
    """A launcher that records what it was asked and returns a completed job of a value."""

    def __init__(self, value: float) -> None:
        self.value, self.calls = value, []

    def launch(self, job_overrides, initial_job_idx: int):
        self.calls.append((list(map(list, job_overrides)), initial_job_idx))
        ret = JobReturn(overrides=list(job_overrides[0]), status=JobStatus.COMPLETED)
        ret.return_value = self.value
        return [ret]


def test_an_interrupted_trial_is_finished_in_its_own_folder_and_counted(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="rloo", storage=storage, direction="maximize")
    done = study.ask({"algo.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
    study.tell(done, 0.5)
    running = study.ask({"algo.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
    # the command was killed here: trial 1 RUNNING. A rerun loads the same storage
    again = optuna.load_study(study_name="rloo", storage=storage)
    assert trials_left(again, 3) == 2  # a budget of 3 less 1 completed
    launcher = Launched(0.7)
    finish_running(again, launcher, ["algo=rloo", "seed=1000"])
    lr = running.params["algo.lr"]
    assert launcher.calls == [([[f"algo.lr={lr}", "algo=rloo", "seed=1000"]], 1)]  # job 1: trial 1's folder
    assert [t.state.name for t in again.trials] == ["COMPLETE", "COMPLETE"] and again.trials[1].value == 0.7
    assert trials_left(again, 3) == 1
    finish_running(again, launcher, [])  # nothing running: nothing launched
    assert len(launcher.calls) == 1 and trials_left(again, 2) == 0  # a finished arm: no trial left


def test_a_trials_value_is_its_metric_or_one_line(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"eval/gold_reward": 0.25, "eval/kl": 1.0}))
    assert metric_of(tmp_path, "eval/gold_reward") == 0.25
    with pytest.raises(ConfigError) as e:
        metric_of(tmp_path, "eval/pass@1")
    assert str(e.value) == (
        f"tune.metric=eval/pass@1: run {tmp_path} has no such number; it has eval/gold_reward, eval/kl"
    )


RECORD = {
    "tune": {"seed": 1000, "split": 0.2, "metric": "eval/gold_reward", "direction": "maximize"},
    "claim_seeds": [0, 1],
    "arms": {
        "rloo": {
            "budget": 3,
            "trials": [
                {"number": 0, "state": "COMPLETE", "value": 0.1, "params": {"algo.lr": 0.001}},
                {"number": 1, "state": "FAIL", "value": None, "params": {"algo.lr": 0.01}},
                {"number": 2, "state": "COMPLETE", "value": 0.3, "params": {"algo.lr": 0.0003}},
            ],
            "chosen": {"number": 2, "value": 0.3, "params": {"algo.lr": 0.0003}},
        }
    },
}


def test_a_tuning_record_compare_cannot_read_is_a_note_naming_it(tmp_path):
    """Fifth hunt of 2026-12-04: tuning.json a named pipe hung compare; torn, its lines were left
    out with no word; `split: "0.2"` ended compare with "Unknown format code 'g' ..."; a list, a traceback."""
    import os

    from align_lab.results.tuning import read_tuning, tuning_notes, tuning_problem

    path = tmp_path / "tuning.json"
    assert tuning_problem(tmp_path) is None  # not a tuned study
    path.write_text(json.dumps(RECORD))
    assert tuning_problem(tmp_path) is None and read_tuning(tmp_path) == RECORD
    worded = {**RECORD, "tune": {**RECORD["tune"], "split": "0.2"}}
    for text, said in [
        (json.dumps(RECORD)[:300], "cannot be read (JSONDecodeError: "),
        (
            json.dumps(worded),
            "not a tuning record (ValueError: Unknown format code 'g' for object of type 'str')",
        ),
        ("[1, 2]", "not a tuning record (TypeError: list indices must be integers or slices, not str)"),
        (  # tu_nan: "chose ... 0.3; best so far: 0.1 0.1 nan", the curve against the choice, no note
            json.dumps(
                {
                    **RECORD,
                    "arms": {
                        "rloo": {
                            **RECORD["arms"]["rloo"],
                            "trials": [{**RECORD["arms"]["rloo"]["trials"][0], "value": float("nan")}],
                        }
                    },
                }
            ),
            "not a tuning record (ValueError: arm rloo's trial 0 has value nan, not a finite number)",
        ),
    ]:
        path.write_text(text)
        assert tuning_problem(tmp_path).startswith(f"{path}: {said}") and read_tuning(tmp_path) is None
    path.unlink()
    os.mkfifo(path)
    assert tuning_notes([tmp_path]) == [
        f"{path}: a named pipe, not a tuning record: not read: the tuning's lines (each arm's chosen values "
        "and tuning curve) are left out"
    ]


def test_a_trials_storage_sqlite_cannot_read_is_one_line(tmp_path):
    """Fifth hunt of 2026-12-04: tuning/optuna.db torn, or a folder, was sqlalchemy's 104 or 149
    lines as the rerun of the study started."""
    import os
    import sqlite3

    from align_lab.study.tuning import storage_problem

    path = tmp_path / "optuna.db"
    assert storage_problem(path) is None  # a first run: none yet
    with sqlite3.connect(path) as db:
        db.execute("create table t(x)")
        db.executemany("insert into t values (?)", [(i,) for i in range(5000)])
    db.close()
    assert storage_problem(path) is None
    path.write_bytes(path.read_bytes()[:5000])  # torn
    assert (
        storage_problem(path)
        == f"{path}: its trials' storage cannot be read (database disk image is malformed)"
    )
    path.write_text("not a database at all, but long enough to be read as one's header")
    assert storage_problem(path) == f"{path}: its trials' storage cannot be read (file is not a database)"
    path.unlink()
    path.mkdir()
    assert (
        storage_problem(path) == f"{path} is a folder where a tuned study keeps its trials (an SQLite file)"
    )
    path.rmdir()
    os.mkfifo(path)
    assert (
        storage_problem(path)
        == f"{path} is a named pipe where a tuned study keeps its trials (an SQLite file)"
    )


def test_tuning_lines_show_the_choice_and_the_curve():
    assert tuning_lines(RECORD) == [
        "tuning: 3 trials per arm (maximize eval/gold_reward), at seed 1000 on a 0.2 tuning split of the "
        "training prompts; the claims ran the chosen values on fresh seeds 0, 1",
        "  rloo: chose algo.lr=0.0003 (trial 2, eval/gold_reward 0.3); 2/3 trials, best so far: 0.1 0.1 0.3",
    ]
