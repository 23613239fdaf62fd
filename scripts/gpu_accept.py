"""The GPU acceptance checks (issue 70 item 7): what a freshly lent GPU machine runs first, one line
PASS / FAIL / SKIP a check, the figures written with the device and the date to
benchmarks/acceptance/<date>_<device>.json (or --out). On a CPU (--device cpu) the same checks run with
the tiny model and gloo: tests/integration/test_gpu_accept.py runs them so.

    python -m scripts.gpu_accept                   # on the GPU machine (cuda), from the repository root
    python -m scripts.gpu_accept --device cpu --only generators,resume --out /tmp/accept.json

Checks: bf16-step (a bf16 GRPO step; on a GPU a ~100M-parameter random-weight Llama), zero2 and zero3
(DeepSpeed), resume (interrupted after step 2 and resumed: the metrics of the uninterrupted run, bit
for bit), generators (the minibatch order ignores a draw on the device's generator; a checkpoint
keeps the device's generator state), and with 2+ GPUs (or on CPU) two-ranks (ranks whose generators
differ train as one process) and two-rank-resume; vllm where vllm is installed (2 ranks, each its own
engine, with 2+ GPUs). Exit 1 if any check failed."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from benchmarks.result_file import fresh, json_problem

ROOT = Path(__file__).resolve().parents[1]
LOG = "ALIGN_LAB_ACCEPT_RNG_LOG"  # a folder: each rank appends its generator's digest as it scores
# a ~100M-parameter Llama (12 blocks of 768, as GPT-2 small) with random weights, for the GPU's bf16 step
GPU_MODEL = [
    "model.hidden_size=768",
    "model.num_layers=12",
    "model.num_heads=12",
    "model.intermediate_size=3072",
]
SMALL = [
    "tracker=none",
    "task.n_demonstrations=512",
    "task.n_pairs=256",
    "sft.epochs=2",
    "reward.epochs=1",
    "train.steps=2",
    "train.rollout_size=16",
    "train.minibatch_size=8",
    "train.eval_every=0",
    "train.eval_samples=1",
]


class Skipped(str):
    """A check's figures when it cannot run here: why, said on its SKIP line."""


REWARD = "reward.path=scripts.gpu_accept:rank_drawing_reward"  # imported by every rank


def rank_drawing_reward(prompts: list[str], responses: list[str]) -> list[float]:
    """A response's length; ranks 1+ draw once from torch's CPU generator (a draw of their own, as a
    rank's own GPU generator takes), and with LOG set each rank records its generator's digest beside the
    rows' (a resume's probe asks rank 0's scorer again on the rows it scored last: the same rows twice)."""
    import hashlib

    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else 0
    if rank > 0:
        torch.rand(1)
    if os.environ.get(LOG):
        digest = int(torch.get_rng_state().double().mul(torch.arange(5056.0)).sum())
        scored = hashlib.sha256("\0".join(responses).encode()).hexdigest()[:12]
        with open(Path(os.environ[LOG]) / f"rank{rank}.txt", "a") as f:
            f.write(f"{digest} {scored}\n")
    return [float(len(r)) for r in responses]


def run(overrides: list[str], run_dir: Path, cache_dir: Path) -> dict:
    """One run in this process, composed as `python -m align_lab <overrides>` composes it; its summary."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from align_lab.run.admission import admit_spec, spec_from_config
    from align_lab.run.defaults import apply_model_defaults
    from align_lab.run.execute import run as run_spec

    other_reward = any(o.startswith("reward=") and o != "reward=learned_rm" for o in overrides)
    small = [o for o in SMALL if not (other_reward and o.startswith("reward."))]  # the RM's keys
    overrides = [*small, f"cache_dir={cache_dir}", *overrides]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    names = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    with open_dict(cfg):
        del cfg["hydra"]
    apply_model_defaults(cfg, overrides, names.get("model"))
    return run_spec(admit_spec(spec_from_config(cfg, names), run_dir))


def rows(run_dir: Path, drop=("time/", "perf/", "memory/")) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if not k.startswith(drop)} for x in lines]


def calls(log: Path) -> list[str]:
    """A rank's logged scorer calls (generator digest, rows), less a call on the rows of the call before
    it: a resume's probe (run/probe_check.py) asking the scorer what it gave the rows it scored last."""
    lines = [line.split() for line in log.read_text().splitlines()]
    return [line[0] for i, line in enumerate(lines) if i == 0 or line[1] != lines[i - 1][1]]


