"""Step time of align_lab's online loop against batch size, response length and model size, on CPU.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/scaling.py            # writes benchmarks/scaling.md

GRPO from conf/algo/grpo.yaml (group_size 4, one minibatch per step), the HF rollout engine, the
embedded toy_prefs world with a freshly initialised Qwen2 (no SFT: the model rarely emits EOS, so
responses run to the length limit), one torch thread (--threads; two threads on a shared 2-core
machine oversubscribe it). One factor varies at a time
around a base of ~0.1M parameters, 32 responses per step and 16 new tokens. Seconds per step is the
mean of the wall time between step ends over steps 3-5 of 6 (the 6th also evaluates); the phase
columns are the loop's own time/* metrics over the same steps. About 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from align_lab.config import build  # noqa: E402
from align_lab.models.tiny import TinyLM  # noqa: E402
from align_lab.models.tokenizer import train_tokenizer  # noqa: E402
from align_lab.rollout.hf import HFGenerate  # noqa: E402
from align_lab.tasks.toy_prefs import ToyPrefs  # noqa: E402
from align_lab.train.common import TrainConfig  # noqa: E402
from align_lab.train.context import Context  # noqa: E402
from align_lab.train.online import train_online  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SIZES = {  # name -> TinyLM fields (head_dim 32 or 64)
    "0.1M": dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
    "2.5M": dict(hidden_size=256, num_layers=3, num_heads=4, intermediate_size=768),
    "25M": dict(hidden_size=640, num_layers=5, num_heads=10, intermediate_size=1664),
}
BASE = {"size": "0.1M", "rollout": 32, "length": 16}
GRID = [
    *({"factor": "batch", **BASE, "rollout": r} for r in (8, 32, 128)),
    *({"factor": "length", **BASE, "length": n} for n in (8, 32, 64)),
    *({"factor": "model", **BASE, "size": s} for s in SIZES),
]
STEPS, KEPT = 6, slice(2, 5)


class Clock:
    def __init__(self) -> None:
        self.ends, self.rows = [], []

    def log(self, metrics: dict, step: int) -> None:
        self.ends.append(time.perf_counter())
        self.rows.append(dict(metrics))

    def samples(self, records: list, step: int) -> None:  # tracking.Tracker: evaluation samples
        pass

    def summary(self, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


def one(size: str, rollout: int, length: int, folder: Path) -> dict:
    """Runs STEPS steps of GRPO; returns s/step, phase means, parameter count."""
    from tqdm import tqdm

    task = ToyPrefs(max_response_tokens=length)
    tok = train_tokenizer(task.corpus(), folder / "tok")
    torch.manual_seed(0)
    policy = TinyLM(arch="qwen2", max_positions=128, **SIZES[size]).init_policy(tok).train()
    node = OmegaConf.merge(OmegaConf.load(ROOT / "conf/algo/grpo.yaml"), {"group_size": 4})
    clock = Clock()
    ctx = Context(
        task=task,
        tokenizer=tok,
        policy=policy,
        reference=copy.deepcopy(policy).eval().requires_grad_(False),
        critic=None,
        scorer=lambda p, r, f: torch.tensor(task.gold_reward(p, r, f), dtype=torch.float32),
        engine=HFGenerate(),
        train=TrainConfig(
            steps=STEPS, rollout_size=rollout, minibatch_size=rollout, eval_every=0, checkpoint_every=0
        ),
        tracker=clock,
        checkpoint_dir=Path(tempfile.mkdtemp(dir=folder)),
        seed=0,
        progress=lambda **kw: tqdm(disable=True, **kw),
    )
    start = time.perf_counter()
    train_online(build(node, "algo"), ctx)
    steps = [b - a for a, b in zip([start, *clock.ends[:-1]], clock.ends, strict=True)][KEPT]
    rows = clock.rows[KEPT]
    phase = {k: statistics.mean(r[k] for r in rows) for k in rows[0] if k.startswith("time/")}
    return {"s": statistics.mean(steps), "params": sum(p.numel() for p in policy.parameters()), **phase}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "scaling.md"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    lines = [
        "# Step time against batch, response length and model size",
        "",
        f"Made by `python benchmarks/scaling.py` on {datetime.date.today()}: {platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"transformers {transformers.__version__}. GRPO (conf/algo/grpo.yaml, group_size 4, one "
        "minibatch per step), HF rollout engine (KV-cache loop), fp32, a freshly initialised Qwen2 "
        "(responses run to the limit). Mean of steps 3-5; the phase columns are the loop's `time/*` "
        "metrics (`ref` holds both log-prob forwards; `train` the backward and optimiser step).",
        "",
        "| varies | params | responses/step | new tokens | s/step | rollout s | ref s | train s "
        "| generated tokens/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for i, cell in enumerate(GRID):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            r = one(cell["size"], cell["rollout"], cell["length"], folder)
            line = (
                f"| {cell['factor']} | {r['params'] / 1e6:.2f}M | {cell['rollout']} | {cell['length']} "
                f"| {r['s']:.3f} | {r['time/rollout_s']:.3f} | {r['time/ref_s']:.3f} "
                f"| {r['time/train_s']:.3f} | {r['time/generated_tokens_per_s']:.0f} |"
            )
            print(line, flush=True)
            lines.append(line)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
