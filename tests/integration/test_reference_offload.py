"""hardware.offload_reference: a run whose reference leaves memory between its forwards (models/offload.py)
logs every number a run holding it throughout logs, online and pairwise, with an evaluation between
steps; the reference is out of memory at every update; the summary says how much left."""

from __future__ import annotations

import json

import pytest
import torch

from align_lab.tracking import read_metrics
from align_lab.train import learner as learner_module
from tests.conftest import run_in_process


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/", "memory/"))} for r in rows]


@pytest.mark.parametrize("algo", ["rloo", "dpo"])
def test_an_offloaded_reference_gives_the_same_numbers_and_is_away_at_every_update(
    algo, tmp_path, cache_dir, monkeypatch
):
    away = []  # at each update: the reference out of memory (its parameters hold no element)
    original_step, original_pair_step = learner_module.Learner.step, learner_module.Learner.pair_step

    def noted(original):
        def step(self, *args, **kw):
            if self.models.reference is not None:
                away.append(all(p.numel() == 0 for p in self.models.reference.parameters()))
            return original(self, *args, **kw)

        return step

    monkeypatch.setattr(learner_module.Learner, "step", noted(original_step))
    monkeypatch.setattr(learner_module.Learner, "pair_step", noted(original_pair_step))
    overrides = [f"algo={algo}", "train.eval_every=2"]  # evaluations at steps 2 and 3
    run_in_process([*overrides, "hardware.offload_reference=true"], tmp_path / "off", cache_dir)
    assert away and all(away), away
    away.clear()
    run_in_process([*overrides, "hardware.offload_reference=false"], tmp_path / "held", cache_dir)
    assert away and not any(away), away
    off, held = (read_metrics(tmp_path / name / "metrics.jsonl") for name in ("off", "held"))
    assert [r["step"] for r in off if "eval/kl" in r] == [2, 3]
    assert untimed(off) == untimed(held)
    samples = [(tmp_path / name / "eval_samples.jsonl").read_bytes() for name in ("off", "held")]
    assert samples[0] == samples[1]
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("off", "held")]
    assert summaries[0]["memory/offloaded_reference_mb"] > 0 == summaries[1]["memory/offloaded_reference_mb"]
    assert list((tmp_path / "off").glob("offloaded-*")) == []  # the file was never a name in the folder


def test_step_3_runs_the_references_forward_before_the_policys_kept_graph(tmp_path, cache_dir, monkeypatch):
    """minibatch = rollout: step 3 keeps its graph for the first update; the reference's forward runs
    first, so the graph is never held beside it (nor the reference beside the graph)."""
    calls = []
    outputs, frozen = learner_module.Learner.outputs, learner_module.Learner.frozen_logprobs

    def policy(self, *rows):
        calls.append(("policy", torch.is_grad_enabled()))
        return outputs(self, *rows)

    def reference(self, model, rows):
        calls.append(("reference", None))
        return frozen(self, model, rows)

    monkeypatch.setattr(learner_module.Learner, "outputs", policy)
    monkeypatch.setattr(learner_module.Learner, "frozen_logprobs", reference)
    run_in_process(["algo=rloo", "train.minibatch_size=16", "train.steps=1"], tmp_path, cache_dir)
    assert calls[:2] == [("reference", None), ("policy", True)], calls  # the kept graph's forward: after
