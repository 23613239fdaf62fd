"""The environment contract (docs/environments.md): an Environment starts an Episode per prompt; each of
the policy's turns is a `step` returning the observation text, a reward and done. `run_step` calls a
step under a timeout and turns whatever goes wrong into one line naming the environment and the turn."""

from __future__ import annotations

import concurrent.futures
import copy
import functools
import math
import numbers
import os
import string
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from align_lab.user_fds import RunFdsLost, fds_kept
from align_lab.user_limits import RunLimitsLost, limits_kept
from align_lab.user_modes import modes_kept
from align_lab.user_probes import loaded
from align_lab.user_signals import CALLING, left_by_a_fork, run_signals_kept
from align_lab.user_timeouts import stuck_watched, users_line
from align_lab.value_checks import FLOAT32_MAX, beyond, one_line


@dataclass
class Step:
    """What the environment answers to one policy turn."""

    observation: str = ""  # text appended after the policy's turn ("" when done)
    reward: float = 0.0  # this turn's reward (Rollout.turn_rewards, at the turn's last token)
    done: bool = False
    tool_call: bool = False  # the turn called a tool (eval/tool_calls)


@runtime_checkable
class Episode(Protocol):
    def step(self, turn: str) -> Step:
        """The policy's turn (decoded, without EOS) -> the environment's answer."""
        ...

    def answer(self) -> str:
        """What the scorer reads (default: the last policy turn)."""
        ...


@runtime_checkable
class Environment(Protocol):
    multi_turn: bool  # False (single_turn): the engine samples one response, exactly as before
    max_turns: int  # policy turns at most (>= 1)
    step_timeout_s: float  # a step that takes longer is an error naming the environment and the turn

    def start(self, prompt: str) -> Episode:
        """A new episode for the raw task prompt (PolicyView.raw, not the rendered one)."""
        ...


class EnvError(ValueError):
    """An environment misbehaved (raised, hung, answered a non-string...): one line, `env=<name>: ...`."""


def check_environment(env, name: str) -> None:
    """The keys every environment has, checked before any compute (a user's `_target_` included)."""
    turns = getattr(env, "max_turns", None)
    if isinstance(turns, bool) or not isinstance(turns, int) or turns < 1:
        raise EnvError(f"env.max_turns={turns}: must be an integer >= 1 (env={name})")
    timeout = getattr(env, "step_timeout_s", None)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 1e8:
        raise EnvError(f"env.step_timeout_s={timeout}: must be a number > 0 and at most 1e8 (env={name})")
    if not callable(getattr(env, "start", None)):
        raise EnvError(f"env={name}: has no start(prompt) method (docs/environments.md)")
    check_template(getattr(env, "observation_template", "{observation}"), name)


def check_template(template, name: str) -> None:
    """An observation_template formats with {observation} alone (tasks/view.py): another field, a
    positional {} or a lone brace would raise at the first observation, after the stages are built."""
    where = f"env.observation_template={template!r}"
    if not isinstance(template, str):
        raise EnvError(f"{where}: must be a string holding {{observation}} (env={name})")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:  # a lone brace
        raise EnvError(f"{where}: {e} (write {{{{ and }}}} for a literal brace) (env={name})") from None
    unknown = [f for f in fields if f != "observation"]
    if unknown:
        raise EnvError(
            f"{where}: unknown field {{{unknown[0]}}}; the only field is {{observation}} "
            f"(write {{{{ and }}}} for a literal brace) (env={name})"
        )
    if "observation" not in fields:
        raise EnvError(f"{where}: must hold {{observation}} (env={name})")


