"""python -m align_lab.compare end to end: synthetic run folders with hand-chosen numbers (every
expected value below is worked out by hand in the comments), the report opened in a real headless
Chromium, the offline W&B compare run read back, and a real tiny sweep."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, forked

STUDY = "toy_compare"
TARGETS = {
    "ppo": "align_lab.algorithms.ppo.PPO",
    "reinforce_pp": "align_lab.algorithms.reinforce_pp.ReinforcePP",
    "rloo": "align_lab.algorithms.rloo.RLOO",
}
# Per algorithm: generated tokens per step (4 steps, evaluations at steps 2 and 4), and per seed
# (gold reward at step 2, final gold reward = summary's and step 4's).
TOKENS_PER_STEP = {"ppo": 100, "reinforce_pp": 120, "rloo": 150}
GOLD = {
    "ppo": {0: (0.30, 0.50), 1: (0.40, 0.60), 2: (0.50, 0.70)},
    "reinforce_pp": {0: (0.35, 0.65), 1: (0.40, 0.70), 2: (0.45, 0.90)},
    "rloo": {0: (0.40, 0.40), 1: (0.50, 0.65), 2: (0.36, 0.66)},
}
WALL = {"ppo": (100.0, 110.0, 120.0), "reinforce_pp": (80.0, 90.0, 85.0), "rloo": (60.0, 70.0, 65.0)}
KL_SCALE = {"ppo": 0.3, "reinforce_pp": 0.8, "rloo": 0.5}  # final eval/kl = KL_SCALE + 0.05 * seed
GOLD_SFT = 0.2
# the study's claims, saved in every run's config as a sweep file's `claims:` is
CLAIMS = ["reinforce_pp > ppo on eval/gold_reward", "rloo < ppo on time/total_s"]


def write_run(
    folder: Path,
    algo: str,
    seed: int,
    *,
    status: str | None,
    records: list[dict],
    summary: dict | None = None,
    kl_coef: float = 0.05,
) -> None:
    """What `python -m align_lab` writes: .hydra/{config,hydra,overrides}.yaml, metrics.jsonl, summary."""
    (folder / ".hydra").mkdir(parents=True)
    config = {
        "seed": seed,
        "study": STUDY,
        "claims": CLAIMS,
        "cache_dir": None,
        "algo": {"_target_": TARGETS[algo], "lr": 0.001, "kl_coef": kl_coef},
        "model": {"_target_": "align_lab.models.tiny.TinyCausalLM", "hidden_size": 64},
        "task": {"_target_": "align_lab.tasks.toy_prefs.ToyPrefs", "n_pairs": 256},
        "reward": {"_target_": "align_lab.rewards.LearnedRM", "epochs": 1},
        "train": {"_target_": "align_lab.train.common.TrainConfig", "steps": 4, "rollout_size": 16},
        "tracker": {"kind": "none", "project": "align_lab", "mode": "disabled"},
    }
    choices = {
        "algo": algo,
        "model": "tiny_llama",
        "task": "toy_prefs",
        "reward": "learned_rm",
        "hardware": "cpu",
        "tracker": "none",
        "hydra/launcher": "basic",
    }
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
    )
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"algo={algo}", f"seed={seed}"]))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    if status is not None:
        names = {k: v for k, v in choices.items() if not k.startswith("hydra")}
        body = {"status": status, "algo": algo, "seed": seed, "names": names, **(summary or {})}
        (folder / "summary.json").write_text(json.dumps(body, indent=1))


def records(algo: str, gold: tuple[float, float], seed: int = 0, steps: int = 4) -> list[dict]:
    tokens = TOKENS_PER_STEP[algo]
    out = []
    for step in range(1, steps + 1):
        r = {
            "step": step,
            "train/reward": 0.1 * step,
            "train/kl": 0.01 * step,
            "time/step_s": 2.0,
            "counters/generated_tokens": tokens * step,
            "counters/reward_queries": 16 * step,
        }
        if step in (2, 4):
            g = gold[0] if step == 2 else gold[1]
            kl = step / 4 * KL_SCALE[algo] + 0.05 * seed
            r |= {
                "eval/gold_reward": g,
                "eval/gold_reward_sft": GOLD_SFT,
                "eval/proxy_reward": 2 * g + kl,
                "eval/proxy_reward_sft": 2 * GOLD_SFT,
                "eval/kl": kl,
                "eval/win_rate_vs_sft": 0.5 + g / 4,
                "eval/response_length": 10.0 + step,
            }
        out.append(r)
    return out


def make_sweep(root: Path) -> Path:
    """3 algorithms x 3 seeds completed, + a failed, a running, a never-started and a pending run."""
    sweep = root / "multirun" / "2025-01-01" / "12-00-00"
    entries = []
    num = 0

    def folder(algo: str, seed: int) -> Path:
        nonlocal num
        path = sweep / f"{num}_{algo}_seed{seed}"
        entries.append(
            {
                "num": num,
                "overrides": [f"algo={algo}", f"seed={seed}"],
                "run_dir": str(path),
                "names": {"algo": algo, "task": "toy_prefs"},
                "resources": {},
            }
        )
        num += 1
        return path

    for algo in GOLD:
        for seed, gold in GOLD[algo].items():
            final = records(algo, gold, seed)[-1]
            summary = {k: v for k, v in final.items() if k.startswith("eval/")}
            summary |= {
                "time/total_s": WALL[algo][seed],
                "stages": {"sft": {"key": "k", "hit": True, "seconds": 1}},
            }
            write_run(
                folder(algo, seed),
                algo,
                seed,
                status="completed",
                records=records(algo, gold, seed),
                summary=summary,
            )
    # a failed run: fewer tokens (50) than any completed run, so it must not set the common budget
    failed = [{"step": 1, "train/reward": 0.0, "counters/generated_tokens": 50, "time/step_s": 1.0}]
    write_run(
        folder("ppo", 3),
        "ppo",
        3,
        status="failed",
        records=failed,
        summary={"error": "ValueError: reward model diverged", "traceback": "..."},
    )
    write_run(folder("rloo", 3), "rloo", 3, status="running", records=records("rloo", (0.9, 0.9), 3, steps=2))
    write_run(folder("rloo", 4), "rloo", 4, status=None, records=[])  # composed, never started
    folder("reinforce_pp", 3)  # submitted, no folder yet: pending
    manifest = {
        "cluster": "local",
        "sweep_dir": str(sweep),
        "runs": entries,
        "command": ["python", "-m", "align_lab"],
    }
    (sweep / "study.json").write_text(json.dumps(manifest, indent=1))
    return sweep


def compare(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m align_lab.compare <args>`, a process forked from one that imported align_lab once."""
    return forked()(list(args), env=env, module="align_lab.compare")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("compare")
    make_sweep(tmp)
    out = tmp / "out"
    result = compare(str(tmp / "multirun"), "--out", str(out), "--baseline", "ppo")
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_compare_writes_every_output_file(report: Path) -> None:
    for name in [
        "report.md",
        "report.html",
        "runs.csv",
        "runs.parquet",
        "gold_reward_vs_step.png",
        "gold_reward_vs_generated_tokens.png",
        "gold_reward_vs_trained_tokens.png",
        "gold_reward_vs_wall_time.png",
        "reward_kl_frontier.png",
        "proxy_vs_gold.png",
        "gold_reward_by_group.png",
    ]:
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name


