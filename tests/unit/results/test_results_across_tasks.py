"""results/across_tasks.py on hand-built runs: normalisation, IQM, probability of improvement and
performance profiles, each expected value worked out in the comments (bootstraps small and seeded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from align_lab.results.across_tasks import across_figure, across_lines, across_tasks
from align_lab.results.runs import Run

NORMALISE = {
    "toy_prefs": {"metric": "eval/gold_reward", "low": 0, "high": 2},
    "toy_arith": {"metric": "eval/pass@1", "low": "sft", "high": 1},
}
# normalised scores per arm and task, seeds 0..3
SCORES = {
    "ppo": {"toy_prefs": [0.0, 0.1, 0.2, 0.3], "toy_arith": [0.4, 0.5, 0.6, 1.0]},
    "rloo": {"toy_prefs": [0.5, 0.6, 0.7, 0.8], "toy_arith": [0.45, 0.55, 0.0, 0.1]},
}
ARITH_SFT = [0.1, 0.3, 0.1, 0.3]  # per seed: the task's SFT score is their mean, 0.2


def run(algo: str, task: str, seed: int, score: float, normalise=NORMALISE) -> Run:
    # raw metric from the normalised score: toy_prefs x = 2 s; toy_arith x = 0.2 + 0.8 s
    if task == "toy_prefs":
        summary = {"eval/gold_reward": 2 * score}
    else:
        summary = {"eval/pass@1": 0.2 + 0.8 * score, "eval/pass@1_sft": ARITH_SFT[seed]}
    config = {"seed": seed, "normalise": normalise}
    return Run(
        Path(f"{algo}_{task}_{seed}"),
        "completed",
        config=config,
        choices={"algo": algo, "task": task},
        summary={"status": "completed", **summary},
    )


def study(normalise=NORMALISE) -> list[Run]:
    return [
        run(algo, task, seed, s, normalise)
        for algo, tasks in SCORES.items()
        for task, scores in tasks.items()
        for seed, s in enumerate(scores)
    ]


def test_iqm_probability_of_improvement_and_profiles_by_hand(tmp_path):
    a = across_tasks(study(), ["algo"], reps=200, seed=0)
    assert a.tasks == ["toy_arith", "toy_prefs"]
    assert a.normalised["toy_arith"].low == pytest.approx(0.2)  # `sft`: mean of 0.1, 0.3, 0.1, 0.3
    assert a.normalised["toy_arith"].said == "eval/pass@1 from SFT 0.2 to 1"
    np.testing.assert_allclose(
        a.scores["ppo"], np.array(SCORES["ppo"]["toy_arith"] + SCORES["ppo"]["toy_prefs"]).reshape(2, 4).T
    )
    # ppo's 8 scores sorted 0, .1, .2, .3, .4, .5, .6, 1: the middle four .2 .3 .4 .5 -> IQM 0.35
    # rloo's: 0, .1, .45, .5, .55, .6, .7, .8 -> .45 .5 .55 .6 -> 0.525
    assert a.iqm["ppo"][0] == pytest.approx(0.35)
    assert a.iqm["rloo"][0] == pytest.approx(0.525)
    for point, lo, hi in a.iqm.values():
        assert lo <= point <= hi
    # P(ppo > rloo): toy_prefs 0/16 (every rloo score is higher); toy_arith: 0.4 beats 0, 0.1 (2), 0.5 beats
    # 0.45, 0, 0.1 (3), 0.6 and 1.0 beat all four (8): 13/16; averaged (0 + 13/16) / 2 = 13/32 = 0.40625
    p, lo, hi = a.improvement[("ppo", "rloo")]
    assert p == pytest.approx(13 / 32)
    # any resample keeps toy_prefs at 0, and toy_arith <= 1: every bootstrap value <= 0.5
    assert 0 <= lo <= p <= hi <= 0.5
    # profile at tau = 0.35 (tau spans 0..1 in 101 steps): ppo's scores above it .4 .5 .6 1 -> 4/8
    assert a.tau[35] == pytest.approx(0.35)
    assert a.profiles["ppo"][35] == pytest.approx(0.5)
    again = across_tasks(study(), ["algo"], reps=200, seed=0)
    assert again.iqm == a.iqm and again.improvement == a.improvement  # seeded
    lines = across_lines(a)
    assert lines[0].startswith(
        "across tasks (toy_arith, toy_prefs), normalised scores (toy_arith: eval/pass@1"
    )
    assert lines[1].startswith("  IQM ppo") and "0.35 [" in lines[1] and "(4 seeds x 2 tasks)" in lines[1]
    assert lines[3].startswith("  P(ppo > rloo) = 0.406 [")
    ((_, path),) = across_figure(a, tmp_path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_task_without_normalisation_is_named_and_one_task_is_no_section():
    runs = study() + [run("ppo", "arith_word", 0, 0.5)]
    a = across_tasks(runs, ["algo"], reps=200)
    assert "across tasks: task arith_word has no normalisation (the sweep file's `normalise:`)" in a.notes
    assert set(a.normalised) == {"toy_arith", "toy_prefs"} and a.iqm
    none = across_tasks(study(normalise={}), ["algo"], reps=200)
    assert not none.iqm and "fewer than 2 normalised tasks" in none.notes[-1]
    assert any("toy_prefs has no normalisation" in line for line in across_lines(none))
    assert across_tasks([r for r in study() if r.choices["task"] == "toy_prefs"], ["algo"]) is None


def test_a_malformed_normalisation_is_a_note_naming_key_and_value():
    bad = {**NORMALISE, "toy_prefs": {"metric": "eval/gold_reward", "low": "zero", "high": 2}}
    a = across_tasks(study(normalise=bad), ["algo"], reps=200)
    assert (
        "across tasks: task toy_prefs left out: normalise.toy_prefs.low: 'zero'; allowed: a number or sft"
        in a.notes
    )
    no_sft = {**NORMALISE, "toy_prefs": {"metric": "eval/gold_reward", "low": "sft", "high": 2}}
    a = across_tasks(study(normalise=no_sft), ["algo"], reps=200)  # toy_prefs runs log no SFT value
    assert (
        "across tasks: task toy_prefs left out: normalise.toy_prefs.low: sft, but no run of toy_prefs "
        "reports eval/gold_reward_sft"
    ) in a.notes


def test_an_arm_missing_a_seed_on_one_task_keeps_its_common_seeds():
    runs = [
        r
        for r in study()
        if not (r.choices["algo"] == "rloo" and r.choices["task"] == "toy_arith" and r.config["seed"] == 3)
    ]
    a = across_tasks(runs, ["algo"], reps=200)
    assert a.scores["rloo"].shape == (3, 2)
    assert "across tasks: rloo's seeds [3] lack a task: left out" in a.notes


def test_the_vectorised_metrics_equal_rliables():
    from rliable import library, metrics

    from align_lab.results.across_tasks import improvement_probability, score_distribution

    rng = np.random.default_rng(0)
    tau = np.linspace(0, 1, 11)
    for _ in range(20):
        x, y = rng.integers(0, 4, size=(5, 3)) / 4, rng.integers(0, 4, size=(3, 3)) / 4  # ties included
        assert improvement_probability(x, y)[0] == pytest.approx(metrics.probability_of_improvement(x, y))
        np.testing.assert_allclose(score_distribution(x, tau), library.score_distributions(x, tau))
    same = rng.random((4, 2))
    assert improvement_probability(same, same)[0] == metrics.probability_of_improvement(same, same) == 0.5


def test_the_saved_across_tasks_sweep_normalises_every_task_it_runs():
    import yaml

    from align_lab.results.across_tasks import normalisation

    sweep = yaml.safe_load((Path(__file__).parents[3] / "sweeps" / "across_tasks.yaml").read_text())
    tasks = sweep["hydra"]["sweeper"]["params"]["task"].split(",")
    assert sorted(sweep["normalise"]) == sorted(tasks)
    for task, spec in sweep["normalise"].items():
        # `sft` read from a run of the task whose SFT scored 0.25: low 0.25, high 1
        done = Run(Path("r"), "completed", summary={f"{spec['metric']}_sft": 0.25})
        n = normalisation(task, spec, [done])
        assert (n.low, n.high) == (0.25, 1.0)
