"""GPU measurements on a ~110M-parameter Llama (random weights, built from a local config):

1. rollout tokens/s: transformers' `generate` against align_lab's KV-cache loop (the `hf` engine's
   default), bf16 weights, B prompts of P tokens, N new tokens each (no early EOS);
2. training MFU of align_lab's policy update (response_logprobs -> policy-gradient loss ->
   backward -> AdamW), fp32 and bf16 autocast: MFU = 6 * params * tokens / time / peak bf16 FLOP/s.

    python -m benchmarks run gpu [--config .gpu/smollm2]

Meant for a CUDA device; `--smoke` runs it small (hidden 64, 2 layers, 16 new tokens), and the module's
main with `--device cpu` and those sizes runs the same code on a CPU (its MFU has no meaning there).
Prints the tables as markdown; the harness writes them as JSON.
"""

from __future__ import annotations

import time

import torch

from benchmarks.harness import arguments, machine, machine_line, report
from benchmarks.options import at_least

NEEDS = ("cuda",)
SMOKE = (  # a literal: benchmarks/__init__.py reads it without importing the module
    "--hidden", "64", "--layers", "2", "--heads", "2", "--ffn", "128", "--vocab", "512", "--new", "16",
    "--batch", "8", "--train-batch", "4", "--prompt", "16",
)  # fmt: skip

DEVICE = "cuda"
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense tensor-core FLOP/s (SXM)


def build(
    vocab: int,
    hidden: int,
    layers: int,
    heads: int,
    ffn: int,
    config_dir: str | None = None,
    kv_heads: int = 0,
):
    """A Llama of these sizes (kv_heads 0: as many as heads), or config_dir's model; random weights."""
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig

    if config_dir:  # e.g. SmolLM2-135M-Instruct's (benchmarks/gpu_runs.py --export writes it)
        return AutoModelForCausalLM.from_config(
            AutoConfig.from_pretrained(config_dir), attn_implementation="sdpa"
        )

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        intermediate_size=ffn,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    return AutoModelForCausalLM.from_config(config)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (kernels, caches)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def rollout_rates(model, B: int, P: int, N: int, vocab: int) -> dict:
    from transformers import GenerationConfig

    from align_lab.rollout.sampling import sample_with_cache

    prompt_ids = torch.randint(1, vocab, (B, P), device=DEVICE)
    attn = torch.ones_like(prompt_ids)
    never = vocab  # an EOS id no row can sample: every row generates N tokens
    config = GenerationConfig(
        max_new_tokens=N, min_new_tokens=N, do_sample=True, top_k=0, pad_token_id=0, eos_token_id=never
    )

    def generate():
        out = model.generate(input_ids=prompt_ids, attention_mask=attn, generation_config=config)
        assert out.shape[1] == P + N

    def loop():
        out, _ = sample_with_cache(model, prompt_ids, attn, N, never, 0)
        assert out.shape[1] == N

    return {
        "transformers generate": B * N / timed(generate, 2),
        "align_lab KV-cache loop": B * N / timed(loop, 2),
    }


def update_time(model, B: int, P: int, T: int, vocab: int, bf16: bool) -> float:
    from align_lab.models.sequences import response_logprobs
    from align_lab.rl import masked_mean

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    prompt_ids = torch.randint(1, vocab, (B, P), device=DEVICE)
    attn = torch.ones_like(prompt_ids)
    response_ids = torch.randint(1, vocab, (B, T), device=DEVICE)
    mask = torch.ones(B, T, device=DEVICE)
    advantages = torch.randn(B, T, device=DEVICE)

    def step():
        with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=bf16):
            logprobs, _ = response_logprobs(model, prompt_ids, attn, response_ids, mask)
            loss = -masked_mean(logprobs * advantages, mask)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return timed(step, 3)


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__)
    parser.add_argument("--batch", type=at_least(1), default=64)
    parser.add_argument("--prompt", type=at_least(1), default=64)
    parser.add_argument("--new", type=at_least(1), default=256)
    parser.add_argument("--train-batch", type=at_least(1), default=16)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--vocab", type=at_least(1), default=32000)
    parser.add_argument("--hidden", type=at_least(1), default=768)
    parser.add_argument("--layers", type=at_least(1), default=12)
    parser.add_argument("--heads", type=at_least(1), default=12)
    parser.add_argument("--ffn", type=at_least(1), default=2048)
    parser.add_argument("--config", default=None, help="a model config folder (overrides the sizes above)")
    args = parser.parse_args(argv)
    print(machine_line(machine()), flush=True)
    global DEVICE
    DEVICE = args.device
    torch.set_default_device(DEVICE)  # as a run with hardware.device=cuda does (run/hardware.py)
    torch.manual_seed(0)
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), float("nan"))
    model = build(args.vocab, args.hidden, args.layers, args.heads, args.ffn, args.config).to(DEVICE)
    vocab, c = model.config.vocab_size, model.config
    params = sum(p.numel() for p in model.parameters())
    lines = [
        f"# GPU measurements ({name}, torch {torch.__version__})",
        "",
        f"Llama, {params / 1e6:.1f}M parameters (hidden {c.hidden_size}, {c.num_hidden_layers} layers, "
        f"{c.num_attention_heads} heads ({c.num_key_value_heads} key/value), FFN {c.intermediate_size}, "
        f"vocab {vocab},",
        f"tied embeddings: {c.tie_word_embeddings}), random weights. Command: `python -m benchmarks run gpu"
        + (f" --config {args.config}`." if args.config else "`."),
        "",
        f"## Rollout: {args.batch} prompts x {args.prompt} tokens, {args.new} new tokens each, bf16 weights",
        "",
        "| engine | tokens/s |",
        "|---|---|",
    ]
    rates = rollout_rates(model.to(torch.bfloat16).eval(), args.batch, args.prompt, args.new, vocab)
    lines += [f"| {k} | {v:,.0f} |" for k, v in rates.items()]
    rows = [{"measure": f"rollout tokens/s, {k}", "value": v} for k, v in rates.items()]
    lines += [
        "| vLLM | in its own environment: benchmarks/rollout_engines.py |",
        "",
    ]
    model = model.float().train()
    B, P, T = args.train_batch, args.prompt, args.new
    tokens = B * (P + T)
    lines += [
        f"## Policy update: {B} sequences x ({P} prompt + {T} response) tokens = {tokens} tokens per step",
        "",
        "MFU = 6 x parameters x tokens / step time / peak dense bf16 FLOP/s "
        f"({peak / 1e12:.0f} TFLOP/s); attention FLOPs not counted.",
        "",
        "| precision | s/step | tokens/s | TFLOP/s | MFU |",
        "|---|---|---|---|---|",
    ]
    for label, bf16 in (("fp32 (TF32 off)", False), ("bf16 autocast, fp32 master weights", True)):
        seconds = update_time(model, B, P, T, vocab, bf16)
        flops = 6 * params * tokens / seconds
        lines.append(
            f"| {label} | {seconds:.3f} | {tokens / seconds:,.0f} | {flops / 1e12:.1f} | {flops / peak:.1%} |"
        )
        rows += [
            {"measure": f"update s/step, {label}", "value": seconds},
            {"measure": f"MFU, {label}", "value": flops / peak},
        ]
    if DEVICE == "cuda":
        lines.append(f"\nPeak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
        rows.append({"measure": "peak GPU memory GiB", "value": torch.cuda.max_memory_allocated() / 2**30})
    print("\n".join(lines) + "\n")
    report("gpu", args, rows, notes={"parameters": params, "device": name})


if __name__ == "__main__":
    main()
