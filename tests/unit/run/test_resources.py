"""What a run asks a scheduler for: scaled by the models it holds and by its data-parallel processes."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import re
import time
from types import SimpleNamespace

import pytest

from align_lab.models.hf import HFModel
from align_lab.run.admission import spec_from_config
from align_lab.run.resources import (
    ResourcePolicy,
    allowed_cores,
    default_max_parallel,
    memory_per_model,
    request,
    threads_given,
)
from align_lab.study.slots import hold_slot
from tests.conftest import compose


def _request(overrides: list[str]) -> dict:
    cfg, names = compose(overrides)
    spec = spec_from_config(cfg, names)
    return request(spec.hardware.resources, spec)


@pytest.mark.parametrize(
    "overrides,expected",
    [
        # 4 models (policy, reference, critic, reward model) x 1 GB; 1 process
        (["algo=ppo"], {"cpus_per_task": 1, "mem_gb": 4, "gpus_per_node": 0}),
        # 2 processes: one core and the models' memory per process
        (["algo=ppo", "hardware=cpu_ddp"], {"cpus_per_task": 2, "mem_gb": 8, "gpus_per_node": 0}),
        # 8 processes x 4 cores; 4 models x 8 GB x 8 processes; 8 GPUs (one per process)
        (["algo=ppo", "hardware=slurm_8gpu"], {"cpus_per_task": 32, "mem_gb": 256, "gpus_per_node": 8}),
        # DPO holds 3 (policy, reference, the reward model that scores evaluations): 3 x 8 GB x 8
        (["algo=dpo", "hardware=slurm_8gpu"], {"cpus_per_task": 32, "mem_gb": 192, "gpus_per_node": 8}),
        # one process: 4 models x 0.25 GPU -> 1 GPU, 8 cores, 4 x 16 GB
        (["algo=ppo", "hardware=slurm_1gpu"], {"cpus_per_task": 8, "mem_gb": 64, "gpus_per_node": 1}),
    ],
)
def test_a_runs_request_follows_its_models_and_processes(overrides, expected):
    got = _request(overrides)
    assert {k: got[k] for k in expected} == expected


def test_a_model_presets_memory_per_model_sizes_the_request_unless_hardware_sets_it(hf_assets):
    cfg, names = compose(["algo=ppo"])
    toy = spec_from_config(cfg, names)
    real = dataclasses.replace(toy, model=HFModel(name_or_path=str(hf_assets.policy), mem_gb_per_model=3.0))
    assert toy.hardware.resources.mem_gb_per_model is None  # the default: the model's word
    assert request(toy.hardware.resources, toy)["mem_gb"] == 4  # the toy model says nothing: 4 x 1 GB
    assert request(real.hardware.resources, real)["mem_gb"] == 12  # 4 models x 3 GB
    assert request(ResourcePolicy(mem_gb_per_model=1.5), real)["mem_gb"] == 6  # hardware's key wins
    assert memory_per_model(ResourcePolicy(), SimpleNamespace(memory_per_model_gb=lambda: None)) == 1.0


def test_a_checkpoint_without_a_preset_figure_is_sized_from_its_parameters(hf_assets):
    from transformers import AutoModelForCausalLM

    from align_lab.models.hf import BYTES_PER_PARAMETER
    from align_lab.models.hf_io import parameter_count

    params = AutoModelForCausalLM.from_pretrained(str(hf_assets.policy)).num_parameters()
    assert parameter_count(hf_assets.policy) == params  # from the safetensors headers, tied weights once
    model = HFModel(name_or_path=str(hf_assets.policy))
    assert model.memory_per_model_gb() == round(params * BYTES_PER_PARAMETER / 2**30, 3)
    assert parameter_count(hf_assets.policy.parent) is None  # no safetensors there: 1 GB a model


def test_a_bad_memory_per_model_is_one_line_naming_the_key(hf_assets):
    with pytest.raises(ValueError, match=r"mem_gb_per_model=0.0: must be a finite number > 0"):
        HFModel(name_or_path=str(hf_assets.policy), mem_gb_per_model=0.0)
    with pytest.raises(Exception, match=r"mem_gb_per_model"):
        ResourcePolicy(mem_gb_per_model=-1.0)


@pytest.mark.parametrize(
    "cpus,mem,cores,machine_mem,expected",
    [
        (1, 4, 2, 24.0, 2),  # 2 cores / 1 core = 2; 24 GB / 4 GB = 6 -> cores bound: 2
        (1, 4, 16, 23.5, 5),  # 16 / 1 = 16; 23.5 GB / 4 GB = 5.9 -> memory bound: 5
        (2, 8, 2, 24.0, 1),  # a 2-process run on 2 cores: one at a time
        (4, 1, 2, 24.0, 1),  # a run asking more cores than there are still runs, alone
    ],
)
def test_default_max_parallel_is_cores_over_cpus_bounded_by_memory(cpus, mem, cores, machine_mem, expected):
    assert default_max_parallel(cpus, mem, cores, machine_mem) == expected


def test_threads_are_the_cores_a_run_was_given():
    # a run on its own: every core it may use, split over its processes
    assert threads_given(None, 1, env={}, cores=2) == 2
    assert threads_given(None, 1, processes=2, env={}, cores=8) == 4
    assert threads_given(None, 1, processes=3, env={}, cores=2) == 1  # at least one
    assert threads_given(None, 1, env={"OMP_NUM_THREADS": "1"}, cores=8) == 1  # the user's cap
    # a job of a local sweep: the cores the sweep gave it (resources.cpus_per_task, per process)
    assert threads_given(None, 1, env={"SUBMITIT_EXECUTOR": "local"}, cores=8) == 1
    assert threads_given(None, 3, processes=2, env={"SUBMITIT_EXECUTOR": "local"}, cores=8) == 3
    assert threads_given(None, 1, processes=2, env={"SLURM_CPUS_PER_TASK": "8"}) == 4  # 8 cores / 2
    assert threads_given(2, 1, env={"SLURM_CPUS_PER_TASK": "8"}) == 2  # an explicit value wins
    assert threads_given(0, 1, env={}) == 0  # 0: torch's default


def test_a_model_presets_max_threads_caps_the_default_but_not_a_set_value():
    assert threads_given(None, 1, env={}, cores=2, max_threads=1) == 1  # tiny models (TinyLM.max_threads)
    assert threads_given(None, 1, env={}, cores=8, max_threads=4) == 4
    assert threads_given(None, 1, env={}, cores=2, max_threads=4) == 2
    assert threads_given(None, 1, env={"SLURM_CPUS_PER_TASK": "8"}, max_threads=1) == 1
    assert threads_given(2, 1, env={}, cores=2, max_threads=1) == 2  # hardware.num_threads set: it wins
    assert threads_given(None, 1, env={}, cores=2, max_threads=None) == 2  # no cap


def test_tiny_models_run_on_one_thread_and_keep_their_stage_keys():
    from align_lab.models.tiny import TinyLM

    assert TinyLM().max_threads == 1
    assert TinyLM().fingerprint() == TinyLM(max_threads=None).fingerprint()  # the cap is not the model
    assert "max_threads" not in TinyLM().fingerprint()
    with pytest.raises(ValueError, match=r"max_threads=0: must be >= 1 or null"):
        TinyLM(max_threads=0)


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"cpu.max": "max 100000\n"}, 64),  # no quota: the affinity's 64 cores
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 cores of quota: 2 threads
        ({"cpu.max": "100000 100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "300000", "cpu/cpu.cfs_period_us": "100000"}, 3),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, 64),  # v1, no quota
        ({}, 64),  # no cgroup files
    ],
)
def test_allowed_cores_is_the_affinity_bounded_by_the_cgroup_quota(files, expected, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert allowed_cores(tmp_path) == expected


def test_the_default_run_uses_every_core_and_a_slurm_job_its_cores(monkeypatch):
    for var in ("SLURM_CPUS_PER_TASK", "SUBMITIT_EXECUTOR", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    cfg, names = compose([])
    assert spec_from_config(cfg, names).hardware.threads() == allowed_cores()
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")  # a job of hardware=submitit_local's sweep
    assert spec_from_config(cfg, names).hardware.threads() == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "32")  # hardware=slurm_8gpu asks 8 processes x 4 cores
    cfg, names = compose(["hardware=slurm_8gpu"])
    assert spec_from_config(cfg, names).hardware.threads() == 4


def _hold(folder, log, index):
    with hold_slot(folder, 2, poll_s=0.02):
        with open(log, "a") as f:
            f.write(f"{index} start {time.monotonic()}\n")
        time.sleep(0.3)
        with open(log, "a") as f:
            f.write(f"{index} end {time.monotonic()}\n")


def test_hold_slot_lets_at_most_slots_processes_in_at_once(tmp_path):
    log = tmp_path / "log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hold, args=(tmp_path / "slots", log, i)) for i in range(5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    events = sorted((float(t), kind) for _, kind, t in (x.split() for x in log.read_text().splitlines()))
    inside, most = 0, 0
    for _, kind in events:
        inside += 1 if kind == "start" else -1
        most = max(most, inside)
    assert len(events) == 10 and most == 2  # 5 holders, 2 at a time, never 3


def test_slurm_multinode_on_gpus_asks_for_a_gpu_per_process_and_a_cuda_run_asking_none_is_refused():
    """Issue 70 item 5: the preset inherited max_gpus 0, so its documented GPU command asked Slurm for
    min(0, ceil(2 x 4 models)) = 0 GPUs a node, and every task then found no CUDA device."""
    from types import SimpleNamespace

    from align_lab.study.submission import check_gpus
    from align_lab.value_checks import ConfigError

    gpu = ["algo=ppo", "hardware=slurm_multinode", "hardware.device=cuda", "hardware.processes=8"]
    # 4 models x 2 GPUs = 8, capped at max_gpus 8, at least one per process: 8 a node
    assert _request([*gpu, "hardware.resources.gpus_per_model=2"])["gpus_per_node"] == 8
    # DPO's 3 models x 2 = 6 GPUs, raised to the 8 processes
    assert _request(["algo=dpo", *gpu[1:], "hardware.resources.gpus_per_model=2"])["gpus_per_node"] == 8
    cfg, names = compose(gpu)  # gpus_per_model 0 (the cpu preset's): 0 GPUs
    job = SimpleNamespace(spec=spec_from_config(cfg, names))
    message = (
        r"^hardware.device=cuda: the run asks for 0 GPUs \(hardware.resources.gpus_per_model=0.0, "
        r"max_gpus=8\); set both above 0 \(one GPU per process at least\) or use hardware.device=cpu$"
    )
    with pytest.raises(ConfigError, match=message):
        check_gpus([(0, [], job)])
    cfg, names = compose(["hardware=slurm_1gpu"])  # a GPU preset passes
    check_gpus([(0, [], SimpleNamespace(spec=spec_from_config(cfg, names)))])


def test_the_trainers_budget_on_a_gpu_leaves_vllm_its_share(monkeypatch):
    """Issue 70 item 6: micro-batches were planned in the whole GPU's memory while vLLM held
    rollout.gpu_memory_utilization of it. 80 GiB x (1 - 0.3) = 56 GiB for the trainer (a share null until
    the run chooses it on its GPU: tests/unit/run/test_gpu_placement.py)."""
    from align_lab.run import hardware

    monkeypatch.setattr(hardware, "default_budget", lambda device, processes: 80 * 2**30)
    cfg, names = compose(["rollout=vllm", "hardware.device=cuda", "rollout.gpu_memory_utilization=0.3"])
    spec = spec_from_config(cfg, names)
    assert spec.hardware.trainer_bytes(spec.rollout.gpu_share) == 56 * 2**30
    cfg, names = compose(["rollout=vllm", "hardware.device=cuda", "hardware.memory_gb=40"])
    spec = spec_from_config(cfg, names)  # a budget the user set is the trainer's as it was
    assert spec.hardware.trainer_bytes(spec.rollout.gpu_share) == 40 * 2**30
    cfg, names = compose(["hardware.device=cuda"])  # rollout=hf samples the trainer's own weights
    spec = spec_from_config(cfg, names)
    assert spec.hardware.trainer_bytes(getattr(spec.rollout, "gpu_share", 0.0)) == 80 * 2**30


@pytest.mark.parametrize("value", ["abc", "0", "-2", "2.5"])
def test_a_slurm_cpus_per_task_that_is_no_whole_number_is_one_line_naming_it(value, monkeypatch):
    """Hunt of 2026-12-04: SLURM_CPUS_PER_TASK=abc in a shell was int()'s 51-line traceback, after the run
    folder was made; now refused where the hardware is built, before anything is written."""
    from align_lab.run.hardware import Hardware
    from align_lab.value_checks import ConfigError

    said = f"SLURM_CPUS_PER_TASK='{value}': must be a whole number >= 1 (Slurm sets it in a job"
    with pytest.raises(ConfigError, match=re.escape(said)):
        threads_given(None, 1, env={"SLURM_CPUS_PER_TASK": value})
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", value)
    with pytest.raises(ConfigError, match=re.escape(said)):
        Hardware()
    assert Hardware(num_threads=2).threads() == 2  # a number of threads given: the variable is not read
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert Hardware(processes=2).threads() == 3
