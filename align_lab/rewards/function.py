"""reward=function: a callable `f(prompts, responses) -> list[float]` (module:callable); reward=combined."""

from __future__ import annotations

import math
from collections.abc import Mapping, Set
from dataclasses import dataclass
from pathlib import Path

import torch

from align_lab.rewards import reward_models
from align_lab.rewards.cancelling import check_not_cancelling
from align_lab.user_code import why_not_found
from align_lab.user_fds import RunFdsLost, fds_kept
from align_lab.user_limits import RunLimitsLost, limits_kept
from align_lab.user_modes import modes_kept
from align_lab.user_probes import loaded, renamed, scored_batch
from align_lab.user_signals import run_signals_kept
from align_lab.user_timeouts import (
    BUILDING,
    CallTimedOut,
    ImportSaid,
    bounded,
    checked_bound,
    imported,
    keyed,
    users_line,
)
from align_lab.value_checks import FLOAT32_MAX, UserCodeError, beyond, callable_as, one_line, timed_out

WEIGHT_MAX = 1e18  # a weight past it makes a score of 1 overflow the advantages (train/online_steps.py)
# a weight under it makes a score of 1 underflow the advantages' squares (float32's smallest normal number
# is 1.18e-38): 2e-38 trained nothing, rc 0, naming no key (hunt of 2026-12-04, c28)
WEIGHT_MIN = 1e-18


def word_count(prompts: list[str], responses: list[str]) -> list[float]:
    """Words per response (with a negative weight in reward=combined: a length penalty)."""
    return [float(len(r.split())) for r in responses]


def load_callable(path: str, timeout_s: float | None = None):
    """`package.module:function` -> the function; a one-line error for each way it can be wrong (its import
    bounded by `timeout_s`, as its calls are: user_timeouts.py imported)."""
    module_name, sep, attr = (path or "").partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"path={path}: must be module:callable, e.g. align_lab.rewards.function:word_count")
    if module_name.endswith(".py") or "/" in module_name:  # a file's path (thirty-second hunt, case 62)
        file = Path(module_name)
        raise ValueError(
            f"path={path}: a module's name, not a file's path: {file.stem}:{attr}, run from {file.parent} "
            "or with it on PYTHONPATH"
        )
    try:
        with (  # its import
            limits_kept(keyed(f"path={path}")),
            run_signals_kept(keyed(f"path={path}")),
            modes_kept(keyed(f"path={path}")),
            fds_kept(keyed(f"path={path}")),
        ):
            module = imported(module_name, f"path={path}", "timeout_s", timeout_s)
    except ImportSaid:
        raise
    except RunLimitsLost as e:
        raise ValueError(f"path={path}: importing {module_name} {e.what}") from None
    except ImportError as e:
        raise ValueError(f"path={path}: cannot import {module_name} ({why_not_found(e)})") from None
    except Exception as e:  # the user's module raised, or does not parse, as it was imported
        raise ValueError(f"path={path}: importing {module_name} raised {type(e).__name__}: {e}") from None
    fn = attribute(module, attr)
    if not callable(fn):
        raise ValueError(f"path={path}: {module_name} has no callable {attr}")
    callable_as(fn, f"path={path}", "f(prompts, responses)", 2)
    return fn


def attribute(module, dotted: str):
    """`module.<dotted>` (`Judge.score`: a class's static method, as an entry point names one), or None
    (sixteenth hunt: a class's method was "no callable" though it was there)."""
    found = module
    for name in dotted.split("."):
        found = getattr(found, name, None)
    return found


