"""A LoRA run's reference is its policy's frozen base weights (run/build.py `shared_base`): one copy of
the weights, every logged number the one a run with the reference loaded beside the policy logs, and a
separate reference where the weights could differ (model.reference, DeepSpeed)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from align_lab.run import build as run_module
from align_lab.tracking import read_metrics
from tests.conftest import run_in_process
from tests.unit.models.test_sequences import tiny
from tests.unit.rollout.test_rollout_sampling import with_lora


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/", "memory/"))} for r in rows]


def storages(model) -> set[int]:
    return {p.untyped_storage().data_ptr() for p in model.parameters()}


def test_a_lora_run_holds_one_copy_of_the_weights_and_logs_what_a_loaded_reference_gives(
    tmp_path, cache_dir, monkeypatch
):
    from align_lab.train.context import Context

    seen, sizings = [], []
    original = run_module.train_online
    monkeypatch.setattr(run_module, "train_online", lambda a, ctx: seen.append(ctx) or original(a, ctx))
    build = Context.build.__func__  # the memory plan's inputs (Sizing) are the builder's, not the Context's

    def recorded(cls, *, plan=None, **fields):
        sizings.append(plan)
        return build(cls, plan=plan, **fields)

    monkeypatch.setattr(Context, "build", classmethod(recorded))
    # rows per micro-batch fixed: `auto` gives activations a share of the weights held, fewer with one copy
    overrides = ["algo=reinforce_pp", "lora.enabled=true", "algo.lr=1e-3", "train.micro_batch_size=4"]
    run_in_process(overrides, tmp_path / "shared", cache_dir)
    monkeypatch.setattr(run_module, "shared_base", lambda *args: None)  # the reference loaded, as before
    run_in_process(overrides, tmp_path / "loaded", cache_dir)
    shared, loaded = seen
    assert storages(shared.models.reference) <= storages(shared.models.policy)
    assert not storages(loaded.models.reference) & storages(loaded.models.policy)
    weights = sum(p.numel() * p.element_size() for p in loaded.models.reference.parameters())
    assert shared.memory.peak.weights == loaded.memory.peak.weights - weights
    # what a KL-free run's evaluation loads
    assert [sizing.reference_loads for sizing in sizings] == [False, True]
    ours, theirs = (read_metrics(tmp_path / name / "metrics.jsonl") for name in ("shared", "loaded"))
    assert "eval/kl" in ours[-1] and untimed(ours) == untimed(theirs)


def test_the_reference_is_loaded_where_another_checkpoint_or_deepspeed_could_make_it_differ():
    policy = with_lora(tiny("llama"))
    sft = Path("/stages/sft")

    def spec(deepspeed: bool):
        return SimpleNamespace(backend=SimpleNamespace(uses_deepspeed=deepspeed))

    def stages(reference: Path):
        return SimpleNamespace(sft_path=sft, model=SimpleNamespace(reference_path=lambda path: reference))

    assert run_module.shared_base(spec(False), stages(sft), policy) is not None
    assert run_module.shared_base(spec(False), stages(Path("/checkpoints/other")), policy) is None
    assert run_module.shared_base(spec(True), stages(sft), policy) is None
