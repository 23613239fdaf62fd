"""Whether a run's env, task and reward fit together, checked at admission (study/cross_checks.py) from
what each declares, so that a setting that cannot work is one line before any stage is built, not a
traceback after the SFT stage or a game silently played for one turn (issue 59).

- an env's `tasks`: the task classes whose prompts it plays (env=guess_number reads a game's secret from
  its prompt; env=calculator answers arith_word's calls); None or absent (single_turn, a user's env that
  says nothing): any task;
- a task's `conversations`: its demonstrations are conversations (task=guess_number; arith_word with
  task.demonstrations_env=calculator), which need a multi-turn env to be rendered and sampled;
- a learned reward model (reward=learned_rm, alone or in reward=combined) trains on single responses and
  scores one: with a multi-turn env its preference pairs would be conversations, and it would score only
  the episode's answer; refused there (docs/environments.md).
"""

from __future__ import annotations

from align_lab import registry
from align_lab.config import ConfigError
from align_lab.rewards import reward_models


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
    if multi_turn and reward_models(spec.reward):
        reward = names.get("reward", type(spec.reward).__name__)
        single = "" if getattr(task, "conversations", False) else ", or env=single_turn"
        raise ConfigError(
            f"reward={reward}: a learned reward model trains on and scores single responses; "
            f"env={spec.env_name} plays conversations (multi-turn); "
            f"use reward=verifier, gold or function{single}"
        )
