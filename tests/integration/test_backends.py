"""Training backends (train/backend.py) on CPU: DeepSpeed ZeRO-2/3 in one process against the torch
backend, bf16 autocast, gradient checkpointing, LoRA through peft, and their one-line config errors.

The first DeepSpeed run of a machine JIT-compiles DeepSpeed's shared-memory op (about a minute on 2
cores), cached under TORCH_EXTENSIONS_DIR (default ~/.cache/torch_extensions) for every later run."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from align_lab.config import ConfigError
from align_lab.run.admission import spec_from_config
from align_lab.run.cross_checks import check_run
from align_lab.tracking import read_metrics
from tests.conftest import FULL, compose, full_but, run_in_process
from tests.integration.test_faults import _read_only_mounts_work

STEPS = ["train.steps=2", "seed=1"]
_torch_runs: dict[str, list[dict]] = {}


def _rows(run_dir) -> list[dict]:
    return read_metrics(run_dir / "metrics.jsonl")


def _torch_rows(algo: str, tmp_path_factory, cache_dir) -> list[dict]:
    """The torch backend's metrics for `algo` (run once per session)."""
    if algo not in _torch_runs:
        run_dir = tmp_path_factory.mktemp(f"torch_{algo}")
        run_in_process([f"algo={algo}", *STEPS], run_dir, cache_dir)
        _torch_runs[algo] = _rows(run_dir)
    return _torch_runs[algo]


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/"))} for r in rows]


@pytest.mark.parametrize(
    "algo,stage",
    [("reinforce_pp", 2), ("reinforce_pp", 3), ("dpo", 2), ("dpo", 3), ("ppo", 2)],
)
def test_deepspeed_zero_run_completes_and_its_first_step_equals_the_torch_backend(
    algo, stage, tmp_path, tmp_path_factory, cache_dir
):
    reference = _torch_rows(algo, tmp_path_factory, cache_dir)
    overrides = [f"algo={algo}", *STEPS, "hardware.backend=deepspeed", f"hardware.zero_stage={stage}"]
    import deepspeed  # noqa: F401  its import sets PYTORCH_NVML_BASED_CUDA_CHECK once a process: no engine's

    environment = dict(os.environ)
    summary = run_in_process(overrides, tmp_path, cache_dir)
    assert summary["status"] == "completed"
    # nothing of the engine's stays in the environment a later child inherits (LOCAL_RANK left here made
    # a TRL benchmark started later by this process wait for a process group)
    assert {k: v for k, v in os.environ.items() if environment.get(k) != v} == {}
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["train/loss"]) and math.isfinite(r["train/grad_norm"]) for r in rows)
    assert math.isfinite(summary["eval/gold_reward"])
    # same weights, same data, same AdamW: only float reduction order differs (ZeRO's flat buffers)
    for key in ("train/loss", "train/grad_norm"):
        assert rows[0][key] == pytest.approx(reference[0][key], rel=1e-4, abs=1e-6), key
    # the engine's checkpoint lives next to the run's: the last two saves are kept
    assert 1 <= len(list((tmp_path / "checkpoints" / "deepspeed").glob("step-*"))) <= 2
    if stage == 3 and algo != "dpo":  # sampled from a whole copy gathered at every rollout: never stale
        assert all(r["rollout/mismatch_kl"] < 1e-9 for r in rows)


def test_zero3_rollouts_from_a_whole_copy_equal_those_gathered_layer_by_layer(tmp_path, cache_dir):
    # rollout.zero3_whole_copy: the same tokens and updates, only the sampler's log-prob rounding differs
    base = ["algo=reinforce_pp", *STEPS, "hardware.backend=deepspeed", "hardware.zero_stage=3"]
    rows = {}
    for whole in (True, False):
        run_in_process([*base, f"rollout.zero3_whole_copy={whole}"], tmp_path / str(whole), cache_dir)
        rows[whole] = [
            {k: v for k, v in r.items() if not k.startswith(("time/", "perf/", "rollout/mismatch"))}
            for r in _rows(tmp_path / str(whole))
        ]
    assert len(rows[True]) == 2 and rows[True] == rows[False]


class Interrupt(BaseException):
    pass