def test_runs_csv_lists_every_run_with_its_status_and_error(report: Path) -> None:
    import pandas as pd

    runs = pd.read_csv(report / "runs.csv")
    assert len(runs) == 13  # 9 completed + failed + running + never started + pending
    assert pd.read_parquet(report / "runs.parquet").shape == runs.shape
    status = {(r.group, int(r.seed)): r.status for r in runs.itertuples()}
    assert sum(s == "completed" for s in status.values()) == 9
    assert status[("ppo", 3)] == "failed"
    assert status[("rloo", 3)] == "running"
    assert status[("rloo", 4)] == "not started"
    assert status[("reinforce_pp", 3)] == "pending"
    failed = runs[runs["status"] == "failed"].iloc[0]
    assert failed["error"] == "ValueError: reward model diverged"
    md = (report / "report.md").read_text()
    assert "reward model diverged" in md and "pending" in md and "not started" in md
    assert "4 runs are not in the statistics (1 failed, 1 not started, 1 pending, 1 running)" in md


def md_table(md: str, heading: str, index: int = 0) -> list[dict[str, str]]:
    """The index-th markdown table after a heading starting with `heading`, as dicts."""
    section = md.split("\n## " + heading, 1)[1].split("\n## ", 1)[0]
    tables = re.findall(r"((?:^\|.*\|\n)+)", section + "\n", flags=re.M)
    lines = [line.strip("|").split(" | ") for line in tables[index].strip().splitlines()]
    header = [h.strip() for h in lines[0]]
    return [dict(zip(header, [c.strip() for c in row], strict=True)) for row in lines[2:]]


