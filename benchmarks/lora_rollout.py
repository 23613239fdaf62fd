"""A LoRA policy's rollout: the decode step on its base weights and adapters, against the model's forward.

align_lab's HF engine samples with its own decode step (align_lab/rollout/decode.py), which reads the
weights directly; for a peft LoRA policy it reads each LoRA linear's base weight and adapters (before
2026-11-27 a LoRA policy sampled through the peft model's forward). This samples the same prompts with
the same seed both ways, on a Llama of SmolLM2-135M's shapes with random weights wrapped in align_lab's
default LoRA (`lora.enabled=true`: r 8 on q/k/v/o, B drawn so that the adapters count), alternating the
two arms over --rounds, and prints each arm's seconds per rollout (median), the ratio, and whether
both drew the same tokens. Needs nothing beyond the test environment.

    python -m benchmarks run lora_rollout                # 2 prompts x 4 samples, 64 new tokens, every core
    python -m benchmarks run lora_rollout --rounds 5 --threads 1
"""

from __future__ import annotations

import os
import statistics
import time

import torch

from benchmarks.forward_rows import SMOL
from benchmarks.harness import arguments, machine, machine_line, report, schedule

NEEDS = ()
SMOKE = ("--hidden", "64", "--layers", "2", "--heads", "2", "--kv-heads", "1", "--ffn", "128",
         "--vocab", "512", "--prompt", "8", "--tokens", "4", "--rounds", "1")  # fmt: skip
ARMS = ("decode step", "forward")


def lora_policy(a):
    """The model of a's sizes (seed 0) with align_lab's default LoRA, its B drawn (seed 1)."""
    from align_lab.models.lora import LoRA
    from benchmarks.gpu import build

    torch.manual_seed(0)
    model = LoRA(enabled=True).apply(build(a.vocab, a.hidden, a.layers, a.heads, a.ffn, None, a.kv_heads))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return model.eval()


def rollout(model, ids, a, fast: bool) -> tuple[float, torch.Tensor]:
    """Seconds for one rollout of ids (prompts, P) x a.group samples, and its tokens (seed 0)."""
    from align_lab.rollout import sampling

    supported = sampling.fast_decode_supported
    sampling.fast_decode_supported = supported if fast else (lambda m: False)
    try:
        torch.manual_seed(0)
        start = time.perf_counter()
        with torch.no_grad():  # eos -1: random weights' responses run to the token limit either way
            attn = torch.ones_like(ids)
            tokens, _ = sampling.sample_with_cache(model, ids, attn, a.tokens, -1, 0, n=a.group)
        return time.perf_counter() - start, tokens
    finally:
        sampling.fast_decode_supported = supported


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__, rounds=3)
    for key in ("hidden", "layers", "heads", "kv_heads", "ffn", "vocab"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=SMOL[key])
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=4, help="samples per prompt")
    parser.add_argument("--prompt", type=int, default=58, help="prompt tokens (arith_word's longest)")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    a = parser.parse_args(argv)
    print(machine_line(machine()), flush=True)
    torch.set_num_threads(a.threads)
    from align_lab.rollout.sampling import fast_decode_supported

    model = lora_policy(a)
    assert fast_decode_supported(model), "the default LoRA should decode with the decode step"
    ids = torch.randint(1, a.vocab, (a.prompts, a.prompt), generator=torch.Generator().manual_seed(2))
    rollout(model, ids, a, True)  # warm-up: first-call allocations
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    drawn = {}
    for r, arm in schedule(ARMS, a.rounds):
        s, drawn[arm] = rollout(model, ids, a, arm == ARMS[0])
        seconds[arm].append(s)
        print(f"round {r} {arm:12s} {s:.3f} s", flush=True)
    same = torch.equal(drawn[ARMS[0]], drawn[ARMS[1]])
    rows = [{"arm": k, "s/rollout": statistics.median(v), "same tokens": same} for k, v in seconds.items()]
    ratio = {"decode step/forward": {"time": rows[0]["s/rollout"] / rows[1]["s/rollout"]}}
    report("lora_rollout", a, rows, ratio=ratio, notes={"rows": a.prompts * a.group, "tokens": a.tokens})


if __name__ == "__main__":
    main()
