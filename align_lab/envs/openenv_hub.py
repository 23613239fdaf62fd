"""env=openenv: an environment of the OpenEnv hub (the `openenv-core` package; TRL's OpenEnv integration
drives the same environments over HTTP) played in-process through the same multi-turn loop as ours
(rollout/turns.py). Each episode builds its own instance of the environment class, `reset()`s it, and
sends each policy turn as the Action field `action_field`; the Observation's `observation_field` is the
text the policy reads next, its `reward` the turn's reward, its `done` ends the episode.

In-process because the hub's servers (docker images, `uvicorn server.app:app`) wrap exactly this class:
`create_app(EnvClass, ActionClass, ObservationClass)` serves one instance per session. A hub environment
that raises, hangs or answers nonsense is treated as ours are (envs/base.run_step): a one-line EnvError
naming `env=openenv` and the turn, after `step_timeout_s`; KeyboardInterrupt and the run's signals pass
through. A bad class path, Action class or field name is one line when the config is built."""

from __future__ import annotations

import importlib
import inspect
import os
import site
import typing
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from align_lab.envs.base import LastTurn, Step, one_line
from align_lab.rerun import project_script
from align_lab.user_code import why_not_found

INSTALL = f"{project_script('scripts/setup_openenv.sh')} (docs/environments.md, 'Environment hubs')"


def load(path: str, key: str) -> type:
    """`module:Class` -> the class; one line naming the key otherwise (build() prefixes `env.`)."""
    module, _, name = path.partition(":")
    if not module or not name:
        raise ValueError(
            f"{key}={path!r}: must be 'module:Class' (an OpenEnv class; `openenv init NAME` writes one)"
        )
    try:
        found = getattr(importlib.import_module(module), name, None)
    except Exception as e:  # a hub module's own import error or bug: still one line
        raise ValueError(f"{key}={path!r}: cannot import {module} ({one_line(why_not_found(e))})") from None
    if not isinstance(found, type):
        raise ValueError(f"{key}={path!r}: {module} has no class {name}")
    return found


def hub_site() -> Path:
    """Where scripts/setup_openenv.sh installs openenv-core: $OPENENV_DIR (relative: to the checkout), else
    .openenv beside .venv in the checkout this package runs from."""
    folder = Path(os.environ.get("OPENENV_DIR") or ".openenv")
    return folder if folder.is_absolute() else Path(__file__).resolve().parents[2] / folder


def hub_base(path: str) -> type:
    """OpenEnv's Environment base class (openenv.core.env_server.interfaces), or one line to install it.
    Importable from the running Python's packages, else from scripts/setup_openenv.sh's folder (hub_site),
    appended to sys.path after them, so every package the environment already has wins (the openenv
    tests' rule, tests/conftest.py openenv_site)."""
    try:
        from openenv.core.env_server.interfaces import Environment
    except ImportError:
        if not (hub_site() / "openenv").is_dir():
            raise ValueError(
                f"environment={path!r}: the OpenEnv package is not installed: {INSTALL}"
            ) from None
        site.addsitedir(str(hub_site()))
        try:
            from openenv.core.env_server.interfaces import Environment
        except ImportError as e:  # a cut or damaged install: its error, and the command that redoes it
            broken = f"environment={path!r}: openenv-core in {hub_site()} does not import ({one_line(e)})"
            raise ValueError(f"{broken}; remove the folder and run {INSTALL}") from None
    return Environment


def action_class(env_class: type, path: str | None) -> type:
    """The Action class: `env.action`, else the annotation of the environment's step(action)."""
    if path is not None:
        return load(path, "action")
    try:
        hint = typing.get_type_hints(env_class.step).get("action")
    except Exception:  # an annotation naming what its module never defines
        hint = None
    if not isinstance(hint, type):
        raise ValueError(
            f"action=null: {env_class.__name__}.step(action) has no Action class annotation; "
            "set it to 'module:Class'"
        )
    return hint


