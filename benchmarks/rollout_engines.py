"""Rollout engines side by side on the toy world's tiny Llama: vLLM's start and weight-sync times, and
generated tokens per second of `hf` and `vllm` for a few rollout sizes.

Needs vllm: bash scripts/setup_vllm.sh, then
    HF_HUB_OFFLINE=1 .venv-vllm/bin/python -m benchmarks run rollout_engines
(prints one line per measurement; numbers depend on the machine and on what else runs on it).
"""

from __future__ import annotations

import statistics
import tempfile
import time

import torch

from benchmarks.harness import arguments, machine, machine_line, ratios, report
from benchmarks.options import at_least

NEEDS = ("vllm",)
SMOKE = ("--repeats", "1", "--sizes", "4x2")
REPEATS = 5


def world():
    """The tests' small toy world: tokenizer, prompts and a briefly fine-tuned tiny Llama."""
    from align_lab.cache import StageCache
    from align_lab.run.admission import spec_from_config
    from align_lab.run.stages import build_stages
    from align_lab.tracking.progress import progress_factory
    from tests.conftest import SMALL, compose

    cfg, names = compose([*SMALL, f"cache_dir={tempfile.mkdtemp()}"])
    spec = spec_from_config(cfg, names)
    w = build_stages(spec.task, spec.model, spec.sft, StageCache(spec.cache_dir), progress_factory(False))
    return w, spec.task


def tokens_per_s(
    engine, policy, tok, task, prompts, group: int, repeats: int = REPEATS
) -> tuple[float, float]:
    """Median generated tokens per second over REPEATS rollouts (after one warm-up), and tokens/rollout."""
    limits = (task.max_response_tokens, task.max_prompt_tokens)
    engine.sample(policy, tok, prompts, group, *limits)
    rates, tokens = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        s = engine.sample(policy, tok, prompts, group, *limits)
        rates.append(s.mask.sum().item() / (time.perf_counter() - t))
        tokens.append(s.mask.sum().item())
    return statistics.median(rates), statistics.mean(tokens)


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__doc__)
    parser.add_argument(
        "--repeats", type=at_least(1), default=REPEATS, help="rollouts timed per engine and size"
    )
    parser.add_argument("--sizes", default="16x4,64x8", help="prompts x samples per prompt, comma-separated")
    args = parser.parse_args(argv)
    print(machine_line(machine()), flush=True)
    from align_lab.rollout.hf import HFGenerate
    from align_lab.rollout.vllm import VLLMEngine

    w, task = world()
    tok, policy = w.tokenizer, w.load_policy()
    prompts = task.prompts("train")
    size = sum(p.numel() for p in policy.parameters())
    print(f"torch threads {torch.get_num_threads()}; policy of {size} parameters")
    vllm = VLLMEngine(seed=0)
    vllm.sample(policy, tok, prompts[:1], 1, task.max_response_tokens, task.max_prompt_tokens)
    print(f"vllm engine start: {vllm.start_s:.1f} s")
    syncs = []
    for _ in range(args.repeats):
        with torch.no_grad():
            next(policy.parameters()).mul_(1.0)  # an in-place change, as an optimizer step makes
        t = time.perf_counter()
        vllm.sync(policy)
        syncs.append(time.perf_counter() - t)
    print(f"vllm sync (state_dict -> reload_weights): {1000 * statistics.median(syncs):.0f} ms")
    threads = torch.get_num_threads()
    rows = [{"measure": "vllm engine start s", "value": vllm.start_s}]
    rows.append({"measure": "vllm sync ms", "value": 1000 * statistics.median(syncs)})
    ratio = {}
    for n_prompts, group in [tuple(int(x) for x in size.split("x")) for size in args.sizes.split(",")]:
        rates = {}
        # vllm generates with 1 torch thread (as vLLM serves); hf with the trainer's count, and with 1
        for name, engine, n_threads in [
            (f"hf, {threads} threads", HFGenerate(), threads),
            ("hf, 1 thread", HFGenerate(), 1),
            ("vllm", vllm, threads),
        ]:
            torch.set_num_threads(n_threads)
            rate, tokens = tokens_per_s(engine, policy, tok, task, prompts[:n_prompts], group, args.repeats)
            print(f"{name:14s} {n_prompts * group:4d} responses ({tokens:.0f} tokens): {rate:,.0f} tokens/s")
            rows.append({"measure": f"tokens/s, {name}, {n_prompts * group} responses", "value": rate})
            rates[name] = rate
        torch.set_num_threads(threads)
        ratio[f"tokens/s over hf, {n_prompts * group} responses"] = ratios(rates, f"hf, {threads} threads")
    vllm.close()
    report("rollout_engines", args, rows, ratio=ratio)


if __name__ == "__main__":
    main()
