"""eval_samples.jsonl: one JSON object per evaluated policy sample, each evaluation appended.

Written by JsonlTracker (the run folder's own record), read tolerantly by compare: a torn or damaged
line is skipped and counted, never fatal. The schema: docs/how_it_works.md, "The run folder".
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from align_lab.value_checks import naming

SAMPLES_FILE = "eval_samples.jsonl"
# capped at train.eval_text_chars; transcript: a multi-turn episode's whole conversation after the prompt
TEXT_FIELDS = ("prompt", "response", "sft_response", "transcript")


def cap_texts(records: list[dict], chars: int) -> list[dict]:
    """The records with each text field cut to its first `chars` characters; a record with a cut text
    says `"truncated": true`."""
    out = []
    for r in records:
        long = any(len(r.get(k) or "") > chars for k in TEXT_FIELDS)
        r = {k: (v[:chars] if k in TEXT_FIELDS and isinstance(v, str) else v) for k, v in r.items()}
        out.append(r | {"truncated": True} if long else r)
    return out


def _plain(value):
    """JSON's value for a record field: NaN and infinities (a diverged reward) as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def format_records(records: list[dict], step: int) -> str:
    """The lines of one evaluation (each with its newline): `{"step": step, **record}`."""
    return "".join(json.dumps({"step": step} | {k: _plain(v) for k, v in r.items()}) + "\n" for r in records)


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
    """Appends each evaluation's records to run_dir/eval_samples.jsonl, one write and flush an
    evaluation. `cut()` (the tracker's first log) drops the records of steps >= start_step."""

    def __init__(self, run_dir: str | os.PathLike[str], start_step: int = 0) -> None:
        self.path = Path(run_dir) / SAMPLES_FILE
        self.start_step = start_step

    def cut(self) -> None:
        cut_from(self.path, self.start_step)

    def append(self, records: list[dict], step: int) -> None:
        with naming(self.path), open(self.path, "a", encoding="utf-8") as f:
            f.write(format_records(records, step))
