"""python -m benchmarks list | run NAME [--smoke] [ARGS ...] | gate: the benchmark suite's one entry point.

`list` prints every benchmark with what it needs; `run` checks that this Python has what the benchmark
needs (one line saying how to get it, exit code 2, otherwise), then runs it with ARGS; `--smoke` adds
the benchmark's own arguments for a run of seconds (what tests/integration/test_benchmarks.py runs).
`gate` compares the current code with a recorded baseline commit and exits 1 on a regression
(benchmarks/gate.py).
Run it from the repository root."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from benchmarks import options, suite
from benchmarks.harness import missing
from benchmarks.result_file import json_problem


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every benchmark, what it needs and what it measures")
    run = sub.add_parser("run", help="run one benchmark")
    run.add_argument("name")
    run.add_argument("--smoke", action="store_true", help="its arguments for a run of seconds")
    sub.add_parser(
        "gate", help="step time and memory against the baseline commit (benchmarks/gate.py)", add_help=False
    )
    a, rest = parser.parse_known_args(argv)  # the rest: the benchmark's own arguments
    if a.command == "gate":
        from benchmarks import gate

        return gate.main(rest)
    if a.command == "list" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    benchmarks = suite()
    if a.command == "list":
        for b in benchmarks.values():
            needs = f"  [needs {', '.join(b.needs)}]" if b.needs else ""
            print(f"{b.name:22s} {b.what}{needs}")
        return 0
    if a.name not in benchmarks:
        print(f"benchmarks: no benchmark {a.name!r}; one of: {', '.join(benchmarks)}", file=sys.stderr)
        return 2
    b = benchmarks[a.name]
    if absent := missing(b.needs):
        print(f"benchmarks: {b.name} needs {'; '.join(absent)}", file=sys.stderr)
        return 2
    args = [*(b.smoke if a.smoke else ()), *(["--smoke"] if a.smoke else ()), *rest]
    if (json := given("--json", args)) is not None and (why := json_problem(json)):  # before its minutes
        print(f"benchmarks: {b.name}: --json={json}: {why}", file=sys.stderr)
        return 2
    options.PROG = f"python -m benchmarks run {b.name}"  # its usage and error lines name what was typed
    before = signal.signal(signal.SIGTERM, stopped)
    try:
        importlib.import_module(f"benchmarks.{b.name}").main(args)
    except (KeyboardInterrupt, Stopped) as e:  # its runs stopped, its temporary folders removed on the way
        how = "SIGTERM" if isinstance(e, Stopped) else "Ctrl-C (SIGINT)"
        print(f"benchmarks: {b.name}: stopped by {how}; no result written", file=sys.stderr)
        return 143 if isinstance(e, Stopped) else 130
    finally:  # the caller's own handler back (a test's process calls main() in it)
        signal.signal(signal.SIGTERM, before)
    return 0


class Stopped(BaseException):
    """A SIGTERM to a running benchmark (a scheduler's, a timeout's): raised where the benchmark waits, so
    that its runs are stopped (harness.stop) and its temporary folders removed as for Ctrl-C; before, the
    process ended at once, its run orphaned, no line said (seventh hunt of 2026-12-04, b16, b17)."""


def stopped(signum, frame) -> None:
    raise Stopped(signum)


def given(flag: str, args: list[str]) -> str | None:
    """The value of `flag` in `args` (`--flag v` or `--flag=v`, the last given); None: not given."""
    found = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith(f"{flag}="):
            found = arg.split("=", 1)[1]
    return found


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