def ci(cell: str) -> tuple[float, float, float]:
    """(mean, lo, hi) of `mean [lo, hi]`; `mean [all seeds equal]` is a CI of no width."""
    if cell.endswith(" [all seeds equal]"):
        mean = float(cell.split(" ")[0].replace(",", ""))
        return mean, mean, mean
    mean, lo, hi = re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cell).groups()
    return float(mean.replace(",", "")), float(lo.replace(",", "")), float(hi.replace(",", ""))


def test_group_table_means_and_n_match_hand_computation(report: Path) -> None:
    table = {r["group"]: r for r in md_table((report / "report.md").read_text(), "Final metrics per group")}
    # completed seeds only; failed ppo seed 3 and running/not-started rloo seeds 3, 4 are excluded:
    # gold:  ppo (0.50 + 0.60 + 0.70) / 3 = 0.60; reinforce_pp (0.65 + 0.70 + 0.90) / 3 = 0.75;
    #        rloo (0.40 + 0.65 + 0.66) / 3 = 1.71 / 3 = 0.57
    # wall time: ppo (100 + 110 + 120) / 3 = 110; reinforce_pp 255 / 3 = 85; rloo 195 / 3 = 65
    # generated tokens (4 steps): ppo 400, reinforce_pp 480, rloo 600
    expected = {"ppo": (0.60, 110, 400, 1), "reinforce_pp": (0.75, 85, 480, 1), "rloo": (0.57, 65, 600, 2)}
    for group, (gold, wall, tokens, excluded) in expected.items():
        row = table[group]
        assert row["n"] == "3" and row["excluded"] == str(excluded), row
        mean, lo, hi = ci(row["gold reward mean [95% CI]"])
        assert mean == pytest.approx(gold, abs=1e-3)
        assert lo <= mean <= hi  # a Student-t CI is symmetric about the mean
        assert ci(row["wall time (s) mean [95% CI]"])[0] == pytest.approx(wall, abs=1e-3)
        assert float(row["generated tokens mean [95% CI]"].split()[0].replace(",", "")) == tokens
    # final KL = KL_SCALE + 0.05 * seed: rloo 0.5 + (0 + 0.05 + 0.10) / 3 = 0.55
    assert ci(table["rloo"]["KL mean [95% CI]"])[0] == pytest.approx(0.55, abs=1e-3)


def test_paired_difference_vs_baseline_matches_hand_computation(report: Path) -> None:
    rows = {r["group"]: r for r in md_table((report / "report.md").read_text(), "Paired comparison vs ppo")}
    assert set(rows) == {"reinforce_pp", "rloo"}  # baseline: ppo, as stated
    # reinforce_pp - ppo per seed: 0.65-0.50, 0.70-0.60, 0.90-0.70 = 0.15, 0.10, 0.20 -> mean 0.15;
    # exact sign flip: only all-plus / all-minus reach |mean| 0.15 -> p = 2/8 = 0.25
    # rloo - ppo: -0.10, 0.05, -0.04 -> mean -0.03; |sums| of +-0.10 +-0.05 +-0.04:
    # 0.19, 0.11, 0.09, 0.01 (twice each) -> 6 of 8 reach 0.09 -> p = 0.75
    # Holm: 0.25 * 2 = 0.5, 0.75 * 1 = 0.75
    rp, rl = rows["reinforce_pp"], rows["rloo"]
    assert rp["pairs (seeds)"] == "3 (0,1,2)"
    assert ci(rp["mean diff [95% CI]"])[0] == pytest.approx(0.15, abs=1e-4)
    assert ci(rl["mean diff [95% CI]"])[0] == pytest.approx(-0.03, abs=1e-4)
    assert float(rp["p"]) == 0.25 and float(rp["Holm p"]) == 0.5
    assert float(rl["p"]) == 0.75 and float(rl["Holm p"]) == 0.75
    # reinforce_pp: mean 0.15, s = 0.05, t_{2, 0.975} = 4.3027 -> 0.15 +- 4.3027 * 0.05 / sqrt(3)
    # = 0.15 +- 0.1242 = [0.0258, 0.2742]: the CI excludes 0, but the words are the test's alone (one
    # story): 3 seeds' smallest Holm p over 2 groups is 2 x 2/2^3 = 0.5;
    # rloo: -0.10, 0.05, -0.04: mean -0.03, s = 0.0818 -> -0.03 +- 0.2032: its CI covers 0, same words
    assert ci(rp["mean diff [95% CI]"])[1:] == pytest.approx((0.0258, 0.2742), abs=1e-3)
    assert rp["verdict"] == "not decided: 3 seeds cannot reach Holm p < 0.05 over 2 groups"
    assert rl["verdict"] == "not decided: 3 seeds cannot reach Holm p < 0.05 over 2 groups"


