"""The decode step's matmuls at SmolLM2's shapes: each BLAS way's speed, and whether it gives F.linear's bits.

align_lab's rollout is a decode step per token (align_lab/rollout/decode.py) whose time is almost all
matmuls of a few rows (the B sampled rows) by every weight of the model: 7 a layer (q, k, v, o, gate,
up, down) and the LM head. This times, with random fp32 weights of SmolLM2-135M's shapes (30 layers,
hidden 576, MLP 1536, 3 key/value heads of 64, vocabulary 49,152), one decode step's matmuls over
every layer, and the LM head, for several ways of computing the same product:

  F.linear         what decode.py does (MKL's sgemm, x W^T)
  x @ W^T copy     torch.mm with each weight transposed once into an (in, out) copy
  W @ x^T          torch.mm(W, x^T)^T: the weight as the tall left operand
  fused            q|k|v and gate|up concatenated: 4 matmuls a layer instead of 7
  oneDNN           torch.ops.mkldnn._linear_pointwise (where this torch has it)
  oneDNN packed    the same on weights reordered once for the rows (rollout.decode_matmul=packed)
  MKL packed       torch.ops.mkl._mkl_linear on weights packed once by _mkl_reorder_linear_weight
  512-row pieces   the LM head only: decode.py's split of the head (used where exact)

For each it prints milliseconds per decode step, the weights' read rate, the time as a multiple of
F.linear's, and whether every output equals F.linear's bit for bit (exact: the decode step's default
on most CPUs, docs/rollout.md). Its last line says which way rollout.decode_matmul=auto takes on this
machine and whether that is the faster one here. Needs nothing beyond the test environment.

    python -m benchmarks run decode_kernels                 # 30 layers, 1/2/4/8 rows, every core
    python -m benchmarks run decode_kernels --rows 8 --threads 1
"""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F

from benchmarks.harness import arguments, machine, machine_line, report
from benchmarks.options import at_least

NEEDS = ()
SMOKE = ("--layers", "2", "--rows", "8", "--repeats", "1")
SHAPES = {"q": (576, 576), "k": (192, 576), "v": (192, 576), "o": (576, 576)}
SHAPES |= {"gate": (1536, 576), "up": (1536, 576), "down": (576, 1536)}
VOCAB, HIDDEN, HEAD_ROWS = 49152, 576, 512


def layer_weights(n_layers: int) -> list[dict[str, torch.Tensor]]:
    """n_layers layers of SmolLM2-shaped fp32 weights (seeded), each (out, in)."""
    g = torch.Generator().manual_seed(0)
    return [{n: torch.randn(*s, generator=g) * 0.02 for n, s in SHAPES.items()} for _ in range(n_layers)]


def _fused(w: dict) -> dict:
    """q|k|v and gate|up as one weight each (their outputs side by side, in SHAPES' order)."""
    qkv, gu = torch.cat([w["q"], w["k"], w["v"]]), torch.cat([w["gate"], w["up"]])
    return {"qkv": qkv, "o": w["o"], "gu": gu, "down": w["down"]}


