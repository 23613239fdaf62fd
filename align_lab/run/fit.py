"""Whether a run's env, task and reward fit together, checked at admission (run/cross_checks.py) from
what each declares, so that a setting that cannot work is one line before any stage is built, not a
traceback after the SFT stage or a game silently played for one turn (issue 59).

- an env's `tasks`: the task classes whose prompts it plays (env=guess_number reads a game's secret from
  its prompt; env=calculator answers arith_word's calls); None or absent (single_turn, a user's env that
  says nothing): any task;
- a task's `conversations`: its demonstrations are conversations (task=guess_number; arith_word with
  task.demonstrations_env=calculator), which need a multi-turn env to be rendered and sampled;
- a learned reward model (reward=learned_rm, alone or in reward=combined) trains on single responses and
  scores one: with a multi-turn env its preference pairs would be conversations, and it would score only
  the episode's answer; refused there (docs/environments.md);
- an algorithm with what it is given: KTO's threshold against a verifier's 0/1 rewards, a pairwise
  algorithm that samples pairs online with a multi-turn env;
- what an algorithm declares it needs (check_needs): responses that can differ where its signal compares
  a prompt's responses (`compares_samples`: GRPO's group mean, RLOO, RAFT, ReMax's greedy baseline,
  sampled pairs), the task's demonstrations
  (`ptx_coef`; a task says which key leaves it without: `demonstrations_missing`), dynamic sampling's
  one on-policy process, a critic warm-up shorter than the run (`critic_pretrain_steps`). Each was
  accepted and trained nothing, or failed after the stages were built.
"""

from __future__ import annotations

import torch

from align_lab import registry
from align_lab.algorithms.base import OnlineAlgorithm
from align_lab.algorithms.preference import PairwiseAlgorithm, Route
from align_lab.algorithms.signals import SelfTeacher, reads
from align_lab.config import ConfigError
from align_lab.rewards import GoldReward, Verifier, reward_models


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__name__}"


def serving_envs(task) -> list[str]:
    """The env choices of conf/env/ whose class declares it plays `task`'s class."""
    import importlib

    found = []
    for choice in registry.choices("env"):
        module, _, name = (registry.target("env", choice) or "").rpartition(".")
        tasks = getattr(getattr(importlib.import_module(module), name, None), "tasks", None)
        if tasks and isinstance(task, tuple(tasks)):
            found.append(f"env={choice}")
    return found


def task_choices(classes) -> list[str]:
    """The task choices of conf/task/ that build one of `classes`."""
    paths = {class_path(c) for c in classes}
    return [f"task={c}" for c in registry.choices("task") if registry.target("task", c) in paths]


def check_fit(spec) -> None:
    """The env plays the task's prompts; a task of conversations has a multi-turn env; no learned
    reward model with a multi-turn env. Each refusal one line naming the keys."""
    env, task, names = spec.env, spec.task, spec.names
    task_name = names.get("task", type(task).__name__)
    multi_turn = bool(getattr(env, "multi_turn", False))
    tasks = getattr(env, "tasks", None)
    if tasks and not isinstance(task, tuple(tasks)):
        served = ", ".join(task_choices(tasks)) or ", ".join(c.__name__ for c in tasks)
        raise ConfigError(
            f"env={spec.env_name}: plays {served} only, not task={task_name}; use {served} or env=single_turn"
        )
    if getattr(task, "conversations", False) and not multi_turn:
        envs = " or ".join(serving_envs(task)) or "a multi-turn env"
        raise ConfigError(
            f"task={task_name}: its demonstrations are conversations, which need a multi-turn env "
            f"({envs}), not env={spec.env_name}"
        )
    taught = reads(spec.algo, SelfTeacher)  # SDPO's
    self_teacher = None if taught is None else taught.kind
    if multi_turn and self_teacher is not None:
        raise ConfigError(
            f"algo={names.get('algo', 'sdpo')}: its teacher's prompt shows a sibling's single response; "
            f"env={spec.env_name} plays conversations (multi-turn); use env=single_turn"
        )
    zero3 = spec.backend.uses_deepspeed and spec.backend.zero_stage == 3
    if zero3 and self_teacher in ("ema", "base"):
        raise ConfigError(
            f"algo.teacher_kind={self_teacher}: a copy of a ZeRO-3 partitioned policy is not supported; "
            "use hardware.zero_stage=2 or algo.teacher_kind=live"
        )
    if multi_turn and reward_models(spec.reward):
        reward = names.get("reward", type(spec.reward).__name__)
        single = "" if getattr(task, "conversations", False) else ", or env=single_turn"
        raise ConfigError(
            f"reward={reward}: a learned reward model trains on and scores single responses; "
            f"env={spec.env_name} plays conversations (multi-turn); "
            f"use reward=verifier, gold or function{single}"
        )


