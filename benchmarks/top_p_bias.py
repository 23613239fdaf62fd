"""The importance-ratio bias of truncated sampling on the toy world (issue 26; TRL #6789, PR #7269).

align_lab's engines return the log-prob of each sampled token under the distribution it was drawn from
(softmax of the logits after temperature, top-k and top-p, renormalised over the kept tokens); the
trainer scores tokens with softmax(logits / temperature) over the whole vocabulary. Under top-p the
trainer/rollout ratio of every token is then S, the probability mass top-p kept at its position,
whatever the token: a bias, not a change of policy. This samples rollouts from the default run's SFT
policy (its starting point) with the HF engine at top_p = 1 and at `--top-p`, and prints, over response
tokens: the mean kept mass S, the mean log ratio (the bias; log S by the closed form, and how far each
token's log ratio is from its own log S), the mean ratio and the three rollout/mismatch_* metrics.

    PYTHONPATH=. .venv/bin/python -m benchmarks.top_p_bias            # top_p = 0.9, 8 rollouts of 64
    PYTHONPATH=. .venv/bin/python -m benchmarks.top_p_bias --top-p 0.8 model=tiny_qwen2

Extra key=value arguments are config overrides, as for `python -m align_lab` (the SFT stage comes from
the run's cache, built once if missing). Runs on the CPU in about a minute with an empty cache.
"""

from __future__ import annotations

import argparse

import torch

from align_lab.models.sequences import response_logits
from align_lab.rl import masked_mean, rollout_mismatch, selective_logprobs
from align_lab.rollout.hf import HFGenerate
from align_lab.rollout.sampling import warp


def world(overrides: list[str]):
    """The default run's world (or the one the overrides make): tokenizer, task, SFT policy."""
    from align_lab.admission import spec_from_config
    from align_lab.cache import StageCache
    from align_lab.study.stages import build_stages
    from align_lab.tracking.progress import progress_factory
    from tests.conftest import compose

    cfg, names = compose(["tracker=none", *overrides])
    spec = spec_from_config(cfg, names)
    w = build_stages(spec.task, spec.model, spec.sft, StageCache(spec.cache_dir), progress_factory(False))
    return w, spec


@torch.no_grad()
def measure(policy, tok, task, engine: HFGenerate, prompts: list[str], group: int, rollouts: int) -> dict:
    """The ratio statistics over `rollouts` rollouts of len(prompts) x group responses, seeds 0.."""
    T = engine.temperature
    rows = {"kept": [], "log_ratio": [], "log_kept": [], "trainer": [], "rollout": [], "mask": []}
    for seed in range(rollouts):
        torch.manual_seed(seed)
        s = engine.sample(policy, tok, prompts, group, task.max_response_tokens, task.max_prompt_tokens)
        logits = response_logits(policy, s.prompt_ids, s.prompt_attn, s.response_ids, s.mask)  # (B, L, V)
        B, L, V = logits.shape
        flat = logits.reshape(B * L, V)  # (BL, V)
        kept = torch.isfinite(warp(flat, T, engine.top_k, engine.top_p))  # (BL, V) the tokens top-p keeps
        mass = torch.where(kept, torch.softmax(flat / T, dim=-1), 0.0).sum(-1).reshape(B, L)  # (B, L) S
        trainer = selective_logprobs(logits, s.response_ids, T)  # (B, L) as the online loop computes it
        rows["kept"].append(mass)
        rows["log_kept"].append(mass.log())
        rows["log_ratio"].append(trainer - s.logprobs)
        rows["trainer"].append(trainer)
        rows["rollout"].append(s.logprobs)
        rows["mask"].append(s.mask)
    width = max(m.shape[1] for m in rows["mask"])
    pad = lambda x: torch.nn.functional.pad(x, (0, width - x.shape[1]))  # noqa: E731
    t = {k: torch.cat([pad(x) for x in v]) for k, v in rows.items()}  # (rollouts x B, width) each
    mask = t["mask"].bool()
    kl, outside, largest = rollout_mismatch(t["trainer"], t["rollout"], mask)
    return {
        "tokens": int(mask.sum()),
        "kept mass S": masked_mean(t["kept"], mask).item(),
        "log ratio (bias)": masked_mean(t["log_ratio"], mask).item(),
        "max |log ratio - log S|": (t["log_ratio"] - t["log_kept"])[mask].abs().max().item(),
        "ratio mean": masked_mean(t["log_ratio"].exp(), mask).item(),
        "rollout/mismatch_kl": kl.item(),
        "rollout/mismatch_ratio_outside": outside.item(),
        "rollout/mismatch_ratio_max": largest.item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--rollouts", type=int, default=8, help="rollouts of train.rollout_size responses")
    args, overrides = parser.parse_known_args()
    w, spec = world(overrides)
    tok, policy, task = w.tokenizer, w.load_policy().eval(), spec.task
    group = spec.algo.group_size
    prompts = task.prompts("train")[: spec.train.rollout_size // group]
    T = spec.rollout.temperature
    names = spec.names
    print(
        f"task={names.get('task')} model={names.get('model')}: the SFT policy, temperature {T}, "
        f"{args.rollouts} rollouts of {len(prompts)} prompts x {group}; torch {torch.__version__}"
    )
    for top_p in (1.0, args.top_p):
        engine = HFGenerate(temperature=T, top_p=top_p)
        stats = measure(policy, tok, task, engine, prompts, group, args.rollouts)
        print(f"top_p={top_p}: " + "; ".join(f"{k} {v:.6g}" for k, v in stats.items()))


if __name__ == "__main__":
    main()