def call_with_timeout(fn, timeout_s: float):
    """fn() on a daemon thread, its result or its exception; concurrent.futures.TimeoutError after
    `timeout_s`. A daemon thread (not a ThreadPoolExecutor's) so that a step that never returns does
    not keep the process from exiting once the run has stopped."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    pid = os.getpid()

    def work() -> None:
        CALLING.add(threading.get_ident())  # its os._exit is said as the main thread's (user_signals.py)
        try:
            result = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            if os.getpid() != pid:  # a process the step forked, out of the call: it ends here, as it
                left_by_a_fork(os._exit, e)  # asked (twenty-fourth hunt, case 40: CPython's fatal dump)
            future.set_exception(e)
        else:
            if os.getpid() != pid:
                left_by_a_fork(os._exit, None)
            future.set_result(result)
        finally:
            CALLING.discard(threading.get_ident())

    threading.Thread(target=work, daemon=True, name="align_lab-env-step").start()
    return future.result(timeout=timeout_s)


def run_step(env_name: str, episode, turn: str, turn_index: int, timeout_s: float) -> Step:
    """episode.step(turn) under a per-step timeout; a timeout, an exception, an answer that is not a
    Step (or whose observation is not a string, or whose reward is not a finite number) is an
    EnvError: `env=<name>: turn <k>: ...` on one line."""
    where = f"env={env_name}: turn {turn_index}"
    try:
        with (
            limits_kept(f"env={env_name}"),
            run_signals_kept(f"env={env_name}"),
            modes_kept(f"env={env_name}"),
            stuck_watched(where, "env.step_timeout_s", timeout_s),
            fds_kept(f"env={env_name}"),  # innermost: what the watch opens is the run's
        ):
            step = call_with_timeout(lambda: episode.step(turn), timeout_s)
    except concurrent.futures.TimeoutError:
        raise EnvError(f"{where}: step took longer than env.step_timeout_s={timeout_s}") from None
    except (RunFdsLost, RunLimitsLost) as e:
        raise EnvError(str(e)) from None
    except Exception as e:
        raise EnvError(f"{where}: step raised {one_line(e)} at {users_line(e)}") from None
    if not isinstance(step, Step):
        raise EnvError(f"{where}: step returned {type(step).__name__}; must return envs.base.Step")
    if not isinstance(step.observation, str):
        kind = type(step.observation).__name__
        raise EnvError(f"{where}: step's observation is a {kind}; must be a string")
    for name in ("done", "tool_call"):  # "no" would read as True: the episode ended in silence
        flag = getattr(step, name)
        if not isinstance(flag, bool) and type(flag).__name__ not in ("bool_", "bool"):  # numpy's too
            raise EnvError(f"{where}: step's {name} is {flag!r}; must be True or False")
    reward = step.reward
    if isinstance(reward, bool) or type(reward).__name__ == "bool_" or not isinstance(reward, numbers.Real):
        raise EnvError(f"{where}: step's reward is {reward!r}; must be a finite number")
    try:
        number = float(reward)
    except OverflowError:  # an int past a float's range
        number = math.inf
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:  # float32 rewards: past it, infinity
        raise EnvError(f"{where}: step's reward is {beyond(reward, number)}; must be a finite number")
    return step


def start_episode(env_name: str, env, prompt: str, timeout_s: float):
    """env.start(prompt) under the same timeout, its failures one line (`turn 0: start ...`)."""
    where = f"env={env_name}: turn 0"
    try:
        with (
            limits_kept(f"env={env_name}"),
            run_signals_kept(f"env={env_name}"),
            modes_kept(f"env={env_name}"),
            stuck_watched(where, "env.step_timeout_s", timeout_s),
            fds_kept(f"env={env_name}"),  # innermost: what the watch opens is the run's
        ):
            episode = call_with_timeout(lambda: env.start(prompt), timeout_s)
    except concurrent.futures.TimeoutError:
        raise EnvError(f"{where}: start took longer than env.step_timeout_s={timeout_s}") from None
    except (RunFdsLost, RunLimitsLost) as e:
        raise EnvError(str(e)) from None
    except Exception as e:
        raise EnvError(f"{where}: start raised {one_line(e)} at {users_line(e)}") from None
    if not callable(getattr(episode, "step", None)):  # read as "step raised AttributeError" at turn 1
        kind = f"a value of type {type(episode).__name__}" if episode is not None else "None"
        raise EnvError(f"{where}: start returned {kind}, not an episode with a step(turn) method")
    return episode


def close_episode(env_name: str, episode, turns: int, timeout_s: float) -> EnvError | None:
    """episode.close() where it has one, under the step's timeout (twenty-fourth hunt, case 28: one that
    hung held the run 3.6 min with no word); what it raised as an EnvError, returned so that the caller
    closes every other episode first (and keeps an error already in flight: the first to go wrong)."""
    close = getattr(episode, "close", None)
    if not callable(close):
        return None
    where = f"env={env_name}: turn {turns}"
    try:
        with (
            limits_kept(f"env={env_name}"),
            run_signals_kept(f"env={env_name}"),
            modes_kept(f"env={env_name}"),
            stuck_watched(where, "env.step_timeout_s", timeout_s),
            fds_kept(f"env={env_name}"),  # innermost: what the watch opens is the run's
        ):
            call_with_timeout(close, timeout_s)  # start's, step's and close's C hang: 30th hunt, 12-13
    except concurrent.futures.TimeoutError:
        return CloseTimedOut(f"{where}: close() took longer than env.step_timeout_s={timeout_s}")
    except (RunFdsLost, RunLimitsLost) as e:
        return EnvError(str(e))
    except Exception as e:
        return EnvError(f"{where}: close() raised {one_line(e)} at {users_line(e)}")
    return None


class CloseTimedOut(EnvError):
    """An episode's close() ran past env.step_timeout_s."""


