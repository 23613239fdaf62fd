"""How many fp32 (T, V) tensors GKD's divergence over the vocabulary adds to an update row: the peak
resident memory of a forward and backward of a (rows, T, V) logit head with the policy's log-probs only,
against the same with rl.generalized_jsd to a teacher's logits, each in a fresh process, in units of one
(rows, T, V) fp32 tensor (the memory model's MIXTURE_COPIES and LIMIT_COPIES, train/memory/footprint.py).
The teacher's own logits, made before the measurement starts, add one more copy in a run.

    .venv/bin/python scripts/divergence_copies.py            # SmolLM2's vocabulary, 8 rows x 33 tokens
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys

ROWS, TOKENS, VOCAB = 8, 33, 49_152


def measure(beta: float | None) -> float:
    """Peak RSS growth of one forward + backward, in (ROWS, TOKENS, VOCAB) fp32 tensors (this process)."""
    import torch

    from align_lab.rl import selective_logprobs
    from align_lab.rl.distill import generalized_jsd

    torch.set_num_threads(1)
    torch.manual_seed(0)
    hidden = torch.randn(ROWS, TOKENS, 64, requires_grad=True)
    head = torch.randn(64, VOCAB) * 0.1
    ids = torch.randint(0, VOCAB, (ROWS, TOKENS))
    teacher = torch.randn(ROWS, TOKENS, VOCAB)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    logits = hidden @ head  # (rows, T, V) with a graph, as the LM head's
    loss = -selective_logprobs(logits, ids, 1.0).mean()
    if beta is not None:
        loss = loss + generalized_jsd(logits, teacher, beta, 1.0).mean()
    loss.backward()
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    return grown / (ROWS * TOKENS * VOCAB * 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child: 'base' or a beta
    args = parser.parse_args()
    if args.one is not None:
        print(measure(None if args.one == "base" else float(args.one)))
        return
    run = [sys.executable, __file__, "--one"]
    base = float(subprocess.check_output([*run, "base"], text=True))
    print(f"log-probs only: {base:.2f} copies of ({ROWS}, {TOKENS}, {VOCAB}) fp32")
    for beta in (0.0, 0.5, 0.9, 1.0):
        with_jsd = float(subprocess.check_output([*run, str(beta)], text=True))
        more = with_jsd - base
        print(f"generalized JSD beta {beta}: {with_jsd:.2f} copies, {more:.2f} more (+1: teacher logits)")


if __name__ == "__main__":
    main()