def test_compute_matched_value_at_common_budget_matches_hand_interpolation(report: Path) -> None:
    md = (report / "report.md").read_text()
    # common budget = smallest final generated tokens among completed runs = ppo's 4 x 100 = 400
    # (the failed run's 50 tokens do not count)
    assert "## Compute-matched: gold reward at 400 generated tokens" in md
    table = {r["group"]: r for r in md_table(md, "Compute-matched")}
    # ppo: 400 is its last evaluation: (0.50 + 0.60 + 0.70) / 3 = 0.60
    # reinforce_pp: evals at 240 and 480 tokens; at 400: g2 + (160/240)(g4 - g2):
    #   0.35 + 2/3*0.30 = 0.55; 0.40 + 2/3*0.30 = 0.60; 0.45 + 2/3*0.45 = 0.75 -> mean 1.90/3 = 0.6333
    # rloo: evals at 300 and 600; at 400: g2 + (100/300)(g4 - g2):
    #   0.40 + 0 = 0.40; 0.50 + 0.05 = 0.55; 0.36 + 0.10 = 0.46 -> mean 1.41/3 = 0.47
    column = "gold reward at budget mean [95% CI]"
    assert ci(table["ppo"][column])[0] == pytest.approx(0.60, abs=1e-3)
    assert ci(table["reinforce_pp"][column])[0] == pytest.approx(0.6333, abs=1e-3)
    assert ci(table["rloo"][column])[0] == pytest.approx(0.47, abs=1e-3)
    paired = {r["group"]: r for r in md_table(md, "Compute-matched", index=1)}
    # reinforce_pp - ppo at 400 tokens: 0.55-0.50, 0.60-0.60, 0.75-0.70 -> mean 0.10/3 = 0.0333
    assert ci(paired["reinforce_pp"]["mean diff [95% CI]"])[0] == pytest.approx(0.0333, abs=1e-3)


def test_report_html_is_self_contained_and_embeds_every_png(report: Path) -> None:
    page = (report / "report.html").read_text()
    assert "http" not in page  # no external resource (nor any link) at all
    embedded = re.findall(r'<img src="data:image/png;base64,([^"]+)"[^>]*data-file="([^"]+)"', page)
    assert sorted(name for _, name in embedded) == sorted(p.name for p in report.glob("*.png"))
    for data, name in embedded:
        assert base64.b64decode(data) == (report / name).read_bytes(), name
    # claims, their power, per group, paired, compute-matched, its paired test, runs
    assert page.count("<table>") == 7


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path, chromium: str) -> None:
    flags = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]
    url = (report / "report.html").resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    n_png = len(list(report.glob("*.png")))
    # the page's load handler counts images that decoded (complete and naturalWidth > 0)
    assert f'data-images-loaded="{n_png}/{n_png}"' in dom.stdout, dom.stdout[:300]
    # the seven tables of the page itself (test_report_html_is_self_contained_and_embeds_every_png)
    assert dom.stdout.count("<table>") == 7 and "reinforce_pp" in dom.stdout
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1200,2000", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    assert png_size(shot) == (1200, 2000)
    assert shot.stat().st_size > 50_000  # a blank 1200x2000 page compresses to a few kB