def check_threshold(spec) -> None:
    """KTO's algo.desirable_threshold where the labels are a verifier's 0 or 1 (reward=verifier, or gold
    on a verifiable task): outside [0, 1) every sample falls on one side and KTO has nothing to
    contrast. Other rewards' range is known once sampled (run/pairs.py check_labels)."""
    threshold = getattr(spec.algo, "desirable_threshold", None)
    exact = spec.task.verifiable and isinstance(spec.reward, GoldReward | Verifier)
    if threshold is None or not exact or 0 <= threshold < 1:
        return
    reward = spec.names.get("reward", type(spec.reward).__name__)
    raise ConfigError(
        f"algo.desirable_threshold={threshold}: reward={reward} on task={spec.names.get('task', 'task')} "
        "scores each sample 0 or 1, so every sample would be on one side of it and KTO would have nothing "
        "to contrast; must be in [0, 1)"
    )


def sampled_routes(algo) -> torch.Tensor:
    """(256,) bool: which of a draw of a pairwise algorithm's routes sample their responses (online DPO,
    SAIL's PP/PR); the rest are the preferences stage's pairs."""
    with torch.random.fork_rng():  # routes may draw from the global generator: leave it as it was
        routes = algo.routes(256)
    return routes != int(Route.DPO)


def compared(algo) -> str | None:
    """What the algorithm's learning signal compares among one prompt's responses, or None (its own
    declaration, LoopNeeds.compares_samples; a pairwise algorithm whose every pair is sampled)."""
    if isinstance(algo, PairwiseAlgorithm):
        return "the two sampled responses of a pair" if bool(sampled_routes(algo).all()) else None
    return algo.needs.compares_samples if isinstance(algo, OnlineAlgorithm) else None


def check_needs(spec) -> None:
    """What the algorithm declares it needs of the run, each refusal one line naming the keys."""
    from align_lab.train.dynamic_sampling import check_dynamic_sampling

    algo, algo_name = spec.algo, spec.names.get("algo", type(spec.algo).__name__)
    what = compared(algo)
    if what is not None and getattr(spec.rollout, "top_k", 0) == 1:
        raise ConfigError(
            f"rollout.top_k=1: algo={algo_name} compares {what}, and top_k=1 samples every response to a "
            "prompt the same (the greedy one), so every step would train nothing; use rollout.top_k=0 or >= 2"
        )
    missing = getattr(spec.task, "demonstrations_missing", None)
    ptx_coef = algo.needs.ptx_coef if isinstance(algo, OnlineAlgorithm) else 0
    if ptx_coef > 0 and missing:
        raise ConfigError(
            f"algo.ptx_coef={ptx_coef}: adds the NLL of the task's demonstrations, and "
            f"task={spec.names.get('task', 'task')} has none ({missing}); name them, or set algo.ptx_coef=0"
        )
    warm = algo.needs.critic_pretrain_steps if isinstance(algo, OnlineAlgorithm) else 0
    if warm >= spec.train.steps:  # every step would train only the critic (PPO-max's 10 in a 3-step run)
        raise ConfigError(
            f"algo.critic_pretrain_steps={warm}: must be < train.steps={spec.train.steps} (the first {warm} "
            "steps train only the critic, so the policy would never move); lower it or raise train.steps"
        )
    if isinstance(algo, OnlineAlgorithm):
        try:  # on-policy, one process: the loop checked it only after the stages were built
            check_dynamic_sampling(algo, spec.train, spec.hardware.processes * spec.hardware.nodes)
        except ValueError as e:
            raise ConfigError(f"algo.dynamic_sampling=true: {e}") from None


def check_sampled_pairs(spec) -> None:
    """A pairwise algorithm that samples its pairs online (online DPO, SAIL's sampled routes) samples one
    response per prompt: with a multi-turn environment it would train on cut conversations. Refused;
    DPO-family algorithms on the preferences stage's multi-turn pairs are fine."""
    if not getattr(spec.env, "multi_turn", False) or not isinstance(spec.algo, PairwiseAlgorithm):
        return
    if bool(sampled_routes(spec.algo).any()):
        raise ConfigError(
            f"env={spec.env_name}: {type(spec.algo).__name__} samples pairs online, one response per "
            "prompt (not multi-turn yet); use an algorithm on the preferences stage's pairs (dpo, ipo, "
            "slic, simpo, orpo, kto) or env=single_turn"
        )
