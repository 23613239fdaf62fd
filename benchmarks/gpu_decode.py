"""Where a GPU rollout's time goes: align_lab's KV-cache loop against transformers' `generate`, with
and without torch's default-device mode, and how much of the loop's wall time the GPU computes.

    python benchmarks/gpu_decode.py --config .gpu/smollm2     (benchmarks/gpu_runs.py --export writes it)

A model built from the config with random weights (SmolLM2-135M-Instruct's: 30 layers, vocabulary
49,152), fp32, on the GPU; B prompts of P tokens, N new tokens each (an EOS no row samples, so every
row decodes N tokens). Rows, all timed in this process, the median of --repeats after a warm-up:
- `loop, as a run calls it`: `sample_with_cache` with `torch.set_default_device(DEVICE)` set, as
  hardware.device=cuda sets it (the loop unsets it while it runs: rollout/sampling.py);
- `loop inside torch.device("cuda")`: the same with a default-device mode the loop does not unset:
  what every torch call costs under that mode;
- `generate`: `model.generate` with the same sampling settings.
Then the GPU's share of the loop's wall time: the CUDA kernels' total time over one rollout (torch
profiler) against its wall time (a share well under 1 means the CPU's launches set the pace), and one
token's LM head as one matmul against 512-row pieces (the CPU's choice, rollout/decode.py).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

DEVICE = "cuda"  # --device cpu: the same code on a CPU (a smoke test of the script)


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int) -> float:
    fn()
    sync()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--prompt", type=int, default=48)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    a = parser.parse_args()
    global DEVICE
    DEVICE = a.device
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    from align_lab.rollout.decode import HEAD_ROWS, _in_chunks
    from align_lab.rollout.sampling import sample_with_cache

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(a.config)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").to(DEVICE).eval()
    B, P, N, V = a.batch, a.prompt, a.new, config.vocab_size
    ids = torch.randint(3, V, (B, P), device=DEVICE)
    attn = torch.ones_like(ids)
    never = V  # an EOS id no row samples

    def loop():
        out, _ = sample_with_cache(model, ids, attn, N, never, 0)
        assert out.shape == (B, N)

    gen = GenerationConfig(
        max_new_tokens=N, min_new_tokens=N, do_sample=True, top_k=0, pad_token_id=0, eos_token_id=never
    )

    def generate():
        assert model.generate(input_ids=ids, attention_mask=attn, generation_config=gen).shape == (B, P + N)

    rows = {}
    torch.set_default_device(DEVICE)
    rows["loop, as a run calls it (default device set)"] = timed(loop, a.repeats)
    torch.set_default_device(None)
    with torch.device(DEVICE):
        rows[f'loop inside torch.device("{DEVICE}") (the mode kept)'] = timed(loop, a.repeats)
    rows["transformers generate"] = timed(generate, a.repeats)
    from torch.profiler import ProfilerActivity, profile

    torch.set_default_device(DEVICE)
    sync()
    activity = ProfilerActivity.CUDA if DEVICE == "cuda" else ProfilerActivity.CPU
    with profile(activities=[activity]) as prof:
        start = time.perf_counter()
        loop()
        sync()
        wall = time.perf_counter() - start
    torch.set_default_device(None)
    gpu = sum(e.self_device_time_total for e in prof.key_averages()) / 1e6  # 0 on a CPU
    x = torch.randn(B, 1, config.hidden_size, device=DEVICE)
    w = model.lm_head.weight
    one = timed(lambda: torch.nn.functional.linear(x, w), 20)
    pieces = timed(lambda: _in_chunks(x, w), 20)
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU"
    print(
        f"# {name}, torch {torch.__version__}: {B} prompts x {P} tokens, "
        f"{N} new tokens, fp32, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters"
    )
    print("| rollout | seconds | ms per token | tokens/s |\n|---|---|---|---|")
    for name, s in rows.items():
        print(f"| {name} | {s:.3f} | {1e3 * s / N:.1f} | {B * N / s:,.0f} |")
    print(
        f"\nGPU kernels {gpu:.3f} s of the loop's {wall:.3f} s wall ({gpu / wall:.0%}); LM head per token: "
        f"one matmul {1e3 * one:.2f} ms, {-(-V // HEAD_ROWS)} pieces of {HEAD_ROWS} rows "
        f"{1e3 * pieces:.2f} ms"
    )


if __name__ == "__main__":
    main()
