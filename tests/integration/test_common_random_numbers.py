"""Common random numbers end to end: two arms that train the very same policy under two names, paired
by seed, evaluate the same samples, so compare's paired difference is exactly 0 on every eval metric
(a CI of no width, "all seeds equal", p = 1, inconclusive), and every run keeps its samples in
eval_samples.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from align_lab.tracking.samples import SAMPLES_FILE, read_samples
from tests.integration.test_compare import compare, md_table

METRICS = [
    "eval/gold_reward",
    "eval/proxy_reward",
    "eval/kl",
    "eval/win_rate_vs_sft",
    "eval/response_length",
    "eval/finished_fraction",
    "eval/distinct_1",
    "eval/distinct_2",
    "eval/repeated_words",
    "eval/rm_score",
]


def make_study(root: Path, cache_dir: Path) -> Path:
    """Arms a and b (a root key `arm`, as sweeps/arm/ sets it) x seeds 0, 1: identical runs but for the
    name. 3 steps, evaluated after each (2 samples a prompt)."""
    from omegaconf import OmegaConf

    from tests.conftest import SMALL, compose, run_in_process

    sweep = root / "multirun" / "crn"
    for num, (arm, seed) in enumerate((a, s) for a in "ab" for s in (0, 1)):
        overrides = [
            f"+arm={arm}",
            "compare_by=arm",
            f"seed={seed}",
            "train.eval_every=1",
            "train.eval_samples=2",
        ]
        run_dir = sweep / f"{num}_{arm}_seed{seed}"
        cfg, names = compose([*SMALL, f"cache_dir={cache_dir}", *overrides])
        (run_dir / ".hydra").mkdir(parents=True)  # what Hydra writes (run_in_process does not)
        OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
        (run_dir / ".hydra" / "hydra.yaml").write_text(
            yaml.safe_dump({"hydra": {"runtime": {"choices": names}}})
        )
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        assert run_in_process(overrides, run_dir, cache_dir)["status"] == "completed"
    return sweep


def test_identical_arms_differ_by_exactly_zero_and_keep_the_same_samples(
    tmp_path: Path, cache_dir: Path
) -> None:
    sweep = make_study(tmp_path, cache_dir)
    for seed in (0, 1):
        a, skipped_a = read_samples(sweep / f"{seed}_a_seed{seed}" / SAMPLES_FILE)
        b, skipped_b = read_samples(sweep / f"{2 + seed}_b_seed{seed}" / SAMPLES_FILE)
        assert skipped_a == skipped_b == 0 and a == b
        # 3 evaluations (steps 1, 2, 3) x 18 held-out prompts x 2 samples
        assert [r["step"] for r in a] == [1] * 36 + [2] * 36 + [3] * 36
        metrics = [json.loads(line) for line in (sweep / f"{seed}_a_seed{seed}" / "metrics.jsonl").open()]
        final = [r for r in a if r["step"] == 3]  # eval/X is the mean of field X over the step's records
        for key in ("gold_reward", "kl", "proxy_reward", "win_rate_vs_sft"):
            assert abs(metrics[-1][f"eval/{key}"] - sum(r[key] for r in final) / 36) < 1e-9
    seed0 = read_samples(sweep / "0_a_seed0" / SAMPLES_FILE)[0]
    assert seed0 != read_samples(sweep / "1_a_seed1" / SAMPLES_FILE)[0]  # another seed, other draws

    out = tmp_path / "report"
    claims = [arg for m in METRICS for arg in ("--claim", f"a > b on {m}")]
    result = compare(str(sweep), "--out", str(out), "--by", "arm", "--baseline", "b", *claims)
    assert result.returncode == 0, result.stdout + result.stderr
    md = (out / "report.md").read_text()
    rows = {r["claim"]: r for r in md_table(md, "Claims")}
    for metric in METRICS:
        row = rows[f"a > b on {metric}"]
        # two pairs of equal numbers: differences (0, 0), mean 0, s = 0 -> CI 0 +- t * 0 / sqrt(2), of no
        # width, said "all seeds equal"; every sign pattern of (0, 0) has |mean| 0 >= 0: p = 4/4 = 1
        assert (row["pairs"], row["mean a - b [95% CI]"], row["p"]) == ("2", "0 [all seeds equal]", "1"), (
            metric
        )
        assert row["Holm p"] == "1" and row["verdict"] == "inconclusive", metric
    (paired,) = [r for r in md_table(md, "Paired comparison vs b") if r["group"] == "a"]
    assert paired["mean diff [95% CI]"] == "0 [all seeds equal]" and paired["p"] == "1"
    samples = md_table(md, "Samples")
    assert len(samples) == 3 and all(r["a"] == r["b"] for r in samples)
    assert [r["prompt"] for r in samples] == [r["prompt"] for r in seed0[:6:2]]  # prompt ids 0, 1, 2