def _interrupted_then_resumed(overrides, full, resumed, cache_dir, monkeypatch, after: int = 2) -> None:
    """Runs `overrides` to the end in `full` (None: the caller has); in `resumed`, dies after step
    `after` and is run again."""
    from align_lab.tracking import JsonlTracker

    if full is not None:
        run_in_process(overrides, full, cache_dir)
    original = JsonlTracker.log

    def log_then_die(self, metrics, step):
        original(self, metrics, step)
        if step == after:
            raise Interrupt  # the last checkpoint is this step's (checkpoint_every=1)

    monkeypatch.setattr(JsonlTracker, "log", log_then_die)
    with pytest.raises(Interrupt):
        run_in_process(overrides, resumed, cache_dir)
    monkeypatch.setattr(JsonlTracker, "log", original)
    run_in_process(overrides, resumed, cache_dir)
    assert json.loads((resumed / "summary.json").read_text())["status"] == "completed"


def test_deepspeed_zero3_run_resumes_to_the_same_metrics_within_float_tolerance(
    tmp_path, cache_dir, monkeypatch
):
    overrides = ["algo=reinforce_pp", "seed=2", "train.steps=3", "hardware.backend=deepspeed"]
    overrides.append("hardware.zero_stage=3")
    _interrupted_then_resumed(overrides, tmp_path / "full", tmp_path / "resumed", cache_dir, monkeypatch)
    full, resumed = _strip(_rows(tmp_path / "full")), _strip(_rows(tmp_path / "resumed"))
    assert [r["step"] for r in resumed] == [1, 2, 3]
    for a, b in zip(full, resumed, strict=True):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-6)


def test_bf16_autocast_run_completes_near_the_fp32_run(tmp_path, tmp_path_factory, cache_dir):
    reference = _torch_rows("reinforce_pp", tmp_path_factory, cache_dir)
    summary = run_in_process(["algo=reinforce_pp", *STEPS, "hardware.dtype=bf16"], tmp_path, cache_dir)
    assert summary["status"] == "completed"
    first = _rows(tmp_path)[0]
    assert math.isfinite(first["train/loss"])
    # bf16 matmuls (8-bit mantissa) move the gradient a little, not a lot; not bit-equal: autocast ran
    assert first["train/grad_norm"] == pytest.approx(reference[0]["train/grad_norm"], rel=0.05)
    assert first["train/grad_norm"] != reference[0]["train/grad_norm"]


def test_gradient_checkpointing_gives_the_same_first_step(tmp_path, tmp_path_factory, cache_dir):
    import warnings

    reference = _torch_rows("reinforce_pp", tmp_path_factory, cache_dir)
    with warnings.catch_warnings(record=True) as said:  # transformers 5 deprecated the name the run called:
        warnings.simplefilter("always")  # its FutureWarning reached the terminal (hunt of 2026-12-04, n29)
        run_in_process(
            ["algo=reinforce_pp", *STEPS, "hardware.gradient_checkpointing=true"], tmp_path, cache_dir
        )
    assert not [w for w in said if "gradient_checkpointing_enable" in str(w.message)], said
    first = _rows(tmp_path)[0]
    for key in ("train/loss", "train/grad_norm", "train/kl", "train/reward"):
        assert first[key] == pytest.approx(reference[0][key], rel=1e-5, abs=1e-7), key


def test_lora_trains_only_the_adapters(tmp_path):
    from align_lab.models.lora import LoRA
    from align_lab.models.tiny import TinyLM
    from align_lab.train.backend import make_optimizer

    class Tok:  # what TinyLM.hf_config reads from a tokenizer
        pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

        def __len__(self):
            return 40

    model = LoRA(enabled=True, r=4).apply(TinyLM().init_policy(Tok()))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    total = sum(p.numel() for p in model.parameters())
    assert trainable and all("lora_" in n for n in trainable)
    # 2 layers x 4 attention projections x (A: 4 x 64 + B: 64 x 4)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2 * 4 * 512 < total
    optimizer, _ = make_optimizer(model, 1e-3, 0)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == 2 * 4 * 512


