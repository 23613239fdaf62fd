"""Step time of align_lab's online loop against batch size, response length and model size, on CPU.

    .venv/bin/python -m benchmarks run scaling [--threads 1] [--cells batch,length,model]

GRPO from conf/algo/grpo.yaml (group_size 4, one minibatch per step), the HF rollout engine, the
embedded toy_prefs world with a freshly initialised Qwen2 (no SFT: the model rarely emits EOS, so
responses run to the length limit), one torch thread (--threads; two threads on a shared 2-core
machine oversubscribe it). One factor varies at a time
around a base of ~0.1M parameters, 32 responses per step and 16 new tokens. Seconds per step is the
mean of the wall time between step ends over steps 3-5 of 6 (the 6th also evaluates); the phase
columns are the loop's own time/* metrics over the same steps. About 3 minutes on 2 cores.
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from align_lab.config import build  # noqa: E402
from align_lab.models.tiny import TinyLM  # noqa: E402
from align_lab.models.tokenizer import train_tokenizer  # noqa: E402
from align_lab.rollout.hf import HFGenerate  # noqa: E402
from align_lab.tasks.toy_prefs import ToyPrefs  # noqa: E402
from align_lab.train.common import TrainConfig  # noqa: E402
from align_lab.train.context import Context, Models  # noqa: E402
from align_lab.train.online import train_online  # noqa: E402
from benchmarks.harness import ROOT, Clock, arguments, machine, machine_line, report  # noqa: E402
from benchmarks.options import at_least, names

NEEDS = ()
SMOKE = ("--cells", "batch", "--steps", "2", "--rounds", "1")
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


def one(size: str, rollout: int, length: int, folder: Path, steps: int = STEPS) -> dict:
    """Runs STEPS steps of GRPO; returns s/step, phase means, parameter count."""
    from tqdm import tqdm

    task = ToyPrefs(max_response_tokens=length)
    tok = train_tokenizer(task.corpus(), folder / "tok")
    torch.manual_seed(0)
    policy = TinyLM(arch="qwen2", max_positions=128, **SIZES[size]).init_policy(tok).train()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        node = compose("config", overrides=["algo=grpo", "algo.group_size=4"]).algo  # as a run composes it
    clock = Clock()
    ctx = Context.build(
        task=task,
        tokenizer=tok,
        models=Models(policy, copy.deepcopy(policy).eval().requires_grad_(False)),
        scorer=lambda p, r, f: torch.tensor(task.gold_reward(p, r, f), dtype=torch.float32),
        engine=HFGenerate(),
        train=TrainConfig(
            steps=steps, rollout_size=rollout, minibatch_size=rollout, eval_every=0, checkpoint_every=0
        ),
        tracker=clock,
        checkpoint_dir=Path(tempfile.mkdtemp(dir=folder)),
        seed=0,
        progress=lambda **kw: tqdm(disable=True, **kw),
    )
    start = time.perf_counter()
    train_online(build(node, "algo"), ctx)
    kept = KEPT if steps == STEPS else slice(1, None)  # a shorter run (the smoke test's): all but the first
    steps = [b - a for a, b in zip([start, *clock.ends[:-1]], clock.ends, strict=True)][kept]
    rows = clock.rows[kept]
    phase = {k: statistics.mean(r[k] for r in rows) for k in rows[0] if k.startswith("time/")}
    return {"s": statistics.mean(steps), "params": sum(p.numel() for p in policy.parameters()), **phase}


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__)
    parser.add_argument("--threads", type=at_least(1), default=1, help="torch threads")
    parser.add_argument("--cells", default="batch,length,model", help="which factors to vary")
    parser.add_argument(
        "--steps", type=at_least(1), default=STEPS, help=f"steps per cell ({STEPS}: steps 3-5 kept)"
    )
    a = parser.parse_args(argv)
    torch.set_num_threads(a.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    print(machine_line(machine()), flush=True)
    factors = names(a.cells, list(dict.fromkeys(cell["factor"] for cell in GRID)), "--cells")
    grid = [cell for cell in GRID if cell["factor"] in factors]
    if a.smoke:
        grid = grid[:1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (r, cell) in enumerate((r, cell) for r in range(a.rounds) for cell in grid):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            out = one(cell["size"], cell["rollout"], cell["length"], folder, a.steps)
            rows.append(
                {
                    "varies": cell["factor"],
                    "round": r,
                    "params": f"{out['params'] / 1e6:.2f}M",
                    "responses/step": cell["rollout"],
                    "new tokens": cell["length"],
                    "s/step": out["s"],
                    "rollout s": out["time/rollout_s"],
                    "ref s": out["time/ref_s"],
                    "train s": out["time/train_s"],
                    "generated tokens/s": round(out["time/generated_tokens_per_s"]),
                }
            )
            print(rows[-1], flush=True)
    report("scaling", a, rows, notes={"threads": a.threads})


if __name__ == "__main__":
    main()