@dataclass
class FunctionReward:
    """Scores with `f(prompts, responses)`; prompts are the task's (before any chat template). Pickled by
    its path: a spawned rank loads the function again (fifteenth hunt: a module-level lambda, which
    pickle cannot send by reference, was refused on two processes)."""

    path: str | None = None
    timeout_s: float | None = 600.0  # a call that takes longer stops the run in one line (None: unbounded)

    def __post_init__(self) -> None:
        checked_bound("timeout_s", self.timeout_s)
        self._fn = load_callable(self.path, self.timeout_s)
        self.probe_key = f"reward.path={self.path}"  # a combined source's is its own (Combined)
        loaded(self.probe_key, self._scores)  # a resume asks it again (user_probes.py)

    def __getstate__(self) -> dict:
        return {"path": self.path, "probe_key": self.probe_key, "timeout_s": self.timeout_s}

    def __setstate__(self, state: dict) -> None:
        self.path, self.unloadable, self.timeout_s = state["path"], None, state.get("timeout_s")
        BUILDING.append(state["probe_key"].partition("=")[0].rsplit(".", 1)[0])  # a spawned rank's lines
        try:  # name its key as rank 0's do (`reward.path=`, not `path=`: thirty-eighth hunt, case 40)
            self.__post_init__()
        except ValueError as e:  # gone since rank 0 loaded it: said at its first call, in the group (a
            # rank that fails as it starts leaves rank 0 waiting for it to join: sixteenth hunt)
            self._fn, self.probe_key, self.unloadable = None, state["probe_key"], str(e)
            return
        finally:
            BUILDING.pop()
        if state["probe_key"] != self.probe_key:  # a combined source's own key
            renamed(self.probe_key, state["probe_key"])
            self.probe_key = state["probe_key"]

    def _scores(self, prompts: list[str], responses: list[str]) -> list[float]:
        if self._fn is None:
            raise RewardError(f"reward.{self.unloadable}: this process could not load it again")
        where = f"reward.path={self.path}"
        try:  # lists of its own: one it empties or appends to is not the rows kept (thirteenth hunt)
            with (
                limits_kept(where),
                run_signals_kept(where),
                modes_kept(where),
                bounded(where, self.timeout_key(), self.timeout_s),
                fds_kept(where),  # innermost: what the bound's watch opens is the run's
            ):
                scores = self._fn(list(prompts), list(responses))
        except CallTimedOut as e:
            raise timed_out(e) from None
        except (RunFdsLost, RunLimitsLost) as e:
            raise RewardError(str(e)) from None
        except Exception as e:  # a user's function: one line naming it (Interrupted is no Exception)
            raise RewardError(f"{where}: raised {one_line(e)} at {users_line(e)}") from None
        return checked_scores(scores, len(prompts), f"reward.path={self.path}").tolist()

    def timeout_key(self) -> str:
        """The key that bounds a call: `reward.timeout_s`, or a combined source's own (twenty-seventh hunt,
        case 24: "raise reward.timeout_s", a key reward=combined does not have)."""
        return self.probe_key.partition("=")[0].rsplit(".", 1)[0] + ".timeout_s"

    def scorer(self, stages):
        raw = stages.raw_prompt

        def score(prompts, responses, finished):
            texts, responses = [raw(p) for p in prompts], list(responses)
            scores = self._scores(texts, responses)
            if self.probe_key.startswith("reward.path="):  # a combined source's: its weighted sum's bound
                scaled_within(scores, self.probe_key)
            scored_batch(self.probe_key, (texts, responses), scores)  # kept in each checkpoint
            return torch.tensor(scores, dtype=torch.float32)  # (B,)

        return score


def scaled_within(scores: list[float], where: str) -> None:
    """RewardError naming `where` for a score past WEIGHT_MAX in magnitude, where a group's advantages
    overflow float32 (thirty-seventh hunt, case 17: said as `reward: the step's scores reach 1e+31 ...`, a
    key the user never typed and no resume command, where a score past float32 had both)."""
    for i, value in enumerate(scores):
        if abs(value) > WEIGHT_MAX:
            raise RewardError(
                f"{where}: score {i} is {value:.3g}, past {WEIGHT_MAX:g}, where a group's advantages "
                "overflow float32 (their squares pass its range): scale it down"
            )


class RewardError(UserCodeError):
    """A reward's scores are not one finite number per response (a function's, reward.path; a remote
    scorer's, reward.url), or it failed: one line naming the key."""


def checked_scores(scores, n: int, where: str) -> torch.Tensor:
    """`scores` as a (n,) float tensor, or RewardError naming `where` (`reward.path=mod:fn`): a count other
    than n, a mapping or set (its keys or its own order read as scores), text, NaN or infinity."""
    if isinstance(scores, Mapping | Set | str | bytes):
        what = type(scores).__name__
        raise RewardError(f"{where}: returned a {what}, not a list of {n} scores in the responses' order")
    try:
        count = len(scores)
    except TypeError:
        what = type(scores).__name__
        raise RewardError(f"{where}: returned {what}, not a list of {n} scores") from None
    if count != n:
        raise RewardError(f"{where}: returned {count} scores for {n} responses")
    values = []
    for i, s in enumerate(scores):
        if isinstance(s, str | bytes) or getattr(getattr(s, "dtype", None), "kind", None) in ("U", "S", "O"):
            raise RewardError(f"{where}: score {i} is {s!r}, not a number")  # text ("1": 44th hunt, 12)
        try:  # a tensor that requires grad: its value, without torch's warning at this line (31st hunt, 6)
            values.append(float(s.detach() if isinstance(s, torch.Tensor) else s))
        except (TypeError, ValueError):
            raise RewardError(f"{where}: score {i} is {s!r}, not a number") from None
        except OverflowError:  # an int past a float's range
            values.append(math.inf)
        if not math.isfinite(values[-1]) or abs(values[-1]) > FLOAT32_MAX:
            raise RewardError(f"{where}: score {i} is {beyond(s, values[-1])}: must be finite")
    return torch.tensor(values, dtype=torch.float32)  # (n,)