def close_episodes(env_name: str, played: list[tuple], timeout_s: float) -> EnvError | None:
    """close_episode of each (episode, turns) of `played`, in order; the first error. Once one close has
    run past the timeout, the others are not called: the run stops on it, and a close that hangs in each
    of 64 episodes held the run 64 x the bound with no word (thirty-second hunt, case 23)."""
    first = None
    for k, (episode, turns) in enumerate(played):
        failed = close_episode(env_name, episode, turns, timeout_s)
        first = first or failed
        if isinstance(failed, CloseTimedOut) and k + 1 < len(played):
            left = len(played) - k - 1
            return EnvError(f"{first} ({left} other episode{'s' if left > 1 else ''} left unclosed)")
    return first


def episode_answer(env_name: str, episode, turns: int, timeout_s: float) -> str:
    """episode.answer(), under the step's timeout, which must be a string; else one line naming the last
    turn."""
    where = f"env={env_name}: turn {turns}"
    try:
        with (
            limits_kept(f"env={env_name}"),
            run_signals_kept(f"env={env_name}"),
            modes_kept(f"env={env_name}"),
            stuck_watched(where, "env.step_timeout_s", timeout_s),
            fds_kept(f"env={env_name}"),  # innermost: what the watch opens is the run's
        ):
            answer = call_with_timeout(episode.answer, timeout_s)
    except concurrent.futures.TimeoutError:
        raise EnvError(f"{where}: answer() took longer than env.step_timeout_s={timeout_s}") from None
    except (RunFdsLost, RunLimitsLost) as e:
        raise EnvError(str(e)) from None
    except Exception as e:
        raise EnvError(f"{where}: answer() raised {one_line(e)} at {users_line(e)}") from None
    if not isinstance(answer, str):
        kind = type(answer).__name__  # "a int" (fifth hunt of 2026-12-04)
        raise EnvError(
            f"env={env_name}: turn {turns}: answer() returned a value of type {kind}; must be a string"
        )
    return answer


REPLAYED = "answers the turns it answered last"  # how a resume's refusal says what it asked again


def probe_key(env_name: str) -> str:
    """The key an environment's last episodes are kept under in a checkpoint (user_probes.py)."""
    return f"env={env_name}"


def replayable(env_name: str, env) -> None:
    """A multi-turn `env`'s episodes kept in the checkpoint are asked again on resume (user_probes.py),
    played on a replica of it."""
    if getattr(env, "multi_turn", False):
        loaded(probe_key(env_name), functools.partial(replayed, env_name, replica(env)))


def replica(env):
    """A copy of `env` for a resume to replay episodes on, so that the run's own keeps its state (an
    episode counter); the environment itself where it cannot be copied (a connection, a lock)."""
    try:
        return copy.deepcopy(env)
    except Exception:  # noqa: BLE001 - the user's object: anything it cannot copy
        return env


def replayed(env_name: str, env, prompt: str, turns: list[str], finished: bool) -> list:
    """What `env` answers now to an episode's policy turns, played again from `start(prompt)`: each
    step's observation, reward and done, then the episode's answer() where it finished. A resume asks
    this of the episodes played last before the checkpoint (user_probes.py, rollout/turns.py): other
    answers mean something the environment reads changed (a file, a variable, a server)."""
    timeout = env.step_timeout_s
    episode = start_episode(env_name, env, prompt, timeout)
    answers: list = []
    try:
        for k, turn in enumerate(turns, 1):
            step = run_step(env_name, episode, turn, k, timeout)
            answers += [step.observation, float(step.reward), bool(step.done)]
    finally:
        failed = close_episode(env_name, episode, len(turns), timeout)
    if failed is not None:
        raise failed
    return answers + ([episode_answer(env_name, episode, len(turns), timeout)] if finished else [])


class LastTurn:
    """An episode's default answer: the last policy turn (a helper for environments to inherit)."""

    def __init__(self) -> None:
        self.turns: list[str] = []

    def answer(self) -> str:
        return self.turns[-1] if self.turns else ""
