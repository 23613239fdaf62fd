"""Issue 73 section 3, the cases still open from the last hunt: each a traceback or a misleading line
before, each one line now naming the key, its value and what is allowed."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from align_lab.config import ConfigError, build


@pytest.mark.parametrize(
    "target,why",
    [  # before: Hydra's 3-line "Error getting class ... Are you sure that module 'nope' is installed?"
        (
            "nope.Nope",
            "no module nope; a module of yours must be importable from where you run, or on PYTHONPATH",
        ),
        (
            "align_lab.envs.Nope",
            "align_lab.envs has no Nope",
        ),  # before: "No module named 'align_lab.envs.Nope'"
        ("align_lab.envs.base.Step.x", "align_lab.envs.base has no Step.x"),
        ("my_envs:Game", "must be module.Class"),
    ],
)
def test_an_env_class_that_does_not_exist_is_one_line_saying_what_is_missing(target, why, caplog):
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as e:
        build(OmegaConf.create({"_target_": target}), "env")
    assert str(e.value) == f"env._target_={target}: not an importable class ({why})"
    assert caplog.messages == []  # nothing logged before the one line


class EnvInitRaises:  # an environment of yours whose constructor fails (a dataclass's, and a plain class's)
    def __init__(self, max_turns: int = 4):
        raise RuntimeError("no\nserver")


@dataclasses.dataclass
class EnvPostInitRaises:
    max_turns: int = 4

    def __post_init__(self):
        raise KeyError("MAZE_HOME")


@dataclasses.dataclass
class EnvChecksItsQuota:  # a ValueError of its own: was "env.no sandbox quota" (thirty-fourth hunt, case 45)
    max_turns: int = 4

    def __post_init__(self):
        raise ValueError("no sandbox quota")


@pytest.mark.parametrize(
    "cls,why",
    [
        ("EnvInitRaises", "RuntimeError: no server"),
        ("EnvPostInitRaises", "KeyError: 'MAZE_HOME'"),
        ("EnvChecksItsQuota", "ValueError: no sandbox quota"),
    ],
)
def test_an_env_of_yours_whose_constructor_raises_is_one_line_naming_it(cls, why):
    """Issue 73 hunt: env._target_=my_envs.Maze whose __init__ / __post_init__ raised anything but a
    ValueError was a 60-line traceback at admission."""
    target = f"{__name__}.{cls}"
    with pytest.raises(ConfigError) as e:
        build(OmegaConf.create({"_target_": target, "max_turns": 4}), "env")
    assert str(e.value) == (
        f"env._target_={target}: building it raised {why}; fix it, or check its keys (env.<key>=...)"
    )


class SourceNeedsAJudge:  # a combined component's source of yours that checks its settings
    def __init__(self, **kwargs):
        raise ValueError("judge url missing")


@pytest.mark.parametrize(
    "target,why",
    [
        (f"{__name__}.nope", f"not an importable class ({__name__} has no nope)"),
        (
            "nomod36.f",
            "not an importable class (no module nomod36; a module of yours must be importable from where you "
            "run, or on PYTHONPATH)",
        ),
        (
            f"{__name__}.SourceNeedsAJudge",
            "building it raised ValueError: judge url missing; fix it, or check its keys "
            "(reward.components.x.source.<key>=...)",
        ),
    ],
)
def test_a_combined_components_source_that_does_not_build_is_one_line_naming_its_key(target, why, caplog):
    """Thirty-sixth hunt, cases 44 and 51: a source `_target_` that does not import, added in the form
    conf/reward/combined.yaml shows, was a 99-line Hydra traceback (rc 1); a class of the user's raising
    ValueError was `reward.components.x.source.judge url missing`, its words glued to the key."""
    from tests.conftest import compose

    source = f"+reward.components.x={{weight: 1.0, source: {{_target_: {target}}}}}"
    cfg, _ = compose(["reward=combined", source])
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as e:
        build(cfg.reward, "reward")
    assert str(e.value) == f"reward.components.x.source._target_={target}: {why}"
    assert caplog.messages == []  # nothing logged before the one line


@dataclasses.dataclass
class EnvHoldsALock:  # a field a config cannot hold
    max_turns: int = 4
    lock: object = dataclasses.field(default_factory=threading.Lock)


def test_an_env_of_yours_with_a_field_a_config_cannot_hold_is_one_line_saying_what_to_do():
    """Fourteenth hunt: `lock: object = field(default_factory=threading.Lock)` gave OmegaConf's three
    lines glued to "env." ("env.Unexpected type annotation: object / full_key: lock / object_type=...")."""
    with pytest.raises(ConfigError) as e:
        build(OmegaConf.create({"_target_": f"{__name__}.EnvHoldsALock", "max_turns": 4}), "env")
    assert str(e.value) == (
        "env: EnvHoldsALock's field lock: Unexpected type annotation: object; a config's field holds "
        "numbers, text, booleans, lists and dicts of them or dataclasses: annotate it so, or make it in "
        "__post_init__ (field(init=False))"
    )


def admit(run_dir, cache_dir):
    from align_lab.run.admission import admit_spec, spec_from_config
    from tests.conftest import SMALL, compose

    cfg, names = compose([*SMALL, f"cache_dir={cache_dir}"])
    return admit_spec(spec_from_config(cfg, names), run_dir, here=False)


@pytest.mark.parametrize(
    "name,kind,said",
    [  # before: metrics.jsonl/ a 95-line IsADirectoryError at step 1; checkpoints a file: trained, then
        # "Error executing job ..." and "is a file, not a folder; choose another hydra.run.dir"
        ("metrics.jsonl", "folder", "is a folder where align_lab writes a file"),
        ("checkpoints", "file", "is a file where align_lab keeps a folder"),
        # issue 73 hunt: app.log/ a 72-line IsADirectoryError at the SFT stage's first log line; a folder
        # .hydra/config.yaml a traceback where the admitted run writes it
        ("app.log", "folder", "is a folder where align_lab writes a file"),
        (".hydra/config.yaml", "folder", "is a folder where align_lab writes a file"),
        (".hydra", "file", "is a file where align_lab keeps a folder"),
        # the fourth hunt: app.log a link to the user's data file: the run's log appended to it, rc 0
        ("app.log", "link", "is a link (to {target}) where align_lab writes a file"),
        ("metrics.jsonl", "link", "is a link (to {target}) where align_lab writes a file"),
        # the fifth hunt: a hard link (`ln q.jsonl app.log`) the same
        ("app.log", "hard link", "is a hard link (2 names of one file) where align_lab writes a file"),
        # hunt of 2026-12-04, c70, c71: a named pipe (mkfifo) there: a resume hung at admission reading
        # checkpoints/last; a run reading metrics.jsonl said it "is gone", then hung opening it
        ("metrics.jsonl", "pipe", "is a named pipe where align_lab writes a file"),
        ("checkpoints/last", "pipe", "is a named pipe where align_lab writes a file"),
    ],
)
def test_a_file_of_the_run_of_the_wrong_kind_is_refused_at_admission_and_moving_it_away_works(
    name, kind, said, tmp_path
):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    run_dir.mkdir()
    path = run_dir / name
    path.parent.mkdir(exist_ok=True)
    target = tmp_path / "q.jsonl"
    target.write_text('{"question": "mine"}\n')
    if kind == "pipe":
        os.mkfifo(path)
    elif kind == "link":
        path.symlink_to(target)
    elif kind == "hard link":
        os.link(target, path)
    else:
        path.mkdir() if kind == "folder" else path.write_text("")
    with pytest.raises(ConfigError) as e:
        admit(run_dir, cache)
    assert str(e.value) == (
        f"hydra.run.dir={run_dir}: {path} {said.format(target=target)}; move it away, or choose another "
        "hydra.run.dir"
    )
    assert target.read_text() == '{"question": "mine"}\n'  # the user's file as it was
    path.rename(tmp_path / "moved")  # the hint, followed
    assert admit(run_dir, cache).run_dir == run_dir


def test_compare_says_a_metrics_jsonl_that_is_a_folder_left_the_runs_curves_out(tmp_path):
    from align_lab.results.runs import load_run

    (tmp_path / "metrics.jsonl").mkdir()
    (tmp_path / "summary.json").write_text('{"status": "completed"}')
    run = load_run(tmp_path)
    assert run.problems == ["metrics.jsonl: not a file (a folder), left out: the run has no curves"]


def test_compare_says_a_named_pipe_for_a_runs_file_as_what_it_is(tmp_path):
    """Third hunt of 2026-12-04, n23: compare read a named pipe (mkfifo) where a run keeps metrics.jsonl or
    summary.json as "not a file (a folder)"; it does not hang, nor open it."""
    from align_lab.results.runs import load_run

    os.mkfifo(tmp_path / "metrics.jsonl")
    os.mkfifo(tmp_path / "summary.json")
    run = load_run(tmp_path)
    assert run.problems == ["metrics.jsonl: not a file (a named pipe), left out: the run has no curves"]
    assert (
        run.error
        == "summary.json: not a file (a named pipe), left out: its status and final metrics are unknown"
    )


def test_compare_says_a_completed_runs_missing_metrics_jsonl_left_its_curves_out(tmp_path):
    """Seventeenth hunt: a completed run whose metrics.jsonl was deleted was read as one that used no
    compute (`no generated tokens used or logged, e.g. offline pairwise training`), the file unnamed."""
    from align_lab.results.runs import load_run

    (tmp_path / "summary.json").write_text('{"status": "completed"}')
    assert load_run(tmp_path).problems == [
        "metrics.jsonl: missing, though the run completed: it has no curves or budget"
    ]
    (tmp_path / "summary.json").write_text('{"status": "running"}')  # before its first step: none yet
    assert load_run(tmp_path).problems == []


def test_a_completed_run_asked_again_says_its_metrics_jsonl_is_missing(tmp_path, caplog):
    """Seventeenth hunt: `this run was already completed; nothing to do`, and nothing of the deleted file."""
    import logging

    from align_lab.run.summary import completed_before

    with caplog.at_level(logging.INFO, logger="align_lab"):
        completed_before(tmp_path, {"status": "completed", "algo": "grpo", "seed": 0})
    assert caplog.messages[0] == "align_lab: this run was already completed; nothing to do"
    assert caplog.messages[-1].startswith(
        f"warning: {tmp_path / 'metrics.jsonl'}: missing: the run's curves are gone"
    )
    caplog.clear()
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    with caplog.at_level(logging.INFO, logger="align_lab"):
        completed_before(tmp_path, {"status": "completed", "algo": "grpo", "seed": 0})
    assert not [m for m in caplog.messages if m.startswith("warning:")]


def test_compare_says_a_summary_json_that_is_a_folder_is_not_a_died_run_to_resume(tmp_path):
    """The second fresh hunt (issue 73): a run whose summary.json is a folder read `died`, with a resume
    command that its admission then refused (`summary.json is a folder where align_lab writes a file`)."""
    from align_lab.results.runs import load_run

    (tmp_path / "summary.json").mkdir()
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/reward": 0.5}\n')
    (tmp_path / "run.lock").write_text("")  # no holder: the process is gone
    run = load_run(tmp_path)
    assert (run.status, run.error) == (
        "unknown",
        "summary.json: not a file (a folder), left out: its status and final metrics are unknown",
    )


def test_compares_headline_never_pairs_groups_of_two_tasks():
    """Issue 73: ppo on toy_prefs and rloo on toy_arith were headlined as 'algo=rloo, task=toy_arith vs
    algo=ppo, task=toy_prefs: ... over 3 paired seeds', a difference of two tasks' scales."""
    from align_lab.results.aggregate import aggregate
    from tests.unit.results.test_results_aggregate import online_run

    def runs(tasks):
        out = []
        for algo, task in zip(("ppo", "rloo"), tasks, strict=True):
            for seed in (0, 1, 2):
                run = online_run(algo, seed, 0.5 + 0.1 * seed)
                run.folder, run.choices["task"] = Path(f"/runs/{algo}_{task}_{seed}"), task
                out.append(run)
        return out

    two = aggregate(runs(("toy_prefs", "toy_arith")), ["algo", "task"])
    assert " vs " not in two.headline and "over 3 paired seeds" not in two.headline
    # each group against its own task's SFT (3 seeds: under the exact test's floor, so not decided)
    assert two.headline.startswith("Not decided on eval/gold_reward against SFT, too few paired seeds")
    one = aggregate(runs(("toy_prefs", "toy_prefs")), ["algo"])  # one task: the one against the other
    assert one.headline.startswith("rloo vs ppo on eval/gold_reward: rloo - ppo = ")


def test_no_view_pairs_a_group_with_a_baseline_group_of_another_task():
    """Issue 73 hunt: with the headline fixed, the compute-matched view (its baseline a group, SFT having
    no compute) and --baseline <group> still paired rloo on toy_arith against ppo on toy_prefs as one
    difference ('mean diff 0.484'); now no difference and a verdict saying why, in every paired table."""
    from align_lab.results.aggregate import aggregate
    from tests.unit.results.test_results_aggregate import online_run

    runs = []
    for algo, task, gold in (
        ("ppo", "toy_prefs", 0.5),
        ("rloo", "toy_arith", 0.9),
        ("grpo", "toy_arith", 0.7),
    ):
        for seed in (0, 1, 2):
            run = online_run(algo, seed, gold + 0.01 * seed)
            run.folder, run.choices["task"] = Path(f"/runs/{algo}_{task}_{seed}"), task
            runs.append(run)
    c = aggregate(runs, ["algo", "task"], baseline="algo=ppo, task=toy_prefs")
    for table in (c.paired, c.matched_paired):
        rows = {r.group: r for r in table.itertuples()}
        other = rows["algo=rloo, task=toy_arith"]
        assert other.n_pairs == 0 and math.isnan(other.diff), table
        assert other.verdict.startswith("task=toy_arith, unlike algo=ppo, task=toy_prefs: never paired"), (
            other
        )
    same = aggregate(runs, ["algo", "task"], baseline="algo=rloo, task=toy_arith")  # one task: paired
    row = next(r for r in same.paired.itertuples() if r.group == "algo=grpo, task=toy_arith")
    assert row.n_pairs == 3 and row.diff == pytest.approx(-0.2)


def test_a_failed_arms_headline_and_action_line_say_it_has_no_paired_seed():
    """Issue 73 hunt: with one arm failed, the two-arm headline still read 'reinforce_pp vs ppo ... = n/a
    over 0 paired seeds, Holm p n/a: no seeds in common with the baseline', and the action line sized
    '~41 seeds per group' for the arm that had no completed run."""
    from align_lab.results.aggregate import aggregate
    from tests.unit.results.test_results_aggregate import online_run

    runs = [online_run("ppo", s, 0.5 + 0.05 * s) for s in (0, 1, 2)]
    runs += [online_run("rloo", s, float("nan"), status="failed") for s in (0, 1, 2)]
    c = aggregate(runs, ["algo"])
    assert "no seeds in common" not in c.headline and " vs " not in c.headline, c.headline
    assert "not compared (no paired seed; see each one's line): rloo" in c.action, c.action
    assert "not decided: ppo" in c.action and "not decided: rloo" not in c.action, c.action


def test_a_failed_arm_is_said_to_have_no_completed_run_and_a_plan_without_a_look_says_so():
    """Issue 73: an arm whose every run failed read 'no seeds in common with the baseline' (as if its
    seeds were the wrong ones), and its plan 'plan: 0 looks at  seeds per arm'."""
    from align_lab.results.aggregate import aggregate
    from align_lab.results.plan_record import verdict_lines
    from tests.unit.results.test_results_aggregate import online_run

    runs = [online_run("ppo", s, 0.5) for s in (0, 1)]
    runs += [online_run("rloo", s, float("nan"), status="failed") for s in (0, 1)]
    paired = aggregate(runs, ["algo"]).paired.set_index("group")["verdict"]
    assert paired["rloo"] == "no completed run (2 failed): see Runs"
    assert paired["ppo"].startswith("not decided")  # a group with runs: as before
    record = {"arms": ["ppo", "rloo"], "waves": [{"seeds": [0, 1], "arms": ["ppo", "rloo"]}], "looks": []}
    assert verdict_lines(record)[0] == (
        "plan: no look yet (a look follows a wave whose runs all completed; a rerun runs its failed runs "
        "again); stopped: still running (rerun the command to go on); seeds run: ppo 2, rloo 2"
    )