def test_lora_run_completes_and_resumes_to_identical_metrics(tmp_path, cache_dir, monkeypatch):
    overrides = ["algo=reinforce_pp", "seed=2", "train.steps=3", "lora.enabled=true", "algo.lr=1e-3"]
    _interrupted_then_resumed(overrides, tmp_path / "full", tmp_path / "resumed", cache_dir, monkeypatch)
    full, resumed = _strip(_rows(tmp_path / "full")), _strip(_rows(tmp_path / "resumed"))
    assert resumed == full
    assert full[-1]["train/kl"] != 0  # the adapters moved the policy away from the reference


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["hardware.backend=jax"], "hardware.backend=jax: must be one of torch, deepspeed"),
        (["hardware.zero_stage=4"], "hardware.zero_stage=4: must be one of 0, 1, 2, 3"),
        (["hardware.dtype=fp16"], "hardware.dtype=fp16: must be one of fp32, bf16"),
        (["lora.r=0"], "lora.r=0: must be >= 1"),
        (
            ["algo=ppo_max", "hardware.backend=deepspeed"],
            "algo.critic_pretrain_steps=10: hardware.backend=deepspeed cannot hold the policy still",
        ),
        (
            ["algo=online_dpo", "algo.sync_every=4", "hardware.backend=deepspeed", "hardware.zero_stage=3"],
            "algo.sync_every=4: a frozen sampling copy of a ZeRO-3 policy is not supported",
        ),
        (
            ["algo=sdpo", "hardware.backend=deepspeed", "hardware.zero_stage=3"],
            "algo.teacher_kind=ema: a copy of a ZeRO-3 partitioned policy is not supported",
        ),
        (  # issue 70 item 3: each process's state_dict() holds (0,)-shaped shards, vLLM's reload fails
            ["rollout=vllm", "hardware.backend=deepspeed", "hardware.zero_stage=3"],
            "hardware.zero_stage=3: rollout=vllm is pushed the policy's state_dict, which ZeRO-3 partitions "
            "(each process holds a shard); use hardware.zero_stage=2 or rollout=hf",
        ),
    ],
)
def test_backend_settings_are_checked_before_compute_in_one_line(overrides, expected, tmp_path):
    cfg, names = compose([*overrides, f"cache_dir={tmp_path}"])
    with pytest.raises(ConfigError) as e:
        check_run(spec_from_config(cfg, names))
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


# DeepSpeed across processes: the engine averages gradients, each process holds its rows' share
DATA_PARALLEL = [*STEPS, "rollout.seed_per_sample=true", "hardware.num_threads=1"]
COMPARED = ("train/reward", "train/kl", "train/loss", "train/grad_norm", "eval/gold_reward", "eval/kl")
_one_process: dict[str, list[dict]] = {}
_two_processes: dict[str, Path] = {}


def _two_process_run(overrides: list[str], tmp_path_factory, cache_dir) -> Path:
    """The folder of a run of `overrides` (hardware.processes=2), run once per session: the equality
    test below and the resume test share ZeRO-3's."""
    key = " ".join(overrides)
    if key not in _two_processes:
        run_dir = tmp_path_factory.mktemp("two_processes")
        run_in_process(overrides, run_dir, cache_dir)
        _two_processes[key] = run_dir
    return _two_processes[key]


