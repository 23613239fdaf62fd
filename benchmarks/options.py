"""The options of every benchmark (python -m benchmarks run NAME ...): the parser they start from and the
types of their own options, each checked before the benchmark's minutes start: a count below its least,
a number that is not finite and positive, a name that matches no setting, an abbreviated option (taken as
the whole one by argparse, so the check of `--json` before the run read past it) are one line each."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

PROG: str | None = None  # the command that runs the benchmark (`python -m benchmarks run NAME`), set there


def at_least(lowest: int) -> Callable[[str], int]:
    """An option's type: an integer >= `lowest` (a count of rounds, steps, rows), else argparse's one line
    (`argument --claims: 0: must be an integer >= 1`) before the benchmark starts."""

    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: must be an integer >= {lowest}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"{value}: must be an integer >= {lowest}")
        return value

    return integer


def positive(text: str) -> float:
    """An option's type: a finite number > 0 (seconds, an effect size), else argparse's one line."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number > 0") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text}: must be a finite number > 0")
    return value


def names(text: str, allowed: Sequence[str], flag: str, parts: bool = False) -> list[str]:
    """The comma-separated names of `text`, each one of `allowed` (`parts`: a part of one); else
    SystemExit with one line naming `flag`, what matched nothing and what is allowed."""
    given = [x for x in text.split(",") if x]
    unknown = [x for x in given if not any((x in a) if parts else x == a for a in allowed)]
    if unknown or not given:
        what = f"{', '.join(unknown)} matches nothing" if unknown else "names nothing"
        raise SystemExit(f"benchmarks: {flag}={text}: {what}; allowed: {', '.join(allowed)}")
    return given


def arguments(doc: str | None, rounds: int = 1, tiny: bool = False) -> argparse.ArgumentParser:
    """The parser every benchmark starts from: its description is the docstring's first line; `tiny`:
    with --tiny (its runs on the toy world at the tests' sizes, TINY: the smoke test's). An option is
    taken whole, never abbreviated (`--js` is no `--json`: the check of --json before the run reads the
    whole name)."""
    description = (doc or "").strip().splitlines()[0]
    parser = argparse.ArgumentParser(prog=PROG, description=description, allow_abbrev=False)
    if tiny:
        parser.add_argument("--tiny", action="store_true", help="the toy world at the tests' sizes (smoke)")
    parser.add_argument("--rounds", type=at_least(1), default=rounds, help="rounds; each runs every arm once")
    parser.add_argument("--json", default=None, help="the result's file (default: outputs/benchmarks/)")
    parser.add_argument("--smoke", action="store_true", help="a run of seconds: the smoke test's")
    return parser
