"""What the user's scoring code gave on the rows it scored last, kept in each checkpoint and asked again on
resume (run/folder_checks.py): a change in anything it reads is then seen by what it changes, its scores,
however it reads it: a file read in C (pyarrow's parquet, sqlite), one whose path it builds from pieces or
reads from another file, a variable a library reads for it (OmegaConf's oc.env, os.path.expandvars), a
script it runs, a server (eleventh hunt: each of these, changed between a kill and the same command,
resumed in silence). A reward function is asked its last call again whole (a score may depend on the
batch: a rank, a normalisation); a verifier, its last PROBE_ROWS rows; a multi-turn environment, its last
PROBE_ROWS episodes replayed turn by turn (each step's observation, reward and done, and the answer). An
answer is a number, or a text compared exactly. Standard library only."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

PROBE_ROWS = 8  # a verifier's rows kept: it scores one response at a time
_LIVE: dict[str, Callable] = {}  # `reward.path=mod:fn` -> the callable this process loaded for it
_LAST: dict[str, dict] = {}  # the same key -> {"calls": [args of each call], "scores": [its scores]}
_AT: dict[str, str] = {}  # the same key -> the address a scorer that may move (reward.url) is asked at


def loaded(key: str, fn: Callable, at: str | None = None) -> None:
    """The user's callable `key` names (`reward.path=mod:fn`, `task.verifier=mod:fn`), as this process
    loaded it: the one a resume asks again; `at`: a server's address, which may change on resume."""
    _LIVE[key] = fn
    if at is not None:
        _AT[key] = at


def renamed(old: str, new: str) -> None:
    """The callable `old` named is asked under `new` (a reward=combined source: its own key)."""
    if old in _LIVE:
        _LIVE[new] = _LIVE.pop(old)
    if old in _AT:
        _AT[new] = _AT.pop(old)


def address(key: str) -> str | None:
    """Where the scorer `key` names is asked now (a server's address), or None."""
    return _AT.get(key)


def scored_batch(key: str, args: tuple, scores: list[float]) -> None:
    """A reward function's call `fn(*args)` gave `scores`: the last one is kept (lists of texts), with
    the address it was asked at, if any."""
    _LAST[key] = {"calls": [[list(a) for a in args]], "scores": [list(scores)]}
    if key in _AT:
        _LAST[key]["at"] = _AT[key]


def scored_row(key: str, args: tuple, score: float | list, said: str | None = None) -> None:
    """A verifier's call `fn(*args)` (one response) gave `score` (an environment's replay, a list of
    answers): the last PROBE_ROWS are kept. `said`: how a refusal says what it asked again ("answers the
    turns it answered last"; default, a scorer's "scores the responses it scored last")."""
    last = _LAST.setdefault(key, {"calls": [], "scores": []})
    last["calls"] = [*last["calls"], list(args)][-PROBE_ROWS:]
    last["scores"] = [*last["scores"], score][-PROBE_ROWS:]
    if said is not None:
        last["said"] = said


def forget_scored() -> None:
    """A run begins: the rows an earlier run of this process scored are none of its own (a sweep's)."""
    _LAST.clear()


def probes() -> dict[str, dict]:
    """What each checkpoint keeps: every key's last calls and scores (texts and numbers only)."""
    return {k: {**v, "calls": list(v["calls"]), "scores": list(v["scores"])} for k, v in _LAST.items()}


def asked_again(key: str, saved: dict) -> list | None:
    """The scores the callable `key` names gives now to the saved calls (a verifier's rows, a reward's
    batch), or None where this process has not loaded it (the run uses it no more)."""
    fn = _LIVE.get(key)
    if fn is None:
        return None
    return [_numbers(fn(*copy.deepcopy(args))) for args in saved["calls"]]  # the rows kept stay as saved


def _numbers(scores) -> list | float | str:
    if isinstance(scores, str):  # an environment's observation, an answer
        return scores
    try:
        return [_number(s) for s in scores]
    except TypeError:  # one row's score
        return float(scores)


def _number(score) -> float | str:
    return score if isinstance(score, str) else float(score)


def same(a: list, b: list) -> bool:
    """Scores equal as far as a run can tell them apart: within a relative 1e-4 (or 1e-6 near 0), as a
    scorer's own float rounding may move them with the process's thread count (a neural scorer's sums);
    NaN equal to NaN. An input that changed what a score means moves it further."""
    fa, fb = _flat(a), _flat(b)
    return len(fa) == len(fb) and all(_close(x, y) for x, y in zip(fa, fb, strict=True))


def _flat(scores: list) -> list[float | str]:
    return [_number(x) for s in scores for x in (s if isinstance(s, list) else [s])]


def _close(x: float | str, y: float | str) -> bool:
    if isinstance(x, str) or isinstance(y, str):
        return x == y
    return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-6)


def shown(scores: list) -> str:
    """The first few scores of a probe, for a line: `0.75, 0.5, 1.125 ...`."""
    flat = _flat(scores)
    return ", ".join(_shown(x) for x in flat[:4]) + (" ..." if len(flat) > 4 else "")


def _shown(x: float | str) -> str:
    return f"{x:.4g}" if not isinstance(x, str) else repr(x if len(x) <= 24 else x[:21] + "...")
