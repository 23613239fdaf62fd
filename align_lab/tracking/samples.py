"""eval_samples.jsonl: one JSON object per evaluated policy sample, each evaluation appended.

Written by JsonlTracker (the run folder's own record), read tolerantly by compare: a torn or damaged
line is skipped and counted, never fatal. The schema: docs/how_it_works.md, "The run folder".
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from align_lab.value_checks import naming

SAMPLES_FILE = "eval_samples.jsonl"
# capped at train.eval_text_chars; transcript: a multi-turn episode's whole conversation after the prompt
TEXT_FIELDS = ("prompt", "response", "sft_response", "transcript")


def capped(record: dict, chars: int) -> dict:
    """The record with each text field cut to its first `chars` characters, saying `"truncated": true`
    where one was cut."""
    long = any(len(record.get(k) or "") > chars for k in TEXT_FIELDS)
    r = {k: (v[:chars] if k in TEXT_FIELDS and isinstance(v, str) else v) for k, v in record.items()}
    return r | {"truncated": True} if long else r


class Capped(Sequence):
    """An evaluation's records, each capped (`capped`) as it is read: a tracker walks them without a
    copy of every row held at once (36,000 rows: a capped copy of each, then every line and their join
    was ~1.7 KB a row over the rows themselves at the evaluation's peak; benchmarks/eval_memory.py)."""

    def __init__(self, records: Sequence[dict], chars: int) -> None:
        self.records, self.chars = records, chars

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [capped(r, self.chars) for r in self.records[i]]
        return capped(self.records[i], self.chars)


def cap_texts(records: Sequence[dict], chars: int) -> Capped:
    """The records with each text field cut to its first `chars` characters (a record with a cut text
    says `"truncated": true`), capped as each is read."""
    return Capped(records, chars)


def _plain(value):
    """JSON's value for a record field: NaN and infinities (a diverged reward) as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def record_lines(records: Iterable[dict], step: int) -> Iterator[str]:
    """The lines of one evaluation (each with its newline): `{"step": step, **record}`, one at a time."""
    for r in records:
        yield json.dumps({"step": step} | {k: _plain(v) for k, v in r.items()}) + "\n"


def read_samples(path: str | os.PathLike[str]) -> tuple[list[dict], int]:
    """(records, lines skipped) of an eval_samples.jsonl: a line that is not a JSON object with an
    integer `step` (torn by a kill, damaged) is skipped and counted. A missing file: ([], 0)."""
    path = Path(path)
    if not path.is_file():
        return [], 0
    records, skipped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
        else:
            skipped += 1
    return records, skipped


def cut_from(path: Path, start_step: int) -> None:
    """Keeps only the whole records of steps < start_step (a resumed run evaluates the later steps
    again); written to a temporary file and renamed, so a kill leaves the old file or the new one."""
    if not path.exists():
        return
    kept = [r for r in read_samples(path)[0] if r["step"] < start_step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    os.replace(tmp, path)


class SamplesFile:
    """Appends each evaluation's records to run_dir/eval_samples.jsonl, a line at a time, flushed once
    an evaluation (a kill between leaves a torn last line, which read_samples skips). `cut()` (the
    tracker's first log) drops the records of steps >= start_step."""

    def __init__(self, run_dir: str | os.PathLike[str], start_step: int = 0) -> None:
        self.path = Path(run_dir) / SAMPLES_FILE
        self.start_step = start_step

    def cut(self) -> None:
        cut_from(self.path, self.start_step)

    def append(self, records: list[dict], step: int) -> None:
        with naming(self.path), open(self.path, "a", encoding="utf-8") as f:
            f.writelines(record_lines(records, step))