@pytest.mark.parametrize(
    "algo,stage",
    full_but(
        [("reinforce_pp", 2), ("reinforce_pp", 3), ("ppo", 2), ("ppo", 3), ("dpo", 2), ("dpo", 3)],
        {("ppo", 2), ("dpo", 3)},
    ),
)
def test_deepspeed_zero_with_two_processes_equals_one_torch_process(
    algo, stage, tmp_path, tmp_path_factory, cache_dir
):
    if algo not in _one_process:
        one = tmp_path_factory.mktemp(f"one_{algo}")
        run_in_process([f"algo={algo}", *DATA_PARALLEL], one, cache_dir)
        _one_process[algo] = _rows(one)
    overrides = [f"algo={algo}", *DATA_PARALLEL, "hardware.backend=deepspeed", f"hardware.zero_stage={stage}"]
    run_dir = _two_process_run([*overrides, "hardware.processes=2"], tmp_path_factory, cache_dir)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    rows = _rows(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    for a, b in zip(_one_process[algo], rows, strict=True):
        for key in COMPARED:
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (key, b["step"])
    # each process wrote its own optimiser partition (and, at ZeRO-3, weight partition)
    saves = sorted((run_dir / "checkpoints" / "deepspeed").glob("step-*"))
    assert len(list(saves[-1].glob("*zero_pp_rank_*_optim_states.pt"))) == 2


def test_deepspeed_zero3_with_two_processes_resumes_and_refuses_another_process_count(
    tmp_path, tmp_path_factory, cache_dir, monkeypatch
):
    """The equality test's ZeRO-3 reinforce_pp run (2 processes, 2 steps) is the uninterrupted one; this
    one dies after step 1 (its checkpoint: the optimiser and weight partitions of both processes) and
    resumes to step 2."""
    overrides = ["algo=reinforce_pp", *DATA_PARALLEL, "hardware.backend=deepspeed", "hardware.zero_stage=3"]
    overrides.append("hardware.processes=2")
    full_dir = _two_process_run(overrides, tmp_path_factory, cache_dir)
    _interrupted_then_resumed(overrides, None, tmp_path / "resumed", cache_dir, monkeypatch, after=1)
    full, resumed = _strip(_rows(full_dir)), _strip(_rows(tmp_path / "resumed"))
    assert [r["step"] for r in resumed] == [1, 2]
    for a, b in zip(full, resumed, strict=True):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
    # an unfinished run of 2 processes, resumed with 1: one line before any compute
    (tmp_path / "resumed" / "summary.json").unlink()
    one = [o for o in overrides if o != "hardware.processes=2"] + ["hardware.processes=1"]
    with pytest.raises(ConfigError, match=r"hardware.processes=1: .* holds a DeepSpeed checkpoint of 2 "):
        run_in_process(one, tmp_path / "resumed", cache_dir)


@pytest.mark.parametrize("damage", ["deleted", "cut"])
def test_a_damaged_deepspeed_checkpoint_is_one_line_before_any_compute(
    tmp_path, cache_dir, monkeypatch, damage
):
    """Eighteenth hunt: the engine checkpoint that the run's last state names, deleted or cut short, was a
    70-137-line `[rank0]:` traceback after the stages (DeepSpeed's bare AssertionError, torch's zip
    reader); now one line at admission naming it, as for the run's own checkpoint file."""
    import shutil

    from align_lab.tracking import JsonlTracker
    from align_lab.train.checkpoint_io import load_checkpoint

    overrides = ["algo=reinforce_pp", "train.steps=3", "hardware.backend=deepspeed"]
    run_dir, original = tmp_path / "run", JsonlTracker.log

    def log_then_die(self, metrics, step):
        original(self, metrics, step)
        if step == 2:
            raise Interrupt  # as a kill after step 2's checkpoint

    monkeypatch.setattr(JsonlTracker, "log", log_then_die)
    with pytest.raises(Interrupt):
        run_in_process(overrides, run_dir, cache_dir)
    monkeypatch.setattr(JsonlTracker, "log", original)
    tag = (
        run_dir
        / "checkpoints"
        / "deepspeed"
        / load_checkpoint(run_dir / "checkpoints")["objects"]["policy"]["tag"]
    )
    if damage == "deleted":
        shutil.rmtree(tag)
    else:
        file = sorted(tag.glob("*model_states.pt"))[0]
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(ConfigError) as refused:
        run_in_process(overrides, run_dir, cache_dir)
    said = "is missing" if damage == "deleted" else "is unreadable"
    assert said in str(refused.value) and f"delete {run_dir / 'checkpoints'} to start" in str(refused.value)


@FULL
@pytest.mark.skipif(not _read_only_mounts_work(), reason="needs unshare -m and mount (root)")
def test_a_full_disk_at_the_engines_checkpoint_is_one_line_and_leaves_no_half_written_step(
    tmp_path, cache_dir
):
    """Twentieth hunt, case 33: two DeepSpeed ranks (hardware=cpu_ddp) whose engine checkpoint met a full
    disk: rc 1, 79-137 lines of the ranks' tracebacks (torch.save's RuntimeError), no resume line, a
    half-written step folder left. Now, as a one-process run's checkpoint: one line naming the engine's
    step folder, rc 2, the folder removed; at 1000 KiB left the first save fails, at 2300 a later one."""
    import subprocess
    import sys

    from tests.conftest import ROOT, SMALL

    small, run_dir = tmp_path / "small", tmp_path / "small" / "run"
    small.mkdir()
    args = [
        *SMALL,
        "hardware=cpu_ddp",
        "hardware.backend=deepspeed",
        "train.steps=6",
        "train.checkpoint_every=1",
    ]
    app = " ".join(
        [sys.executable, "-m", "align_lab", *args, f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}"]
    )
    runs = "; ".join(
        f"rm -rf {run_dir} {small}/filler; head -c {1024 * (4096 - kib)} /dev/zero > {small}/filler; {app}; "
        f"echo RC=$? >&2; ls {run_dir}/checkpoints/deepspeed >&2"
        for kib in (1000, 2300)
    )
    script = f"mount -t tmpfs -o size=4m tmpfs {small} || exit 9; {runs}"
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert "Traceback" not in result.stderr and "[rank" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("align_lab: error:")]
    assert [line for line in lines if line.startswith("RC=")] == ["RC=2", "RC=2"], result.stderr[-3000:]
    assert len(errors) == 2, result.stderr[-3000:]
    for error in errors:
        head = f"align_lab: error: no space left on the device writing {run_dir}/checkpoints/deepspeed/step-"
        assert error.startswith(head) and "; free space, then resume from step " in error, error
        step = error.removeprefix(head).split(";")[0]
        assert f"step-{step}" not in lines[lines.index(error) + 2 :][:4], lines  # the folder is gone
