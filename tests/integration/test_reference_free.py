"""SimPO and ORPO train without a reference model (issue 36): training holds none, evaluation loads the
SFT policy for its reference numbers and frees it, and every logged number is the one a run holding the
reference all along logs."""

from __future__ import annotations

import dataclasses

import pytest

from align_lab.run import build as run_module
from align_lab.tracking import read_metrics
from tests.conftest import run_in_process


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/"))} for r in rows]


@pytest.mark.parametrize("algo", ["simpo", "orpo"])
def test_a_reference_free_run_holds_no_reference_and_evaluates_as_before(
    algo, tmp_path, cache_dir, monkeypatch
):
    seen = []
    original_loop, original_context = run_module.train_pairwise, run_module.build_context

    def loop(algorithm, ctx):
        seen.append(ctx.models.reference)
        return original_loop(algorithm, ctx)

    monkeypatch.setattr(run_module, "train_pairwise", loop)
    overrides = [f"algo={algo}", "train.eval_every=2"]  # two evaluations: at step 2 and the last, 3
    run_in_process(overrides, tmp_path / "free", cache_dir)

    def holding(spec, stages, *args):  # the run as it was: the reference loaded beside the policy
        ctx = original_context(spec, stages, *args)
        held = dataclasses.replace(ctx.models, reference=run_module.frozen_reference(stages))  # frozen
        return dataclasses.replace(ctx, models=held)

    monkeypatch.setattr(run_module, "build_context", holding)
    run_in_process(overrides, tmp_path / "held", cache_dir)
    assert seen[0] is None and seen[1] is not None
    free, held = (read_metrics(tmp_path / name / "metrics.jsonl") for name in ("free", "held"))
    assert [r["step"] for r in free if "eval/kl" in r] == [2, 3]
    assert untimed(free) == untimed(held)


def test_dpo_still_holds_its_reference(tmp_path, cache_dir, monkeypatch):
    seen = []
    original = run_module.train_pairwise
    monkeypatch.setattr(
        run_module, "train_pairwise", lambda a, ctx: seen.append(ctx.models.reference) or original(a, ctx)
    )
    run_in_process(["algo=dpo"], tmp_path, cache_dir)
    assert seen[0] is not None
