"""A run folder's figures as compare reads them, tolerant of damage: summary.json's metrics that are no
numbers, and metrics.jsonl's records with its torn or damaged lines left out; each damage a line of the
run's problems (compare never drops or changes a figure in silence)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from align_lab.file_kinds import special
from align_lab.tracking.jsonl import METRICS_FILE

# the figures compare reads from summary.json; other keys with a slash hold text by design
# (`rollout/decode_matmul: "exact"`)
METRIC_PREFIXES = ("eval/", "train/", "counters/", "time/")


FLOAT32_MAX = 3.4028234663852886e38  # a run's figures are float32's: past this, none of its own


def drawable(value: float) -> bool:
    """A NaN (no value) or a finite figure a run can have written: 1e308 broke compare's plots (the
    fifth hunt: a 23-frame traceback from matplotlib's ticks)."""
    return math.isnan(value) or abs(value) <= FLOAT32_MAX


def unusable_metrics(summary: dict) -> list[str]:
    """A metric of summary.json that is text or infinite (a hand-edited or foreign file: align_lab writes
    numbers, NaN for none) is removed from `summary`, with a line naming it: read as 0.5, or as a value
    that pairs with no seed, a figure would change in silence (issue 73 fourth hunt)."""
    lines = []
    for key, value in list(summary.items()):
        text = isinstance(value, str)
        if key.startswith(METRIC_PREFIXES) and (text or isinstance(value, float) and not drawable(value)):
            del summary[key]
            kind = "text, not a number" if text else "not a finite number within float32's range"
            shown = json.dumps(value)[:40]
            lines.append(f"summary.json: {key} is {shown} ({kind}): its last logged value read instead")
    return lines


def read_metrics_into(run) -> None:
    """The metrics.jsonl records of `run` (a results.runs.Run), each damage a line of run.problems
    (compare never drops a figure in silence)."""
    metrics_path = run.folder / METRICS_FILE
    if metrics_path.is_file():
        try:
            run.metrics, damaged, torn = read_metrics_tolerantly(metrics_path)
            if damaged:
                lines = ", ".join(str(n) for n in damaged)
                run.problems.append(
                    f"{METRICS_FILE} line{'s' * (len(damaged) > 1)} {lines}: damaged (not JSON), left "
                    f"out; the run's other {len(run.metrics)} records kept"
                )
            if torn:  # a kill mid-write
                run.problems.append(f"{METRICS_FILE}: its last line is half-written (left out)")
            run.problems += beyond_float32(run.metrics)
        except OSError as e:
            run.problems.append(f"{METRICS_FILE} unreadable: {e}")
    elif metrics_path.exists():  # a folder (issue 73): its curves were left out without a word
        kind = special(metrics_path) or "a folder"  # a named pipe said "a folder" (2026-12-04, n23)
        run.problems.append(f"{METRICS_FILE}: not a file ({kind}), left out: the run has no curves")
    elif run.status == "completed":  # deleted (seventeenth hunt: read as a run that used no compute)
        run.problems.append(f"{METRICS_FILE}: missing, though the run completed: it has no curves or budget")
    if run.status == "completed" and metrics_path.is_file() and not metrics_path.read_bytes().strip():
        # a completed run logs a row per step: an emptied file would read as a run that used no compute
        run.problems.append(f"{METRICS_FILE}: empty, though the run completed: it has no curves or budget")


def beyond_float32(records: list[dict]) -> list[str]:
    """Finite values past float32's range removed from metrics.jsonl `records` (a run logs none: a
    hand-edited or foreign file), with a line naming the first; [] where there are none."""
    found = []
    for record in records:
        for key, value in list(record.items()):
            if isinstance(value, float) and math.isfinite(value) and not drawable(value):
                found.append((record.get("step"), key, value))
                del record[key]
    if not found:
        return []
    step, key, value = found[0]
    return [
        f"{METRICS_FILE}: {len(found)} value{'s' * (len(found) > 1)} past float32's range left out (a run "
        f"writes none), the first {key} {value:g} at step {step}"
    ]


def read_metrics_tolerantly(path: Path) -> tuple[list[dict], list[int], bool]:
    """(records, numbers of the damaged lines, whether the last line is torn) of a metrics.jsonl: a line
    that is not a JSON object is left out and counted, the rest kept (tracking.jsonl.read_metrics, which
    a resumed run uses, refuses such a file instead)."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = text.split("\n")  # every line ends in "\n": the piece after the last one is "" or torn
    records, damaged = [], []
    for number, line in enumerate(lines[:-1], start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif line.strip():
            damaged.append(number)
    return records, damaged, bool(lines[-1])
