"""Your own verifiable data end to end (docs/tasks.md): the shipped example file through a real HF model
(a tiny saved Llama, tests/hf_assets.py), scored by a verifier; pass@k as the evaluation's samples give it."""

from __future__ import annotations

import json
from math import comb

import pytest

from tests.conftest import ROOT
from tests.integration.test_real_models import run_real

EXAMPLE = ROOT / "examples" / "questions.jsonl"
KEYS = [
    "task=verifiable_data",
    f"task.path={EXAMPLE}",
    "task.prompt_column=question",
    "task.eval_rows=4",
    "model.max_prompt_tokens=48",  # the questions are up to 35 words, one token each here
]


def pass_at(n: int, c: int, k: int) -> float:
    """Chen et al.'s unbiased pass@k: 1 - C(n - c, k) / C(n, k)."""
    return 1.0 - comb(n - c, k) / comb(n, k)


def test_grpo_on_the_shipped_questions_reports_pass_at_k_from_its_samples(hf_assets, tmp_path, cache_dir):
    summary = run_real(
        [
            "algo=grpo",
            "algo.group_size=4",
            f"model.name_or_path={hf_assets.policy}",
            *KEYS,
            "reward=verifier",
            "train.eval_samples=3",
        ],
        tmp_path,
        cache_dir,
    )
    assert summary["status"] == "completed"
    samples = [json.loads(line) for line in (tmp_path / "eval_samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4 * 3  # 4 held-out questions x 3 samples
    correct = {}
    for s in samples:
        correct[s["prompt_id"]] = correct.get(s["prompt_id"], 0) + int(s["gold_reward"])
    assert summary["eval/pass@1"] == pytest.approx(sum(c / 3 for c in correct.values()) / 4, abs=1e-12)
    for k in (2, 3):  # pass@2 too: every power of two below eval_samples (rl.pass_ks)
        expected = sum(pass_at(3, c, k) for c in correct.values()) / 4
        assert summary[f"eval/pass@{k}"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.fast
def test_dpo_learns_from_pairs_your_verifier_function_labels(hf_assets, tmp_path, cache_dir, monkeypatch):
    # the tiny model never writes the right number: a verifier of your own makes the contrast (long is right)
    (tmp_path / "long_is_right.py").write_text(
        "def check(response, answer, prompt):\n    return float(len(response.split()) >= 3)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    keys = [*KEYS, "task.verifier=long_is_right:check", "task.n_pairs=16", "reward=verifier"]
    summary = run_real(
        ["algo=dpo", f"model.name_or_path={hf_assets.policy}", *keys], tmp_path / "run", cache_dir
    )
    assert summary["status"] == "completed"
    assert "preferences" in summary["stages"]
    assert 0.0 <= summary["eval/pass@1"] <= 1.0


def test_rows_skip_invalid_drops_are_counted_in_summary_json(hf_assets, tmp_path, cache_dir):
    """Forty-first hunt, case 53: docs/tasks.md says summary.json counts the rows task.skip_invalid=true
    drops; it had no count (the task's counter was never read), and no line said a row was dropped."""
    rows = EXAMPLE.read_text().splitlines()
    bad = json.dumps({"question": "How many legs has a bird?", "answer": "seven"})
    (tmp_path / "q.jsonl").write_text("\n".join([bad, *rows]) + "\n")
    keys = [k if not k.startswith("task.path=") else f"task.path={tmp_path / 'q.jsonl'}" for k in KEYS]
    run_dir = tmp_path / "run"
    summary = run_real(
        [
            "algo=grpo",
            "algo.group_size=4",
            f"model.name_or_path={hf_assets.policy}",
            *keys,
            "reward=verifier",
            "task.skip_invalid=true",
            "train.steps=1",
        ],
        run_dir,
        cache_dir,
    )
    assert summary["status"] == "completed" and summary["task/skipped_rows"] == 1
