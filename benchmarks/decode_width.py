"""The whole decode step (align_lab/rollout/decode.py decode_step) as F.linear against as W @ h^T, by width.

rollout.decode_matmul=auto multiplies as W @ h^T on an AMD CPU without AVX-512, where MKL's F.linear at
decode shapes reads SmolLM2's weights slowly (`decode_kernels`), but only for a policy at least
LEFT_MIN_WIDTH wide:
a narrow model's matmuls are too small to be bound by reading the weights, and W @ h^T's transposes
then cost more than they save. This times decode_step itself, both ways, on random Llamas of each
--widths hidden size (MLP 2x, heads of 32, --vocab, --layers), --rows sampled rows and a 40-position
KV cache, alternating the ways over --rounds; it prints milliseconds per step (the fastest round), the
ratio W @ h^T / F.linear and what auto takes for that width on this machine (on an AMD CPU with
AVX-512, oneDNN on packed weights from LEFT_MIN_WIDTH: `decode_kernels` times that way).

    python -m benchmarks run decode_width                              # the toy's 64 up to 576, 1 thread
    python -m benchmarks run decode_width --widths 576 --vocab 49152 --layers 30 --threads 2
"""

from __future__ import annotations

import time

import torch

from benchmarks.harness import arguments, machine, machine_line, report, schedule
from benchmarks.options import at_least

NEEDS = ()
SMOKE = ("--widths", "64", "--rows", "4", "--repeats", "3", "--rounds", "1")
ARMS = ("F.linear", "W @ h^T")


def model(width: int, layers: int, vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    heads = max(1, width // 32)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=2 * width,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def step_ms(m, rows: int, left: bool, repeats: int, cached: int = 40) -> float:
    """Milliseconds per decode_step over `repeats` steps (after 5 untimed), the cache at `cached`."""
    from align_lab.rollout.decode import decode_step

    cfg = m.config
    heads, dim = cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads
    kv = [
        (torch.randn(rows, heads, cached + 1, dim), torch.randn(rows, heads, cached + 1, dim))
    ] * cfg.num_hidden_layers
    tokens, position = torch.zeros(rows, dtype=torch.long), torch.full((rows, 1), cached)
    with torch.no_grad():
        for _ in range(5):
            decode_step(m, tokens, position, kv, cached, None, left)
        start = time.perf_counter()
        for _ in range(repeats):
            decode_step(m, tokens, position, kv, cached, None, left)
    return (time.perf_counter() - start) / repeats * 1e3


def main(argv: list[str] | None = None) -> None:
    from align_lab.rollout.decode_matmul import decode_way

    parser = arguments(__doc__, rounds=3)
    parser.add_argument("--widths", default="64,128,256,576", help="hidden sizes, comma-separated")
    parser.add_argument("--layers", type=at_least(1), default=2, help="decoder layers (the toy policy: 2)")
    parser.add_argument("--vocab", type=at_least(1), default=300, help="vocabulary (the toy world's: ~300)")
    parser.add_argument("--rows", type=at_least(1), default=16, help="sampled rows")
    parser.add_argument("--threads", type=at_least(1), default=1, help="torch threads (a tiny policy's: 1)")
    parser.add_argument("--repeats", type=at_least(1), default=200, help="timed steps a round")
    args = parser.parse_args(argv)
    print(machine_line(machine()), flush=True)
    torch.set_num_threads(args.threads)
    rows = []
    for width in (int(w) for w in args.widths.split(",")):
        m, times = model(width, args.layers, args.vocab), {arm: [] for arm in ARMS}
        for _, arm in schedule(ARMS, args.rounds):
            times[arm].append(step_ms(m, args.rows, arm == ARMS[1], args.repeats))
        best = {arm: min(t) for arm, t in times.items()}
        auto = {"exact": ARMS[0], "fast": ARMS[1]}.get(decode_way("auto", width=width), "oneDNN packed")
        rows.append({"width": width, **{f"{a} ms": round(best[a], 3) for a in ARMS},
                     "ratio": round(best[ARMS[1]] / best[ARMS[0]], 3), "auto": auto})  # fmt: skip
        print(f"width {width}: {best[ARMS[0]]:.3f} / {best[ARMS[1]]:.3f} ms, auto takes {auto}", flush=True)
    report("decode_width", args, rows, notes={"layers": args.layers, "vocab": args.vocab, "rows": args.rows})


if __name__ == "__main__":
    main()