def test_wandb_offline_compare_run_holds_the_tables(tmp_path: Path) -> None:
    from tests.wandb_files import find_wandb_files, wandb_run_info, wandb_summary

    make_sweep(tmp_path)
    out = tmp_path / "out"
    env = {
        "WANDB_MODE": "offline",
        "HOME": str(tmp_path),
        "WANDB_API_KEY": "",
        "NETRC": str(tmp_path / "none"),
        "WANDB_BASE_URL": "http://127.0.0.1:9",
    }
    result = compare(str(tmp_path / "multirun"), "--out", str(out), "--wandb", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = find_wandb_files(out)
    info = wandb_run_info(path)
    assert info["job_type"] == "compare" and info["group"] == STUDY
    summary = wandb_summary(path)
    # default baseline: SFT (gold 0.2 at every seed); ppo gold mean 0.60 as in the tests above;
    # reinforce_pp - SFT: 0.45, 0.50, 0.70 -> 0.55; each group's three diffs > 0: p = 2/8 = 0.25, Holm
    # over 3 groups: 0.75, max(0.5, 0.75), max(0.25, 0.75) = 0.75
    assert summary["compare/baseline"] == "SFT"
    assert summary["compare/SFT/gold_reward_mean"] == pytest.approx(0.2)
    assert summary["compare/ppo/gold_reward_mean"] == pytest.approx(0.60)
    assert summary["compare/reinforce_pp/gold_reward_diff"] == pytest.approx(0.55)
    assert summary["compare/reinforce_pp/p_holm"] == pytest.approx(0.75)
    assert summary["compare/common_budget"] == 400
    assert summary["compare/groups"]["_type"] == "table-file" and summary["compare/groups"]["nrows"] == 4
    assert summary["compare/runs"]["nrows"] == 13
    table = json.loads(next(path.parent.glob("files/media/table/compare/groups_*.table.json")).read_text())
    rows = {r[table["columns"].index("group")]: r for r in table["data"]}
    assert rows["rloo"][table["columns"].index("eval/gold_reward:mean")] == pytest.approx(0.57)
    assert any(k.startswith("figures/") for k in summary)
    # offline, the W&B report and workspace are built (no network: W&B's server is an unused port) and
    # saved as JSON, with the command that creates them once logged in
    dashboard = json.loads((out / "wandb_report.json").read_text())
    blocks = dashboard["report_spec"]["spec"]["blocks"]
    assert any(all(c in b.get("content", "") for c in CLAIMS) for b in blocks)
    (line,) = [x for x in result.stdout.splitlines() if "to create them" in x]
    assert line.endswith(
        f"python -m align_lab.compare {tmp_path / 'multirun'} --by algo "
        f"--metric eval/gold_reward --budget generated_tokens --out {out} --wandb"
    )


def test_wandb_without_login_writes_offline_files_as_runs_do(tmp_path: Path) -> None:
    # no login and no WANDB_MODE: a run's tracker (mode auto) writes offline files; so does --wandb
    from tests.wandb_files import find_wandb_files, wandb_run_info

    make_sweep(tmp_path)
    out = tmp_path / "out"
    before = sorted((ROOT / "wandb").glob("*")) if (ROOT / "wandb").exists() else None  # another test's
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NETRC"}
    env |= {"HOME": str(tmp_path), "WANDB_BASE_URL": "http://127.0.0.1:9"}  # no server: nothing uploads
    result = subprocess.run(
        [sys.executable, "-m", "align_lab.compare", str(tmp_path / "multirun"), "--out", str(out), "--wandb"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"align_lab.compare: W&B offline: compare run in {out / 'wandb'}" in result.stdout
    (path,) = find_wandb_files(out)
    assert wandb_run_info(path)["group"] == STUDY and (out / "wandb_report.json").is_file()
    # nothing of this command's in ./wandb of the checkout (a unit test's bare wandb.init() may have made one
    # first: session note of 2026-12-02, 09:00)
    now = sorted((ROOT / "wandb").glob("*")) if (ROOT / "wandb").exists() else None
    assert not (tmp_path / "wandb").exists() and now == before, now


def test_wandb_disabled_prints_one_line_and_writes_nothing(tmp_path: Path) -> None:
    make_sweep(tmp_path)
    out = tmp_path / "out"
    env = {
        "WANDB_MODE": "disabled",
        "HOME": str(tmp_path),
        "WANDB_API_KEY": "",
        "NETRC": str(tmp_path / "no"),
    }
    result = compare(str(tmp_path / "multirun"), "--out", str(out), "--wandb", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "--wandb" in line or "W&B" in line]
    assert lines == ["align_lab.compare: WANDB_MODE=disabled: --wandb wrote nothing"]
    assert not (out / "wandb").exists() and not (out / "wandb_report.json").exists()


def test_baseline_and_by_options(tmp_path: Path) -> None:
    make_sweep(tmp_path)
    result = compare(str(tmp_path / "multirun"), "--out", str(tmp_path / "o1"), "--baseline", "rloo")
    assert result.returncode == 0, result.stderr
    rows = md_table((tmp_path / "o1" / "report.md").read_text(), "Paired comparison vs rloo")
    # ppo - rloo = -(rloo - ppo): 0.10, -0.05, 0.04 -> mean 0.03
    assert ci({r["group"]: r for r in rows}["ppo"]["mean diff [95% CI]"])[0] == pytest.approx(0.03, abs=1e-4)
    bad = compare(str(tmp_path / "multirun"), "--out", str(tmp_path / "o2"), "--baseline", "nope")
    assert bad.returncode == 2 and "--baseline nope: no such group" in bad.stderr
    by_seed = compare(str(tmp_path / "multirun"), "--out", str(tmp_path / "o3"), "--by", "seed")
    assert by_seed.returncode == 0, by_seed.stderr
    table = {r["group"]: r for r in md_table((tmp_path / "o3" / "report.md").read_text(), "Final metrics")}
    # seed 0 over the three algorithms: (0.50 + 0.65 + 0.40) / 3 = 0.5167
    assert ci(table["0"]["gold reward mean [95% CI]"])[0] == pytest.approx(0.5167, abs=1e-3)
    assert not math.isnan(float(table["3"]["excluded"]))


def test_the_default_baseline_is_sft_and_sft_is_a_row_of_the_group_table(tmp_path: Path) -> None:
    make_sweep(tmp_path)
    result = compare(str(tmp_path / "multirun"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "in 3 groups by algo; baseline SFT; eval/gold_reward:" in result.stdout
    sft_line = next(line for line in result.stdout.splitlines() if line.strip().startswith("SFT"))
    assert "n=3" in sft_line and "the reference every group started from" in sft_line
    assert "note: Baseline: SFT, the reference policy every group started from" in result.stdout
    md = (tmp_path / "out" / "report.md").read_text()
    table = md_table(md, "Final metrics per group")
    assert table[0]["group"] == "SFT" and table[0]["n"] == "3"  # first; seeds 0, 1, 2 completed
    # every run logs eval/gold_reward_sft 0.2 and eval/proxy_reward_sft 0.4; no SFT value for KL
    assert table[0]["gold reward mean [95% CI]"] == "0.2 [all seeds equal]"  # no width: said, not [0.2, 0.2]
    assert ci(table[0]["proxy reward mean [95% CI]"])[0] == pytest.approx(0.4)
    assert table[0]["KL mean [95% CI]"] == "n/a"
    rows = {r["group"]: r for r in md_table(md, "Paired comparison vs SFT")}
    # each run minus its own SFT gold: ppo 0.30, 0.40, 0.50 -> 0.40; rloo 0.20, 0.45, 0.46 -> 0.37
    assert set(rows) == {"ppo", "reinforce_pp", "rloo"}
    assert ci(rows["ppo"]["mean diff [95% CI]"])[0] == pytest.approx(0.40, abs=1e-4)
    assert ci(rows["rloo"]["mean diff [95% CI]"])[0] == pytest.approx(0.37, abs=1e-4)
    assert rows["ppo"]["baseline mean"] == "0.2"
    # SFT has no compute: the compute-matched view pairs with the first group, ppo
    assert "## Compute-matched: gold reward at 400 generated tokens" in md
    assert "Paired by seed vs ppo at the same budget:" in md


def test_compare_on_a_real_tiny_sweep(tmp_path: Path, cache_dir: Path) -> None:
    """3 algorithms x 2 seeds run in-process into sweep-like folders, then compared end to end."""
    from omegaconf import OmegaConf

    from tests.conftest import SMALL, compose, run_in_process

    sweep = tmp_path / "multirun" / "2025-01-01" / "12-00-00"
    num = 0
    for algo in ("dpo", "ppo", "reinforce_pp"):
        for seed in (0, 1):
            overrides = [f"algo={algo}", f"seed={seed}", "train.eval_every=1"]
            run_dir = sweep / f"{num}_{algo}_seed{seed}"
            num += 1
            # what Hydra writes into .hydra/ (run_in_process does not): config, choices, overrides
            cfg, names = compose([*SMALL, f"cache_dir={cache_dir}", *overrides])
            (run_dir / ".hydra").mkdir(parents=True)
            OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
            (run_dir / ".hydra" / "hydra.yaml").write_text(
                yaml.safe_dump({"hydra": {"runtime": {"choices": names}}})
            )
            (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            assert run_in_process(overrides, run_dir, cache_dir)["status"] == "completed"
    out = tmp_path / "report"
    result = compare(str(tmp_path / "multirun"), "--out", str(out), "--budget", "reward_queries")
    assert result.returncode == 0, result.stdout + result.stderr
    import pandas as pd

    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["group"]) == ["dpo", "dpo", "ppo", "ppo", "reinforce_pp", "reinforce_pp"]
    assert (runs["status"] == "completed").all() and runs["eval/gold_reward"].notna().all()
    # the table's group mean is the mean of the two seeds' summary.json values
    summaries = [json.loads(p.read_text()) for p in sweep.glob("*_ppo_seed*/summary.json")]
    table = {r["group"]: r for r in md_table((out / "report.md").read_text(), "Final metrics per group")}
    expected = sum(s["eval/gold_reward"] for s in summaries) / 2
    assert ci(table["ppo"]["gold reward mean [95% CI]"])[0] == pytest.approx(expected, rel=1e-3, abs=1e-3)
    assert table["ppo"]["n"] == "2"
    # online runs: 3 steps x 16 rollouts = 48 reward queries each; the common budget is the smallest
    # final count among the runs that have one
    queries = runs.loc[runs["counters/reward_queries"] > 0, "counters/reward_queries"]
    assert f"at {queries.min():,.0f} reward queries" in (out / "report.md").read_text()
    # step, generated tokens, trained tokens, queries, wall time, frontier, proxy/gold, by group
    assert len(list(out.glob("*.png"))) == 8
    # offline DPO generates nothing but trains on its pairs' tokens: it has a place on that axis
    dpo = runs[runs["group"] == "dpo"]
    assert (dpo["counters/generated_tokens"] == 0).all() and (dpo["counters/trained_tokens"] > 0).all()
    by_trained = compare(
        str(tmp_path / "multirun"), "--out", str(tmp_path / "t"), "--budget", "trained_tokens"
    )
    assert by_trained.returncode == 0, by_trained.stderr
    matched = {r["group"]: r for r in md_table((tmp_path / "t" / "report.md").read_text(), "Compute-matched")}
    assert matched["dpo"]["gold reward at budget mean [95% CI]"] != "n/a"  # in the compute-matched view


def test_the_studys_saved_claims_are_tested_with_holm_over_the_claims(report: Path) -> None:
    rows = {r["claim"]: r for r in md_table((report / "report.md").read_text(), "Claims")}
    assert list(rows) == CLAIMS
    # reinforce_pp - ppo per seed: 0.65-0.50, 0.70-0.60, 0.90-0.70 = 0.15, 0.10, 0.20 -> mean 0.15;
    # rloo - ppo wall time: 60-100, 70-110, 65-120 = -40, -40, -55 -> mean -45. Each 3 pairs all one sign:
    # exact p = 2/2^3 = 0.25; Holm over 2 claims: 0.25*2 = 0.5, then max(0.5, 0.25*1) = 0.5 for both.
    gold, wall = rows[CLAIMS[0]], rows[CLAIMS[1]]
    assert gold["mean a - b [95% CI]"].startswith("0.15 [") and wall["mean a - b [95% CI]"].startswith(
        "-45 ["
    )
    assert (gold["p"], gold["Holm p"], wall["p"], wall["Holm p"]) == ("0.25", "0.5", "0.25", "0.5")
    assert gold["verdict"] == wall["verdict"] == "inconclusive"
    assert "cannot go below p = 0.25" in gold["why"]
    assert "Claims" in (report / "report.html").read_text()
