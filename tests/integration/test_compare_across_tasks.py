"""python -m align_lab.compare over runs of two tasks: the "Across tasks" section (rliable IQM,
P(X > Y), performance profiles) from synthetic run folders with hand-chosen scores, and from a real
tiny study of two algorithms on toy_prefs and toy_arith."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from scipy.stats import trim_mean

from tests.integration.test_compare import compare, md_table
from tests.unit.results.test_results_across_tasks import ARITH_SFT, NORMALISE, SCORES


def write_run(folder: Path, algo: str, task: str, seed: int, summary: dict, normalise: dict) -> None:
    (folder / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "study": "across", "normalise": normalise, "algo": {"_target_": algo}}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    choices = {"algo": algo, "task": task}
    (folder / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
    )
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, **summary}) + "\n")
    body = {"status": "completed", "algo": algo, "seed": seed, "names": choices, **summary}
    (folder / "summary.json").write_text(json.dumps(body))


def make_study(root: Path, normalise: dict) -> Path:
    """test_results_across_tasks's scores as run folders: toy_prefs gold = 2 s, toy_arith pass@1 =
    0.2 + 0.8 s."""
    study = root / "multirun" / "across"
    for algo, tasks in SCORES.items():
        for task, scores in tasks.items():
            for seed, s in enumerate(scores):
                if task == "toy_prefs":
                    summary = {"eval/gold_reward": 2 * s}
                else:
                    summary = {"eval/gold_reward": 0.0, "eval/pass@1": 0.2 + 0.8 * s}
                    summary["eval/pass@1_sft"] = ARITH_SFT[seed]
                write_run(study / f"{algo}_{task}_{seed}", algo, task, seed, summary, normalise)
    return study


def test_compare_reports_verdicts_across_tasks(tmp_path: Path) -> None:
    make_study(tmp_path, NORMALISE)
    out = tmp_path / "out"
    result = compare(str(tmp_path / "multirun"), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("across tasks (toy_arith, toy_prefs)"))
    # IQMs 0.35 and 0.525 and P(ppo > rloo) = 13/32 = 0.406: worked out in test_results_across_tasks.py
    assert lines[i + 1].startswith("  IQM ppo ") and " 0.35 [" in lines[i + 1]
    assert lines[i + 2].startswith("  IQM rloo ") and " 0.525 [" in lines[i + 2]
    assert lines[i + 3].startswith("  P(ppo > rloo) = 0.406 [")
    md = (out / "report.md").read_text()
    iqm = {r["arm"]: r for r in md_table(md, "Across tasks")}
    assert iqm["ppo"]["IQM [95% CI]"].startswith("0.35 [") and iqm["rloo"]["seeds (x tasks)"] == "4"
    assert (out / "across_tasks_profiles.png").read_bytes()[:4] == b"\x89PNG"
    assert 'data-file="across_tasks_profiles.png"' in (out / "report.html").read_text()


def test_without_normalisation_compare_names_the_tasks_that_lack_one(tmp_path: Path) -> None:
    make_study(tmp_path, {"toy_prefs": NORMALISE["toy_prefs"]})
    result = compare(str(tmp_path / "multirun"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "note: across tasks: task toy_arith has no normalisation (the sweep file's `normalise:`)"
        in result.stdout
    )
    assert "  IQM " not in result.stdout
    assert not (tmp_path / "out" / "across_tasks_profiles.png").exists()


def test_a_real_tiny_study_over_two_tasks(tmp_path: Path, cache_dir: Path) -> None:
    """2 algorithms x toy_prefs, toy_arith x 2 seeds run in-process, compared across tasks; the IQM the
    command prints is the 25%-trimmed mean of the scores normalised from the runs' own summaries."""
    from omegaconf import OmegaConf

    from tests.conftest import SMALL, compose, run_in_process

    normalise = (
        "{toy_prefs: {metric: eval/gold_reward, low: sft, high: 1.0}, "
        "toy_arith: {metric: 'eval/pass@1', low: 0, high: 1}}"
    )
    study = tmp_path / "multirun" / "across"
    summaries: dict = {}
    for algo in ("reinforce_pp", "rloo"):
        for task in ("toy_prefs", "toy_arith"):
            for seed in (0, 1):
                overrides = [f"algo={algo}", f"task={task}", f"seed={seed}", f"normalise={normalise}"]
                run_dir = study / f"{algo}_{task}_{seed}"
                cfg, names = compose([*SMALL, f"cache_dir={cache_dir}", *overrides])
                (run_dir / ".hydra").mkdir(parents=True)
                OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
                hydra = {"hydra": {"runtime": {"choices": names}}}
                (run_dir / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
                summary = run_in_process(overrides, run_dir, cache_dir)
                assert summary["status"] == "completed"
                summaries[algo, task, seed] = summary
    out = tmp_path / "report"
    result = compare(str(tmp_path / "multirun"), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    sft = sum(s["eval/gold_reward_sft"] for (_, t, _), s in summaries.items() if t == "toy_prefs") / 4
    for algo in ("reinforce_pp", "rloo"):
        scores = [(summaries[algo, "toy_prefs", s]["eval/gold_reward"] - sft) / (1.0 - sft) for s in (0, 1)]
        scores += [summaries[algo, "toy_arith", s]["eval/pass@1"] for s in (0, 1)]
        (line,) = [x for x in result.stdout.splitlines() if x.startswith(f"  IQM {algo} ")]
        assert float(line.split()[2]) == pytest.approx(trim_mean(scores, 0.25), abs=5e-3), line
    assert "P(reinforce_pp > rloo) = " in result.stdout
    assert (out / "across_tasks_profiles.png").is_file()