def interrupted_then_resumed(overrides: list[str], run_dir: Path, cache_dir: Path) -> None:
    """The run stopped by SIGTERM as step 2 is logged (checkpointed there), then run again: resumed."""
    from align_lab.run.summary import RunStopped
    from align_lab.tracking import JsonlTracker

    original = JsonlTracker.log

    def log_then_signal(self, metrics, step):
        original(self, metrics, step)
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    JsonlTracker.log = log_then_signal
    try:
        run(overrides, run_dir, cache_dir)
        raise AssertionError("the run was not interrupted")
    except RunStopped as e:
        assert str(e).startswith("interrupted by SIGTERM; resume from step 2"), str(e)
    finally:
        JsonlTracker.log = original
    assert run(overrides, run_dir, cache_dir)["status"] == "completed"


class Checks:
    """The checks, each a method returning its figures (or Skipped(why)); an exception is its FAIL."""

    def __init__(self, device: str, work: Path) -> None:
        self.device, self.work = device, work
        self.gpus = torch.cuda.device_count() if device == "cuda" else 0
        self.cache = work / "cache"
        self.base = [f"hardware.device={device}", "hardware.num_threads=1"]
        self.big = GPU_MODEL if device == "cuda" else []

    def bf16_step(self) -> dict:
        args = [*self.base, *self.big, "algo=grpo", "hardware.dtype=bf16", "sft.epochs=1"]
        summary = run(args, self.work / "bf16", self.cache)
        assert summary["status"] == "completed", summary["status"]
        steps = [r for r in rows(self.work / "bf16", drop=()) if "train/loss" in r]
        assert all(math.isfinite(r["train/loss"]) for r in steps)
        return {
            "step_s": steps[-1]["time/step_s"],
            "gpu_peak_mb": summary.get("memory/gpu_peak_mb"),
            "model": self.big or "tiny_llama",
        }

    def _zero(self, stage: int) -> dict:
        args = [*self.base, "algo=grpo", "hardware.backend=deepspeed", f"hardware.zero_stage={stage}"]
        summary = run(args, self.work / f"zero{stage}", self.cache)
        assert summary["status"] == "completed", summary["status"]
        return {"gold_reward": summary.get("eval/gold_reward")}

    def zero2(self) -> dict:
        return self._zero(2)

    def zero3(self) -> dict:
        return self._zero(3)

    def resume(self, processes: int = 1) -> dict:
        args = [*self.base, "algo=reinforce_pp", "seed=2", "train.steps=4", "train.checkpoint_every=100"]
        if processes > 1:
            args += [f"hardware.processes={processes}", "rollout.seed_per_sample=true", "reward=function"]
            args += [REWARD]
        straight, resumed = self.work / f"straight{processes}", self.work / f"resumed{processes}"
        logs = [self.work / f"rng_straight{processes}", self.work / f"rng_resumed{processes}"]
        for folder, log in zip((straight, resumed), logs, strict=True):
            log.mkdir(parents=True)
            os.environ[LOG] = str(log)
            try:
                (run if folder == straight else interrupted_then_resumed)(args, folder, self.cache)
            finally:
                del os.environ[LOG]
        assert rows(resumed) == rows(straight), (
            "the resumed run's metrics differ from the uninterrupted run's"
        )
        for rank in range(processes if processes > 1 else 0):
            digests = [calls(log / f"rank{rank}.txt") for log in logs]
            assert digests[0] == digests[1], f"rank {rank}'s generator differs after the resume"
        return {"steps": 4, "resumed_at": 2, "processes": processes}

    def generators(self) -> dict:
        """With a run's default device (the GPU), the minibatch order still comes from the CPU's
        generator: a draw on the GPU's leaves it as it was; the generator states a checkpoint keeps
        hold every CUDA device's. On a CPU: nothing to check here (two-ranks checks the ranks)."""
        from align_lab.train.rng import minibatch_order, rng_state

        if self.device == "cpu":
            return Skipped("a CPU: no GPU generator to check (two-ranks checks the ranks' generators)")
        torch.set_default_device("cuda")
        try:
            torch.manual_seed(0)
            first = minibatch_order(64, 1)
            torch.manual_seed(0)
            torch.rand(5)  # on the GPU's generator
            assert torch.equal(minibatch_order(64, 1), first), "the order follows the GPU's generator"
        finally:
            torch.set_default_device(None)
        held = rng_state()["cuda"]
        assert held is not None and len(held) == self.gpus, "the CUDA generators are not saved"
        return {"cuda_generators_saved": len(held)}

    def two_ranks(self) -> dict:
        if self.device == "cuda" and self.gpus < 2:
            return Skipped(f"{self.gpus} GPU: two ranks need two")
        args = [*self.base, "algo=reinforce_pp", "seed=1", "rollout.seed_per_sample=true", "reward=function"]
        args += [REWARD]
        run(args, self.work / "one", self.cache)
        run([*args, "hardware.processes=2"], self.work / "two", self.cache)
        for a, b in zip(rows(self.work / "one"), rows(self.work / "two"), strict=True):
            for key in ("train/loss", "train/grad_norm", "train/kl"):
                assert math.isclose(a[key], b[key], rel_tol=1e-4, abs_tol=1e-5), (
                    a["step"],
                    key,
                    a[key],
                    b[key],
                )
        return {"processes": 2}

    def two_rank_resume(self) -> dict:
        if self.device == "cuda" and self.gpus < 2:
            return Skipped(f"{self.gpus} GPU: two ranks need two")
        return self.resume(processes=2)

    def vllm(self) -> dict:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            return Skipped("vllm is not installed in this Python")
        processes = 2 if self.gpus >= 2 else 1
        args = [*self.base, "algo=grpo", "rollout=vllm", "rollout.seed_per_sample=true"]
        summary = run([*args, f"hardware.processes={processes}"], self.work / "vllm", self.cache)
        assert summary["status"] == "completed", summary["status"]
        return {"processes": processes, "gold_reward": summary.get("eval/gold_reward")}


