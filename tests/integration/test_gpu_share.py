"""rollout=vllm's share of the GPU chosen where a run builds its parts (issue 70 item 6), on CPU: the
device is said to be a GPU of 80 GiB (run/build.py's default_budget monkeypatched), the models stay on
the CPU. vLLM itself is not started (the engine starts at the first rollout)."""

from __future__ import annotations

from align_lab.cache import StageCache
from align_lab.run import build, hardware
from align_lab.run.admission import spec_from_config
from align_lab.tracking import MultiTracker
from align_lab.tracking.progress import progress_factory
from align_lab.train.context import Sizing
from align_lab.train.submitit_signals import Preemption
from tests.conftest import FULL, compose

GIB = 2**30


@FULL
def test_a_null_share_is_chosen_for_the_policy_and_the_trainer_plans_in_the_rest(
    tmp_path, cache_dir, monkeypatch
):
    for module in (build, hardware):  # the GPU's memory: where the share is chosen, the trainer's budget
        monkeypatch.setattr(module, "default_budget", lambda device, processes=1: 80 * GIB)
    overrides = ["algo=grpo", "rollout=vllm", "hardware.device=cuda", f"cache_dir={cache_dir}"]
    spec = spec_from_config(*compose(overrides))
    assert spec.rollout.gpu_memory_utilization is None
    quiet = progress_factory(enabled=False)
    stages = build.stages_of(spec, StageCache(spec.cache_dir), quiet, 2**30)
    sized = []  # the plan's inputs (train/context.py Sizing): the budget is one, not a Context field
    monkeypatch.setattr(build, "Sizing", lambda **how: sized.append(how) or Sizing(**how))
    build.build_context(spec, stages, tmp_path / "checkpoints", MultiTracker([]), quiet, Preemption())
    # the toy policy's bfloat16 weights are under 1 MiB: (4 GiB + < 0.01 x 80 GiB) / 80 GiB = 0.05 + a
    # little, up to a hundredth: 0.06; the trainer plans in 80 GiB x (1 - 0.06) = 75.2 GiB
    assert spec.rollout.gpu_memory_utilization == 0.06
    assert sized[0]["budget"] == int(80 * GIB * (1 - 0.06))