def kernels(rows: int) -> dict:
    """name -> (prepare(layer weights) -> the form it multiplies, matmul(x, form) -> the layer's outputs
    in SHAPES' order, concatenated), for x of `rows` rows (MKL's pack takes the row count)."""
    cat = lambda outs: torch.cat(outs, -1)  # noqa: E731
    out = {
        "F.linear": (lambda w: w, lambda x, w: cat([F.linear(x[n], w[n]) for n in SHAPES])),
        "x @ W^T copy": (
            lambda w: {n: t.t().contiguous() for n, t in w.items()},
            lambda x, w: cat([torch.mm(x[n], w[n]) for n in SHAPES]),
        ),
        "W @ x^T": (lambda w: w, lambda x, w: cat([torch.mm(w[n], x[n].t()).t() for n in SHAPES])),
        "fused": (_fused, lambda x, w: cat([F.linear(x[n], w[n]) for n in ("qkv", "o", "gu", "down")])),
    }
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        lp = torch.ops.mkldnn._linear_pointwise
        out["oneDNN"] = (
            lambda w: w,
            lambda x, w: cat([lp(x[n], w[n], None, "none", [], "") for n in SHAPES]),
        )
    if hasattr(torch.ops.mkldnn, "_reorder_linear_weight"):  # rollout.decode_matmul=packed's way
        reorder = torch.ops.mkldnn._reorder_linear_weight
        out["oneDNN packed"] = (
            lambda w: {n: reorder(t, rows) for n, t in w.items()},
            lambda x, w: cat([lp(x[n], w[n], None, "none", [], "") for n in SHAPES]),
        )
    if hasattr(torch.ops.mkl, "_mkl_linear"):
        out["MKL packed"] = _mkl_packed(rows)
    return out