class Combined:
    """r = sum_i weight_i * r_i over named reward sources (each a built reward: learned_rm, hf_rm, ...)."""

    def __init__(self, components: dict) -> None:
        if not components:
            raise ValueError("components={}: must name at least one {weight, source}")
        for name, c in components.items():
            if set(c) != {"weight", "source"}:
                raise ValueError(f"components.{name}: must have exactly the keys weight and source")
            weight = c["weight"]
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                text = isinstance(weight, str)
                quoted = f" (it is the string {weight!r}: quoted on the command line?)" if text else ""
                raise ValueError(f"components.{name}.weight={weight}: must be a number{quoted}")
            if not math.isfinite(weight):  # inf trained on -inf/NaN rewards; NaN read as a divergence
                raise ValueError(f"components.{name}.weight={weight}: must be a finite number")
            if abs(weight) > WEIGHT_MAX or (weight != 0 and abs(weight) < WEIGHT_MIN):  # float32 rewards
                raise ValueError(  # 1e38 was admitted, then stopped at step 1 naming no key (31st hunt, 63)
                    f"components.{name}.weight={weight}: out of range (training scores in float32, whose "
                    f"squares a group's advantages take: |w| in [{WEIGHT_MIN:.3g}, {WEIGHT_MAX:.3g}], or 0)"
                )
            if not hasattr(c["source"], "scorer"):
                raise ValueError(f"components.{name}.source: must be a reward with a _target_")
        check_not_cancelling(components)
        for name, c in components.items():  # a resume's probe names the source by its own key
            if hasattr(c["source"], "probe_key"):
                kind, said, value = c["source"].probe_key.partition("=")  # reward.url: the key alone
                key = f"reward.components.{name}.source.{kind.rsplit('.', 1)[-1]}{said}{value}"
                renamed(c["source"].probe_key, key)
                c["source"].probe_key = key
        if all(c["weight"] == 0 for c in components.values()):
            weights = ", ".join(f"{name}={c['weight']}" for name, c in components.items())
            raise ValueError(
                f"components: every weight is 0 ({weights}), so every response scores 0 and nothing "
                "trains; give a source a weight other than 0"
            )
        self.components = components
        self.holds_model = any(getattr(c["source"], "holds_model", False) for c in components.values())

    def reward_models(self) -> tuple:
        """The learned reward models of its sources (rewards.reward_models), in order."""
        return tuple(rm for c in self.components.values() for rm in reward_models(c["source"]))

    def scorer(self, stages):
        return WeightedSum(
            tuple(self.components),
            tuple(float(c["weight"]) for c in self.components.values()),
            [c["source"].scorer(stages) for c in self.components.values()],
        )


class WeightedPastRange(RewardError):
    """reward=combined's weighted score past what training holds: its fix is a weight, a config key that a
    resume keeps (run/summary.py check_resume_config), so the line asks for a new run."""

    fixed_in_config = True


class WeightedSum:
    """reward=combined's scorer: called, the weighted sum (B,); by_source, each source's own unweighted
    score (B, K), which the online loop logs as reward/<name> and GDPO normalises one by one."""

    def __init__(self, names: tuple[str, ...], weights: tuple[float, ...], scorers: list) -> None:
        self.names, self.weights, self.scorers = names, weights, scorers

    def by_source(self, prompts, responses, finished) -> torch.Tensor:
        pairs = zip(self.names, self.scorers, strict=True)
        scores = [self.source(n, s, prompts, responses, finished) for n, s in pairs]
        return torch.stack(scores, dim=-1)  # (B, K)

    @staticmethod
    def source(name: str, scorer, prompts, responses, finished) -> torch.Tensor:
        """One source's scores; a source's one-line error names the key the user typed for it
        (`reward.components.<name>.source.path=...`, not `reward.path=...`: issue 73 hunt)."""
        try:
            return scorer(prompts, responses, finished)
        except UserCodeError as e:
            said = str(e)
            if not said.startswith("reward."):
                raise
            raise type(e)(f"reward.components.{name}.source.{said.removeprefix('reward.')}") from None

    def total(self, by_source: torch.Tensor) -> torch.Tensor:
        """sum_k w_k r_k (B,), summed in the sources' order (the numbers of the sum before by_source); a
        sum past WEIGHT_MAX from finite scores, where a group's advantages overflow float32, is one line
        naming the terms (weights of 3e38: sixth hunt; a weight of 1e18 admitted, then a line naming no
        key: thirty-second hunt, case 66)."""
        total = sum(w * by_source[:, k] for k, w in enumerate(self.weights))  # (B,)
        past = ~(total.abs() <= WEIGHT_MAX) & torch.isfinite(by_source).all(dim=-1)  # NaN/inf: past too
        if bool(past.any()):
            i = int(past.nonzero()[0])
            terms = " + ".join(
                f"{name}.weight={w:g} x {by_source[i, k].item():.3g}"
                for k, (name, w) in enumerate(zip(self.names, self.weights, strict=True))
            )
            raise WeightedPastRange(
                f"reward.components: response {i}'s weighted score {terms} is {total[i].item():.3g}, past "
                f"{WEIGHT_MAX:g}, where a group's advantages overflow float32 (their squares pass its "
                "range); scale the weights down"
            )
        return total

    def __call__(self, prompts, responses, finished) -> torch.Tensor:
        return self.total(self.by_source(prompts, responses, finished))  # (B,)
