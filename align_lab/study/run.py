"""One run: config -> components -> shared stages (cached) -> training loop -> evaluation -> run folder."""

from __future__ import annotations

import json
import resource
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from align_lab.algorithms.base import OnlineAlgorithm
from align_lab.algorithms.preference import PairwiseAlgorithm
from align_lab.config import ConfigError
from align_lab.rewards import LearnedRM
from align_lab.rollout.base import RolloutEngine
from align_lab.study.cache import StageCache
from align_lab.study.world import World
from align_lab.train.common import Context, TrainConfig, checkpoint_step
from align_lab.train.online import train_online, validate
from align_lab.train.pairwise import train_pairwise
from align_lab.train.preemption import Preempted, Preemption


@dataclass
class RunSpec:
    """The built components of a run; `names` are the chosen config files, for labels only."""

    algo: object
    model: object
    task: object
    reward: object
    train: TrainConfig
    sft: object
    rollout: RolloutEngine
    tracker: dict
    seed: int
    cache_dir: Path
    device: str
    num_threads: int
    names: dict
    config: dict  # the resolved config, for the tracker


def progress_factory(enabled: bool = True):
    """tqdm bars on stderr, one per stage with live reward and KL; a line every 10 s in a log file."""
    import sys

    from tqdm.auto import tqdm
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight loading/saving bars of tiny models are noise
    interval = 0.5 if sys.stderr.isatty() else 10.0
    return lambda **kw: tqdm(dynamic_ncols=True, mininterval=interval, disable=not enabled, **kw)


def check_combination(spec: RunSpec) -> None:
    """Cross-component checks that no single component can make; before any compute."""
    if isinstance(spec.algo, OnlineAlgorithm):
        try:
            validate(spec.algo, spec.train)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        critic_init = getattr(spec.algo, "critic_init", "sft") if spec.algo.uses_critic else "sft"
        if critic_init == "reward_model" and not isinstance(spec.reward, LearnedRM):
            raise ConfigError(
                "algo.critic_init=reward_model: needs reward=learned_rm (a reward model to copy), "
                f"not reward={spec.names.get('reward', type(spec.reward).__name__)}; "
                "or set algo.critic_init=sft"
            )
    elif not isinstance(spec.algo, PairwiseAlgorithm):
        raise ConfigError(
            f"algo._target_: {type(spec.algo).__name__} is neither an online nor a pairwise algorithm"
        )
    check_installed = getattr(spec.rollout, "check_installed", None)  # engines in other environments
    if check_installed is not None:
        try:
            check_installed()
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if spec.device != "cpu":
        raise ConfigError(f"hardware.device={spec.device}: only cpu is supported so far")


def write_summary(run_dir: Path, summary: dict) -> None:
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, sort_keys=True, default=str))
    tmp.replace(run_dir / "summary.json")


def run(spec: RunSpec, run_dir: Path) -> dict:
    """Runs (or resumes, when run_dir holds a checkpoint) one alignment run; returns summary.json."""
    from align_lab.tracking import make_tracker

    check_combination(spec)
    start = time.perf_counter()
    if spec.num_threads:
        torch.set_num_threads(spec.num_threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "status": "running",
        "algo": spec.names.get("algo"),
        "seed": spec.seed,
        "names": spec.names,
    }
    write_summary(run_dir, summary)
    ckpt = run_dir / "checkpoints"
    # logged `step` = completed steps, so lines up to the checkpoint's step survive a resume
    tracker = make_tracker(
        spec.tracker["kind"],
        run_dir,
        project=spec.tracker["project"],
        group=spec.tracker["group"],
        job_type=spec.names.get("algo", "run"),
        tags=[spec.names.get(k, "") for k in ("task", "model", "reward")],
        config=spec.config,
        start_step=checkpoint_step(ckpt) + 1,
        mode=spec.tracker["mode"],
    )
    progress = progress_factory()
    try:
        world = World(spec.task, spec.model, spec.sft, StageCache(spec.cache_dir), progress)
        tok = world.tokenizer
        torch.manual_seed(spec.seed)
        scorer = spec.reward.scorer(world)
        reference = world.load_policy().eval().requires_grad_(False)
        policy = world.load_policy().train()
        critic = None
        if isinstance(spec.algo, OnlineAlgorithm) and spec.algo.uses_critic:
            init = world.sft_path if spec.algo.critic_init == "sft" else world.stages["reward_model"].path
            critic = spec.model.init_critic(tok, init).train()
        preferences = world.preferences if isinstance(spec.algo, PairwiseAlgorithm) else None
        ctx = Context(
            spec.task,
            tok,
            policy,
            reference,
            critic,
            scorer,
            spec.rollout,
            spec.train,
            tracker,
            ckpt,
            spec.seed,
            progress,
            preferences,
            preemption=Preemption().install(),
        )
        loop = train_online if isinstance(spec.algo, OnlineAlgorithm) else train_pairwise
        final = loop(spec.algo, ctx)
        summary |= {
            "status": "completed",
            **final,
            "stages": {
                s: {"key": r.key, "hit": r.hit, "seconds": round(r.seconds, 3)}
                for s, r in world.stages.items()
            },
            **getattr(world, "rm_metrics", {}),
            "time/total_s": time.perf_counter() - start,
            "memory/peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        tracker.summary({k: v for k, v in final.items()})
        return summary
    except Preempted:
        summary |= {"status": "preempted"}  # requeued by the scheduler, or resumed by a rerun
        raise
    except BaseException as e:
        summary |= {
            "status": "failed",
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(),
        }
        raise
    finally:
        spec.rollout.close()
        write_summary(run_dir, summary)
        tracker.close()
