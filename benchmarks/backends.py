"""Step time of each training backend setting on the tiny model, on CPU, one process.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/backends.py          # writes benchmarks/backends.md

REINFORCE++ (conf/algo/reinforce_pp.yaml) on the embedded toy_prefs world and tiny_llama (~0.1M
parameters), 32 responses per step in 2 minibatches, one torch thread, 6 steps; the same run with
each backend setting. Columns are means over steps 2-6 of the loop's own time/* metrics (step 1 also
pays one-off costs); `train` is the update phase (forward, backward, optimiser) where the backends
differ, `step` the whole step. The first-step loss (mean over the step's two minibatches, the second
after one update) and the final held-out gold reward show which runs compute the same thing: every
fp32 full-weight setting agrees to ~1e-6; bf16 rounds, LoRA trains other parameters. The shared
stages (tokenizer, SFT, reward model) are built once in a temporary cache before the timed runs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
COMMON = [
    "algo=reinforce_pp",
    "tracker=none",
    "seed=1",
    "hardware.num_threads=1",
    "task.n_demonstrations=512",
    "task.n_pairs=256",
    "sft.epochs=2",
    "reward.epochs=1",
    "train.steps=6",
    "train.rollout_size=32",
    "train.minibatch_size=16",
    "train.eval_every=0",
    "train.eval_samples=1",
    "train.checkpoint_every=0",
]
SETTINGS = {
    "torch fp32 (default)": [],
    "torch bf16 autocast": ["hardware.dtype=bf16"],
    "torch + gradient checkpointing": ["hardware.gradient_checkpointing=true"],
    "torch + LoRA r=8": ["lora.enabled=true"],
    "deepspeed ZeRO-0": ["hardware.backend=deepspeed", "hardware.zero_stage=0"],
    "deepspeed ZeRO-2": ["hardware.backend=deepspeed", "hardware.zero_stage=2"],
    "deepspeed ZeRO-3": ["hardware.backend=deepspeed", "hardware.zero_stage=3"],
    "deepspeed ZeRO-2 bf16": ["hardware.backend=deepspeed", "hardware.zero_stage=2", "hardware.dtype=bf16"],
}


def run_one(overrides: list[str], run_dir: Path, cache_dir: Path) -> tuple[dict, list[dict], float]:
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from align_lab.admission import admit_spec, spec_from_config
    from align_lab.study.run import run
    from align_lab.tracking import read_metrics

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"cache_dir={cache_dir}"], return_hydra_config=True)
    names = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    with open_dict(cfg):
        del cfg["hydra"]
    start = time.perf_counter()
    summary = run(admit_spec(spec_from_config(cfg, names), run_dir))
    return summary, read_metrics(run_dir / "metrics.jsonl"), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "backends.md")
    args = parser.parse_args()
    lines = [
        "# Training backends: step time on CPU",
        "",
        f"`python benchmarks/backends.py`, {datetime.date.today()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other work), "
        "one torch thread. "
        "Seconds are means over steps 2-6 of the run's time/* metrics; `run s` is the whole run "
        "(engine set-up, 6 steps, final evaluation; shared stages cached). "
        "First-step loss: mean over the step's two minibatches (the second after one update).",
        "",
        "| setting | train s/step | step s/step | run s | first-step loss | first-step grad norm | "
        "eval gold reward |",
        "|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="align_lab_backends_") as tmp:
        cache, tmp = Path(tmp) / "cache", Path(tmp)
        run_one(COMMON + ["train.steps=1"], tmp / "warm", cache)  # builds the shared stages
        for i, (name, extra) in enumerate(SETTINGS.items()):
            summary, rows, total = run_one(COMMON + extra, tmp / f"run{i}", cache)
            kept = rows[1:]
            train = statistics.mean(r["time/train_s"] for r in kept)
            step = statistics.mean(r["time/step_s"] for r in kept)
            first = rows[0]
            lines.append(
                f"| {name} | {train:.3f} | {step:.3f} | {total:.1f} | {first['train/loss']:.6f} | "
                f"{first['train/grad_norm']:.6f} | {summary['eval/gold_reward']:.4f} |"
            )
            print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
