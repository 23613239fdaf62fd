"""What the online loop logs each step (6.): the phases' timings, and what a comparison needs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from align_lab.algorithms.base import OnlineAlgorithm, Rollout
from align_lab.algorithms.signals import REFERENCE, REWARD_SOURCES
from align_lab.algorithms.sources import DATA, TEACHER
from align_lab.rl import kl_penalty, masked_sum, rollout_mismatch
from align_lab.train.common import Counters
from align_lab.train.roofline import kv_positions


@contextmanager
def timed(times: dict, key: str) -> Iterator[None]:
    """Puts the seconds its block takes in times[key] (`time/<phase>_s`)."""
    start = time.perf_counter()
    yield
    times[key] = time.perf_counter() - start


def mismatch_metrics(logprobs, rollout_logprobs, mask) -> dict:
    """rollout/mismatch_*: the trainer's (B, T) log-probs of the sampled tokens against the engine's."""
    mismatch_kl, outside, largest = rollout_mismatch(logprobs, rollout_logprobs, mask)
    return {
        "rollout/mismatch_kl": mismatch_kl.item(),
        "rollout/mismatch_ratio_outside": outside.item(),
        "rollout/mismatch_ratio_max": largest.item(),
    }


def step_metrics(
    algo: OnlineAlgorithm, rollout: Rollout, stats: dict, times: dict, counters: Counters
) -> dict:
    """6. What a comparison needs: reward, KL to the reference, length, how far the engine's sampling
    distribution is from the trainer's (rollout.rollout_logprobs, (B, T)), the update's mean stats,
    timings and the compute counters. Rows the teacher sampled (rollout.sampled_by: GKD's off-policy
    steps, SFT-distill's) carry the teacher's log-probs from the engine, so no mismatch is logged; an
    algorithm whose source may be the teacher logs train/teacher_sampled (1 or 0) every step. Rows that
    are the task's demonstrations (GKD seq_kd=false; no engine drew them) are logged as train/from_data."""
    scores, mask, G = rollout.scores, rollout.mask, algo.group_size
    teacher_sampled, from_data = rollout.sampled_by == TEACHER, rollout.sampled_by == DATA
    rollout_logprobs, kinds = rollout.rollout_logprobs, algo.source.kinds
    kl = masked_sum(kl_penalty(rollout.logprobs, rollout.ref_logprobs, "k1"), mask, dim=1)  # (B,)
    groups = scores.view(-1, G)  # (B/G, G)
    return {
        "train/reward": scores.mean().item(),
        "train/reward_std": scores.std().item() if len(scores) > 1 else 0.0,
        **source_means(rollout),
        **({"train/kl": kl.mean().item()} if REFERENCE in rollout.signals else {}),
        "train/response_length": mask.sum(-1).mean().item(),
        "train/zero_std_groups": (groups.std(-1) == 0).float().mean().item() if G > 1 else 0.0,
        **(
            {} if teacher_sampled or from_data else mismatch_metrics(rollout.logprobs, rollout_logprobs, mask)
        ),
        **({"train/teacher_sampled": float(teacher_sampled)} if TEACHER in kinds else {}),
        **({"train/from_data": float(from_data)} if DATA in kinds else {}),
        **{k: sum(v) / len(v) for k, v in stats.items()},
        **times,
        "time/step_s": sum(times.values()),
        "time/generated_tokens_per_s": int(mask.sum()) / max(times["time/rollout_s"], 1e-9),
        **{f"counters/{k}": v for k, v in counters.items()},
        # what the rollout's bandwidth figure needs (train/roofline.py): a decode step per position of
        # the longest response, and the KV positions the rows read
        "perf/decode_steps": mask.shape[1],
        "perf/kv_positions": kv_positions(rollout.prompt_attn.sum(-1), mask.sum(-1)),
        "perf/response_tokens": int(mask.sum()),
    }


def source_means(rollout: Rollout) -> dict[str, float]:
    """train/reward_<name>: each reward source's mean unweighted score over the step (reward=combined)."""
    sources = rollout.signals.get(REWARD_SOURCES)
    if sources is None:
        return {}
    means = sources.scores.float().mean(0)  # (K,)
    return {f"train/reward_{name}": means[k].item() for k, name in enumerate(sources.names)}


def evaluated_kl(evaluated: tuple[int, float] | None) -> str:
    """The latest evaluation's KL, `evaluated` = (its step, eval/kl), as a progress line shows it where a
    step measures none: `21.995 (eval@100)`, `-` before the first evaluation."""
    return "-" if evaluated is None else f"{evaluated[1]:.3f} (eval@{evaluated[0]})"


def evaluated_before(run_dir: Path, start: int) -> tuple[int, float] | None:
    """(step, eval/kl) of the latest evaluation a resumed run logged up to `start` (its metrics.jsonl):
    the progress line's KL goes on from it, as the uninterrupted run's does (it said `-` until the next
    evaluation: hunt of 2026-12-04, k4); None from step 0 or where the file cannot be read."""
    from align_lab.tracking.jsonl import METRICS_FILE, read_metrics

    if start == 0:
        return None
    try:
        rows = read_metrics(run_dir / METRICS_FILE)
    except (OSError, ValueError):
        return None
    logged = [m for m in rows if isinstance(m, dict) and isinstance(m.get("step"), int)]  # not a user's edit
    found = [
        (m["step"], m["eval/kl"])
        for m in logged
        if isinstance(m.get("eval/kl"), float) and m["step"] <= start
    ]
    return found[-1] if found else None


def step_postfix(metrics: dict, times: dict, evaluated: tuple[int, float] | None = None) -> dict[str, str]:
    """What the progress line shows of a step: its reward, the policy's KL to the reference, and where its
    time went. An algorithm without a KL term reads no reference while it trains (train/kl is not logged),
    so the line shows the latest evaluation's KL, `evaluated` = (its step, eval/kl), marked `(eval@step)`,
    and `-` before the first: never a 0 the policy is not at."""
    kl = f"{metrics['train/kl']:.3f}" if "train/kl" in metrics else evaluated_kl(evaluated)
    return {
        "reward": f"{metrics['train/reward']:.3f}",
        "kl": kl,
        "rollout": seconds(times.get("time/rollout_s", 0.0)),
        "update": seconds(times.get("time/train_s", 0.0)),
    }


def seconds(s: float) -> str:
    """A phase's time for the progress line: 12.3s, or 45ms below a second (a toy step's phases)."""
    return f"{s:.1f}s" if s >= 1 else f"{s * 1000:.0f}ms"