NAMES = ["bf16-step", "zero2", "zero3", "resume", "generators", "two-ranks", "two-rank-resume", "vllm"]


def commit() -> str | None:
    """The checkout's commit, `+changes` where its tracked files differ from it (None: no git there)."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout

    try:
        head = git("rev-parse", "--short=8", "HEAD").strip()
        changed = git("status", "--porcelain", "--untracked-files=no").strip()
        return (head + ("+changes" if changed else "")) if head else None
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(0) if device == "cuda" else "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--only", default=",".join(NAMES), help="comma-separated checks")
    parser.add_argument("--out", type=Path, help="the figures' file (default benchmarks/acceptance/...)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only.split(",")) - set(NAMES))
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)}; allowed: {', '.join(NAMES)}")
    if args.out is not None and (why := json_problem(str(args.out))):  # before the checks' minutes
        parser.error(f"--out={args.out}: {why}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    name = device_name(args.device)
    record = {"date": stamp, "device": name, "gpus": torch.cuda.device_count(), "torch": torch.__version__}
    record["commit"] = commit()
    record["checks"] = {}
    with tempfile.TemporaryDirectory(prefix="align_lab_accept_") as work:
        checks = Checks(args.device, Path(work))
        for check in args.only.split(","):
            start = time.perf_counter()
            try:
                figures = getattr(checks, check.replace("-", "_"))()
                verdict = "SKIP" if isinstance(figures, Skipped) else "PASS"
            except Exception as e:  # a check's failure is its line; the others still run
                figures, verdict = {"error": f"{type(e).__name__}: {e}"}, "FAIL"
                traceback.print_exc(file=sys.stderr)
            seconds = round(time.perf_counter() - start, 1)
            said = figures["error"].splitlines()[0][:200] if verdict == "FAIL" else figures  # SKIP: why
            detail = f": {said}" if verdict != "PASS" else ""
            print(f"{verdict:4}  {check} ({seconds} s){detail}", flush=True)
            record["checks"][check] = {"verdict": verdict, "seconds": seconds, "figures": figures}
    # a second run of the day is written beside the first, never over it (`-2`: benchmarks/result_file.py)
    out = args.out or fresh(ROOT / "benchmarks" / "acceptance", f"{stamp[:10]}_{name.replace(' ', '_')}")
    out.write_text(json.dumps(record, indent=1, default=str) + "\n")
    print(f"figures: {out}")
    return int(any(c["verdict"] == "FAIL" for c in record["checks"].values()))


if __name__ == "__main__":
    sys.exit(main())
