"""What both align_lab launchers say about a sweep's jobs: each failure as one line on stdout when it
happens (beside the completed ones), and at the end, on stderr, "K of N runs failed" with each one's
overrides and last error line, exit code 1, no traceback (each failed run's traceback is in its
summary.json). Finished runs stay as they are."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from align_lab.folder import read_summary

FIXED = " resume_changed_inputs=true"  # a run's resume once its user code is fixed (run/summary.py)


def varying(runs: list[dict]) -> dict[int, str]:
    """Each run's overrides that differ between the runs of the sweep (all of them for a single run)."""
    lists = [list(r["overrides"]) for r in runs]
    common = set.intersection(*(set(o) for o in lists)) if len(lists) > 1 else set()
    return {r["num"]: " ".join(o for o in r["overrides"] if o not in common) for r in runs}


def last_line(error: BaseException | str) -> str:
    """The last line that says something: `Type: message` of an exception, or of a traceback's text."""
    if isinstance(error, BaseException):
        from align_lab.value_checks import ConfigError

        text = str(error) if isinstance(error, ConfigError) else f"{type(error).__name__}: {error}"
        if type(error).__name__ == "RunStopped":
            text = str(error).removeprefix("error: ")
    else:
        text = error
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else "failed"


def has_traceback(run_dir: str) -> bool:
    try:
        return "traceback" in read_summary(Path(run_dir) / "summary.json")
    except (OSError, ValueError):
        return False


class Outcomes:
    """Collects a sweep's outcomes; `failed` prints the one line at once."""

    def __init__(self, runs: list[dict], sweep_dir: Path) -> None:
        self.labels = varying(runs)
        self.total = len(runs)
        self.sweep_dir = sweep_dir
        self.failures: list[tuple[int, str, str]] = []  # (num, label, last error line)

    def failed(self, run: dict, error: BaseException | str) -> None:
        line = last_line(error)
        label = self.labels.get(run["num"], " ".join(run["overrides"]))
        self.failures.append((run["num"], label, line))
        where = ""
        if has_traceback(run["run_dir"]):
            where = f" (traceback: {Path(run['run_dir']) / 'summary.json'})"
        print(f"align_lab: run #{run['num']} ({label}): failed: {line}{where}", flush=True)

    def finish(self) -> None:
        """Nothing when every run completed; else the list of failures and exit code 1."""
        if not self.failures:
            return
        lines = [f"align_lab: {len(self.failures)} of {self.total} runs failed:"]
        lines += [f"  #{num} {label}: {line}" for num, label, line in sorted(self.failures)]
        from align_lab.rerun import sweep_resume_command

        again = sweep_resume_command(self.sweep_dir)  # from any folder, the venv active or not
        if any(FIXED in line for *_, line in self.failures):  # a resume after the code's fix is refused
            again, when = f"{again}{FIXED}", ", once your code is fixed"  # without it (44th hunt's oddity)
        else:
            when = ""
        lines.append(f"  completed runs are kept; to rerun only the others{when}: {again}")
        print("\n".join(lines), file=sys.stderr, flush=True)
        raise SystemExit(1)


@contextmanager
def interruptible(sweep_dir: Path, what: str) -> Iterator[None]:
    """SIGTERM or SIGINT while the launcher itself works (admitting, between runs, at a study's look):
    one line saying `what` (the sweep, the sequential study) was interrupted and the exact command that
    resumes it, and exit code 128 + the signal's number, so that no further run starts. A run's own
    interruption (said in its line, with its checkpoint) ends the sweep as its exit code."""
    from align_lab.rerun import sweep_resume_command
    from align_lab.train.preemption import Interrupted, Interruption

    try:
        with Interruption():
            yield
    except Interrupted as e:
        resume = sweep_resume_command(sweep_dir)
        print(f"align_lab: {what} interrupted by {e.signal_name}; resume with: {resume}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
