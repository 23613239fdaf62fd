"""The decode step's matmuls at SmolLM2-135M's shapes: which ways of splitting them give the same bits,
and which is fastest (issue 24 item 5; benchmarks/RESULTS.md, 2026-11-25).

    PYTHONPATH=. .venv/bin/python benchmarks/decode_matmuls.py [--rows 8] [--threads 2]

Random fp32 weights of SmolLM2's shapes (30 layers: q 576x576, k and v 192x576, o 576x576, gate and up
1536x576, down 576x1536; LM head 49,152x576), `rows` sequences decoding one token. Prints, in ms per
decode step (the median of three timings of `--repeats` calls): the LM head as one matmul and in
pieces of N vocabulary rows (align_lab's engine uses 512-row pieces where they give the one matmul's
bits: rollout/decode.py), and the layers' projections as separate matmuls (as the engine does), with
q/k/v and gate/up fused into one matmul each, with gate/up in pieces, and as W @ x^T (the weight the
left operand). `exact` says whether a variant's output equals the engine's bit for bit. Also the
time of one token's draw for every row with each `rollout.sampler` (align_lab/rollout/sampling.py),
and the projections and head at fewer rows (the loop drops rows that have ended).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

HIDDEN, KV, INTER, VOCAB, LAYERS = 576, 192, 1536, 49152, 30


def timed(fn, repeats: int) -> float:
    """Median over three timings of `repeats` calls, in ms per call (after a short warm-up)."""
    for _ in range(5):
        fn()
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        runs.append((time.perf_counter() - t) / repeats * 1e3)
    return statistics.median(runs)


def pieces(x, w, n: int):
    return torch.cat([F.linear(x, part) for part in w.split(n)], dim=-1)


def layer_weights() -> dict[str, torch.Tensor]:
    w = {
        "q": torch.randn(HIDDEN, HIDDEN),
        "k": torch.randn(KV, HIDDEN),
        "v": torch.randn(KV, HIDDEN),
        "o": torch.randn(HIDDEN, HIDDEN),
        "gate": torch.randn(INTER, HIDDEN),
        "up": torch.randn(INTER, HIDDEN),
        "down": torch.randn(HIDDEN, INTER),
    }
    w["qkv"] = torch.cat([w["q"], w["k"], w["v"]])
    w["gate_up"] = torch.cat([w["gate"], w["up"]])
    return w


def body_variants(layers, x, h) -> dict[str, Callable[[], list]]:
    """Each variant returns the same list of outputs (fused ones split back), so they can be compared."""

    def separate():
        out = []
        for w in layers:
            out += [F.linear(x, w[k]) for k in ("q", "k", "v", "o", "gate", "up")] + [F.linear(h, w["down"])]
        return out

    def fused():
        out = []
        for w in layers:
            q, k, v = F.linear(x, w["qkv"]).split([HIDDEN, KV, KV], dim=-1)
            gate, up = F.linear(x, w["gate_up"]).split([INTER, INTER], dim=-1)
            out += [q, k, v, F.linear(x, w["o"]), gate, up, F.linear(h, w["down"])]
        return out

    def gate_up_in(n):
        def run():
            out = []
            for w in layers:
                out += [F.linear(x, w[k]) for k in ("q", "k", "v", "o")]
                out += [pieces(x, w["gate"], n), pieces(x, w["up"], n), F.linear(h, w["down"])]
            return out

        return run

    def transposed():  # W @ x^T: the weight as the matmul's left operand (other bits than F.linear)
        xt, ht = x.reshape(-1, HIDDEN).T, h.reshape(-1, INTER).T  # (d, B), (I, B)
        out = []
        for w in layers:
            out += [torch.mm(w[k], xt).T.reshape(*x.shape[:-1], -1) for k in ("q", "k", "v", "o")]
            out += [torch.mm(w[k], xt).T.reshape(*x.shape[:-1], -1) for k in ("gate", "up")]
            out.append(torch.mm(w["down"], ht).T.reshape(*h.shape[:-1], -1))
        return out

    variants = {"separate (the engine)": separate, "q/k/v and gate/up fused": fused, "W @ x^T": transposed}
    variants.update({f"gate/up in {n}-row pieces": gate_up_in(n) for n in (256, 512, 768)})
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=8, help="sequences decoded at once (B)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cpu = torch.backends.cpu.get_cpu_capability()
    print(f"rows {args.rows}, threads {torch.get_num_threads()}, cpu {cpu}")

    x = torch.randn(args.rows, 1, HIDDEN)
    head = torch.randn(VOCAB, HIDDEN) * 0.02
    whole = F.linear(x, head)
    print(f"LM head {VOCAB} x {HIDDEN}: one matmul {timed(lambda: F.linear(x, head), args.repeats):.2f} ms")
    for n in (128, 256, 512, 1024, 2048, 4096):
        exact = torch.equal(pieces(x, head, n), whole)
        ms = timed(lambda n=n: pieces(x, head, n), args.repeats)
        print(f"  in {n:>4}-row pieces: {ms:.2f} ms  exact {exact}")

    xt = x.reshape(-1, HIDDEN).T
    transposed = torch.mm(head, xt).T.reshape(whole.shape)
    ms = timed(lambda: torch.mm(head, xt), args.repeats)
    print(f"  head @ x^T: {ms:.2f} ms  exact {torch.equal(transposed, whole)}")

    from align_lab.rollout.sampling import inverse_cdf, multinomial

    probs = torch.softmax(torch.randn(args.rows, VOCAB) * 3, -1)
    print(f"sampling one token of {args.rows} rows x {VOCAB} (rollout.sampler):")
    for name, draw in (("multinomial (as generate)", multinomial), ("inverse_cdf", inverse_cdf)):
        print(f"  {name}: {timed(lambda draw=draw: draw(probs), args.repeats):.2f} ms")

    layers = [layer_weights() for _ in range(LAYERS)]
    h = torch.randn(args.rows, 1, INTER)
    variants = body_variants(layers, x, h)
    reference = variants["separate (the engine)"]()
    print(f"the {LAYERS} layers' projections, per decode step:")
    for name, fn in variants.items():
        exact = all(torch.equal(a, b) for a, b in zip(fn(), reference, strict=True))
        print(f"  {name}: {timed(fn, args.repeats):.2f} ms  exact {exact}")

    # the loop drops rows that have ended (rollout/sampling.py rows_to_keep): the time at fewer rows,
    # and whether each row gets the bits it gets among all `rows`
    print(f"the projections and the LM head at fewer rows (exact: each row's bits as among {args.rows}):")
    whole_head = pieces(x, head, 512)
    for m in range(args.rows, 0, -1):

        def body(xm=x[:m], hm=h[:m]):
            out = []
            for w in layers:
                out += [F.linear(xm, w[k]) for k in ("q", "k", "v", "o", "gate", "up")]
                out.append(F.linear(hm, w["down"]))
            return out

        exact = all(torch.equal(a, b[:m]) for a, b in zip(body(), reference, strict=True))
        exact = exact and torch.equal(pieces(x[:m], head, 512), whole_head[:m])
        head_ms = timed(lambda m=m: pieces(x[:m], head, 512), args.repeats)
        body_ms = timed(body, args.repeats)
        print(f"  {m} rows: projections {body_ms:.2f} ms, head {head_ms:.2f} ms  exact {exact}")


if __name__ == "__main__":
    main()