def reset_seed(prompt: str, seed: int | None) -> int | None:
    """The seed of an episode's reset(): the same for every sample of a prompt (a group compares its
    responses in one environment), the same on a rerun (crc32, not Python's salted hash); None: the
    environment's own randomness."""
    return None if seed is None else (zlib.crc32(prompt.encode()) + seed) % 2**31


def takes_seed(env_class: type) -> bool:
    """Whether the class's reset() takes `seed` (the Environment base declares it; a subclass may not)."""
    try:
        parameters = inspect.signature(env_class.reset).parameters
    except (TypeError, ValueError):  # a builtin or C-level reset: no signature to read
        return False
    return "seed" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class HubEpisode(LastTurn):
    """One episode: its own environment instance, reset at start; each turn is one Action. close()
    when it ends, however it ends (done, max_turns, a turn without EOS, an error): a hub environment
    may hold a sandbox or a process."""

    def __init__(self, hub, action: type, action_field: str, observation_field: str) -> None:
        super().__init__()
        self.hub, self.action, self.closed = hub, action, False
        self.action_field, self.observation_field = action_field, observation_field

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub.close()

    def step(self, turn: str) -> Step:
        self.turns.append(turn)
        observation = self.hub.step(self.action(**{self.action_field: turn}))
        done = bool(observation.done)
        if done:
            self.close()
        text = getattr(observation, self.observation_field, None)
        if text is None:
            kind = type(observation).__name__
            raise AttributeError(f"{kind} has no field env.observation_field={self.observation_field!r}")
        reward = 0.0 if observation.reward is None else observation.reward  # None: no reward this turn
        return Step(observation="" if done else text, reward=reward, done=done)


@dataclass
class OpenEnv:
    """An OpenEnv environment class played in-process; every field is a key of conf/env/openenv.yaml."""

    multi_turn: ClassVar[bool] = True
    tasks: ClassVar[tuple[type, ...] | None] = None  # the task gives the prompt; any task (run/fit.py)
    environment: str = ""
    action: str | None = None
    action_field: str = "message"
    observation_field: str = "echoed_message"
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_turns: int = 2
    step_timeout_s: float = 10.0
    observation_template: str = "{observation}"
    max_conversation_tokens: int | None = None
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ValueError(f"max_turns={self.max_turns}: must be >= 1")
        if not self.step_timeout_s > 0:
            raise ValueError(f"step_timeout_s={self.step_timeout_s}: must be > 0")
        if self.max_conversation_tokens is not None and self.max_conversation_tokens < 1:
            raise ValueError(f"max_conversation_tokens={self.max_conversation_tokens}: must be >= 1 or null")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0
        ):
            raise ValueError(f"seed={self.seed!r}: must be an integer >= 0 or null")
        base = hub_base(self.environment)
        self.env_class = load(self.environment, "environment")
        if not issubclass(self.env_class, base):
            raise ValueError(
                f"environment={self.environment!r}: not an OpenEnv Environment "
                "(openenv.core.env_server.interfaces.Environment)"
            )
        self.action_class = action_class(self.env_class, self.action)
        self.takes_seed = takes_seed(self.env_class)
        fields = getattr(self.action_class, "model_fields", {})
        if self.action_field not in fields:
            raise ValueError(
                f"action_field={self.action_field!r}: {self.action_class.__name__} has the fields "
                f"{', '.join(fields) or 'none'}"
            )

    def start(self, prompt: str) -> HubEpisode:
        """A fresh instance per episode (create_app's factory mode): episodes never share state; reset
        with the prompt's seed (reset_seed). The prompt is the task's; the hub's reset observation is not
        shown to the policy."""
        hub = self.env_class(**self.kwargs)
        if self.takes_seed:
            hub.reset(seed=reset_seed(prompt, self.seed))
        else:  # a reset() without a seed parameter (openenv init's echo environment): nothing to seed
            hub.reset()
        return HubEpisode(hub, self.action_class, self.action_field, self.observation_field)
