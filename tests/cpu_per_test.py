"""A pytest plugin: each test's CPU seconds (the worker's own, its waited children's, and the forked-command
server's, tests/conftest.py ForkedCli), appended to $CPU_PER_TEST_OUT (JSON lines; default
cpu_per_test.jsonl in the working folder), and the files that took most, at the end of the run:

    bash scripts/test.sh --fast -p tests.cpu_per_test

(docs/testing.md, "The tier's CPU"). Wall time on a shared machine says little; CPU says where it goes."""

from __future__ import annotations

import collections
import json
import os
import resource
import time

import pytest

OUT = os.environ.get("CPU_PER_TEST_OUT", "cpu_per_test.jsonl")


def _server_cpu() -> float:
    """The forked-command server's CPU and its waited children's (its commands), from /proc."""
    from tests import conftest

    if not conftest._forked:
        return 0.0
    try:
        with open(f"/proc/{conftest._forked[0].server.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + _server_cpu()


def pytest_configure(config):
    if not hasattr(config, "workerinput") and os.path.exists(OUT):  # this run's rows alone
        os.remove(OUT)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before, start = _cpu(), time.perf_counter()
    yield
    row = {"id": item.nodeid, "cpu": _cpu() - before, "wall": time.perf_counter() - start}
    with open(OUT, "a") as f:
        f.write(json.dumps(row) + "\n")


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput") or not os.path.exists(OUT):  # an xdist worker: its controller says it
        return
    rows = [json.loads(line) for line in open(OUT)]
    by_file, count = collections.Counter(), collections.Counter()
    for row in rows:
        by_file[row["id"].split("::")[0]] += row["cpu"]
        count[row["id"].split("::")[0]] += 1
    terminalreporter.write_line(f"CPU in tests: {sum(by_file.values()):.1f} s over {len(rows)} tests ({OUT})")
    for path, cpu in by_file.most_common(15):
        terminalreporter.write_line(f"{cpu:8.1f} s {count[path]:5d} tests  {path}")