def _inputs(rows: int) -> dict[int, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {k: torch.randn(rows, k, generator=g) for k in (576, 1536)}


def _mkl_packed(rows: int) -> tuple:
    """(prepare, matmul) of MKL's packed sgemm: each weight packed once for `rows` rows."""
    pack = torch.ops.mkl._mkl_reorder_linear_weight
    linear = torch.ops.mkl._mkl_linear

    def prepare(w):
        return {n: (pack(t, rows), t) for n, t in w.items()}

    return prepare, lambda x, w: torch.cat([linear(x[n], *w[n], None, rows) for n in SHAPES], -1)


def step_time(prepared, matmul, x, repeats: int) -> float:
    """Seconds of the fastest of `repeats` passes over every layer's matmuls (weights streamed from
    memory: the layers together are far larger than any cache)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for w in prepared:
            matmul(x, w)
        times.append(time.perf_counter() - t)
    return min(times)


def run_rows(layers, rows: int, repeats: int, threads: int) -> list[dict]:
    """Rows of the table for one row count: each kernel's time over every layer, against F.linear's."""
    x = XByName(_inputs(rows))
    nbytes = sum(t.numel() * 4 for w in layers for t in w.values())
    ways = kernels(rows)
    reference = ways["F.linear"][1](x, layers[0])  # the first layer's outputs, F.linear's bits
    out = []
    for name, (prepare, matmul) in ways.items():
        prepared = [prepare(w) for w in layers]
        seconds = step_time(prepared, matmul, x, repeats)
        exact = torch.equal(matmul(x, prepared[0]), reference)
        out.append({"kernel": name, "rows": rows, "threads": threads, "ms per step": 1e3 * seconds})
        out[-1] |= {"GB/s": nbytes / seconds / 1e9, "exact": exact}
    base = out[0]["ms per step"]
    for row in out:
        row["x F.linear"] = row["ms per step"] / base
    return out


class XByName:
    """x for a weight by name: `down` takes the MLP's 1536-wide input, every other weight the 576-wide,
    and a fused q|k|v or gate|up the 576-wide."""

    def __init__(self, xs: dict[int, torch.Tensor]) -> None:
        self.xs = xs

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.xs[1536 if name == "down" else 576]


def head_rows(rows: int, repeats: int, threads: int) -> list[dict]:
    """The LM head (49,152 x 576) for `rows` rows: one matmul, 512-row pieces, W @ x^T."""
    w = torch.randn(VOCAB, HIDDEN, generator=torch.Generator().manual_seed(2)) * 0.02
    x = torch.randn(rows, HIDDEN, generator=torch.Generator().manual_seed(3))
    ways = {
        "head: F.linear": lambda: F.linear(x, w),
        "head: 512-row pieces": lambda: torch.cat([F.linear(x, p) for p in w.split(HEAD_ROWS)], -1),
        "head: W @ x^T": lambda: torch.mm(w, x.t()).t(),
    }
    if hasattr(torch.ops.mkldnn, "_reorder_linear_weight"):
        packed = torch.ops.mkldnn._reorder_linear_weight(w, rows)
        ways["head: oneDNN packed"] = lambda: torch.ops.mkldnn._linear_pointwise(
            x, packed, None, "none", [], ""
        )
    whole = F.linear(x, w)
    out = []
    for name, fn in ways.items():
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        s = min(times)
        out.append({"kernel": name, "rows": rows, "threads": threads, "ms per step": 1e3 * s})
        out[-1] |= {"GB/s": w.numel() * 4 / s / 1e9, "exact": torch.equal(fn(), whole)}
    for row in out:
        row["x F.linear"] = row["ms per step"] / out[0]["ms per step"]
    return out


def auto_check(rows: list[dict]) -> tuple[str, dict]:
    """What rollout.decode_matmul=auto takes on this machine, against this run's times: per row count,
    a decode step's matmuls (the layers' and the head's) each way decode.py can multiply: exact
    (F.linear, the head as decode.py multiplies it: 512-row pieces where they give one matmul's bits),
    fast (W @ x^T) and packed (oneDNN on reordered weights, where this torch has it)."""
    from align_lab.rollout.decode_matmul import cpu_vendor, decode_way

    ms = {(r["kernel"], r["rows"]): r["ms per step"] for r in rows}
    exact_rows = {(r["kernel"], r["rows"]): r["exact"] for r in rows}
    steps = {}
    for b in sorted({r["rows"] for r in rows}):
        pieces = exact_rows[("head: 512-row pieces", b)]
        head = ms[("head: 512-row pieces", b)] if pieces else ms[("head: F.linear", b)]
        steps[b] = {
            "exact": ms[("F.linear", b)] + head,
            "fast": ms[("W @ x^T", b)] + ms[("head: W @ x^T", b)],
        }
        if ("oneDNN packed", b) in ms:
            steps[b]["packed"] = ms[("oneDNN packed", b)] + ms[("head: oneDNN packed", b)]
    choice = decode_way("auto")
    right = sum(min(ways, key=ways.get) == choice for ways in steps.values())
    names = " / ".join(steps[min(steps)])
    per = ", ".join(f"{b} rows " + " / ".join(f"{v:.1f}" for v in ways.values()) for b, ways in steps.items())
    line = (
        f"rollout.decode_matmul=auto here ({cpu_vendor() or 'vendor unknown'}): {choice}; ms per decode "
        f"step {names}: {per}; auto's way is the fastest at {right} of {len(steps)} row counts"
    )
    return line, {"auto": choice, "ways_ms": {str(b): v for b, v in steps.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__)
    parser.add_argument("--layers", type=at_least(1), default=30, help="decoder layers (SmolLM2-135M: 30)")
    parser.add_argument("--rows", default="1,2,4,8", help="row counts (sampled rows), comma-separated")
    parser.add_argument("--threads", type=at_least(1), default=os.cpu_count())
    parser.add_argument("--repeats", type=at_least(1), default=5, help="timed passes; the fastest counts")
    args = parser.parse_args(argv)
    print(machine_line(machine()), flush=True)
    torch.set_num_threads(args.threads)
    print(f"threads {torch.get_num_threads()}, cpu capability {torch.backends.cpu.get_cpu_capability()}")
    layers = layer_weights(args.layers)
    rows = []
    for b in (int(r) for r in args.rows.split(",")):
        for row in run_rows(layers, b, args.repeats, args.threads) + head_rows(b, args.repeats, args.threads):
            rows.append(row)
            print(
                f"rows {b}  {row['kernel']:22s} {row['ms per step']:7.1f} ms  {row['GB/s']:5.1f} GB/s  "
                f"{row['x F.linear']:.2f}x F.linear  exact {row['exact']}",
                flush=True,
            )
    line, auto = auto_check(rows)
    print(line, flush=True)
    report("decode_kernels", args, rows, notes={"layers": args.layers, **auto})


if __name__ == "__main__":
    main()
