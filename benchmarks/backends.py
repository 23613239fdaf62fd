"""Step time of each training backend setting on the tiny model, on CPU, one process.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks run backends [--rounds 2] [--only ZeRO]

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

import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.harness import ROOT, arguments, machine, machine_line, ratios, report, schedule  # noqa: E402
from benchmarks.options import at_least, names

NEEDS = ()
SMOKE = ("--only", "default", "--steps", "2")
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

    from align_lab.run.admission import admit_spec, spec_from_config
    from align_lab.run.execute import run
    from align_lab.tracking import read_metrics

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"cache_dir={cache_dir}"], return_hydra_config=True)
    names = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    with open_dict(cfg):
        del cfg["hydra"]
    start = time.perf_counter()
    summary = run(admit_spec(spec_from_config(cfg, names), run_dir))
    return summary, read_metrics(run_dir / "metrics.jsonl"), time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__)
    parser.add_argument("--steps", type=at_least(1), default=6, help="steps per run (the first is left out)")
    parser.add_argument("--only", default="", help="comma-separated parts of setting names to run")
    args = parser.parse_args(argv)
    only = names(args.only, list(SETTINGS), "--only", parts=True) if args.only else []
    settings = {k: v for k, v in SETTINGS.items() if not only or any(part in k for part in only)}
    print(machine_line(machine()), flush=True)
    common = [*COMMON, f"train.steps={args.steps}"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="align_lab_backends_") as tmp:
        cache, tmp = Path(tmp) / "cache", Path(tmp)
        run_one(common + ["train.steps=1"], tmp / "warm", cache)  # builds the shared stages
        for i, (r, name) in enumerate(schedule(list(settings), args.rounds)):
            summary, metrics, total = run_one(common + settings[name], tmp / f"run{i}", cache)
            kept, first = metrics[1:], metrics[0]
            rows.append(
                {
                    "setting": name,
                    "round": r,
                    "train s/step": statistics.mean(m["time/train_s"] for m in kept),
                    "step s/step": statistics.mean(m["time/step_s"] for m in kept),
                    "run s": total,
                    "first-step loss": round(first["train/loss"], 6),
                    "first-step grad norm": round(first["train/grad_norm"], 6),
                    "eval gold reward": round(summary["eval/gold_reward"], 4),
                }
            )
            print(rows[-1], flush=True)
    step = {n: statistics.median(row["step s/step"] for row in rows if row["setting"] == n) for n in settings}
    ratio = {"step s/step over torch fp32": ratios(step, next(iter(settings)))} if len(settings) > 1 else {}
    report("backends", args, rows, ratio=ratio)


if __name__ == "__main__":
    main()
