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


@pytest.fixture
def offloads_made(monkeypatch) -> list:
    """Every Offloaded a run makes (models/offload.py), to look at after the run."""
    from align_lab.models import offload as offload_module

    made, original = [], offload_module.Offloaded.__init__

    def noted(self, *args, **kw):
        original(self, *args, **kw)
        made.append(self)

    monkeypatch.setattr(offload_module.Offloaded, "__init__", noted)
    return made


def let_go(offload) -> bool:
    """Whether an Offloaded let go of its file: closed, by the run's end or by its writing thread as the
    write ended (waited for here), and no longer held from the user's code."""
    from align_lab.user_fds import HELD

    if offload.writing is not None:
        offload.writing.join(timeout=30)
    return offload.closed and offload.file.closed and "offloaded reference's file" not in HELD.values()


@pytest.mark.parametrize("where", ["update", "context"])
def test_a_run_that_fails_lets_go_of_the_file_as_it_ends(
    where, tmp_path, cache_dir, monkeypatch, offloads_made
):
    """A run that raises in its second update, or as its Context is built after the writing thread
    started, closes the file then, not at a garbage collection inside a later run of the process."""
    from align_lab.train import context as context_module

    calls = []
    if where == "update":
        original = learner_module.Learner.step

        def failing(self, *args, **kw):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("a bug in the update")
            return original(self, *args, **kw)

        monkeypatch.setattr(learner_module.Learner, "step", failing)
    else:

        def failing(*args, **kw):
            raise RuntimeError("a bug in the context")

        monkeypatch.setattr(context_module.Context, "build", failing)
    with pytest.raises(Exception, match="a bug in the"):
        run_in_process(["algo=rloo", "hardware.offload_reference=true"], tmp_path, cache_dir)
    [offload] = offloads_made
    assert let_go(offload)  # its weights not read back: the run failed, they are of no further use


def test_a_reference_whose_file_failed_is_priced_and_recorded_as_in_memory(
    tmp_path, cache_dir, monkeypatch, offloads_made
):
    def full(fd, data, offset):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("align_lab.models.offload.os.pwrite", full)
    run_in_process(
        ["algo=rloo", "hardware.offload_reference=true", "train.steps=1"], tmp_path / "full", cache_dir
    )
    monkeypatch.undo()
    run_in_process(
        ["algo=rloo", "hardware.offload_reference=false", "train.steps=1"], tmp_path / "held", cache_dir
    )
    full, held = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("full", "held"))
    assert full["memory/offloaded_reference_mb"] == 0 == held["memory/offloaded_reference_mb"]
    assert full["memory/predicted_peak_mb"] == held["memory/predicted_peak_mb"]
    [offload] = offloads_made
    assert let_go(offload) and offload.unwritten is not None and not offload.away  # a completed run's end


def test_the_machines_limits_are_measured_before_the_first_step(tmp_path, cache_dir, monkeypatch):
    """perf/'s 1 GiB read lies beside the weights alone (train/roofline.py prime), not beside the first
    update's gradients and optimiser state."""
    from align_lab.train import roofline

    events = []
    monkeypatch.delenv(roofline.ENV, raising=False)
    for where in ("align_lab.run.build", "align_lab.train.cadence"):  # a machine_limits.json of its own
        monkeypatch.setattr(f"{where}.default_cache_dir", lambda: tmp_path / "limits")

    def measured(device, dtype):
        events.append("measure")
        return {"bandwidth": 1e10, "peak_flops": 1e11, "measured": "here"}

    original = learner_module.Learner.step

    def step(self, *args, **kw):
        events.append("step")
        return original(self, *args, **kw)

    monkeypatch.setattr(roofline, "measure", measured)
    monkeypatch.setattr(learner_module.Learner, "step", step)
    run_in_process(["algo=rloo", "train.steps=1"], tmp_path / "run", cache_dir)
    assert events[:2] == ["measure", "step"] and events.count("measure") == 1, events
    assert [r["perf/rollout_mbu"] > 0 for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [True]
