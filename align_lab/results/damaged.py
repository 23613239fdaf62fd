"""Notes for the runs' eval_samples.jsonl that compare could not read whole (docs/faults.md, "Damaged
inputs to compare"): missing where the study kept samples, or with torn or garbled lines skipped. Each
names the file and the figures it changed: its group's evaluation-noise share (noise.py), the claims'
power split (power.py), the Samples section (samples.py), which read the rest of the runs (or of the
file) without a word otherwise. aggregate.py adds these notes to the comparison's.
"""

from __future__ import annotations

import math
from pathlib import Path

from align_lab.file_kinds import special
from align_lab.results.claims import parse_claim
from align_lab.results.comparison import Comparison
from align_lab.results.runs import COMPLETED, Run, lookup
from align_lab.results.samples import shown_runs
from align_lab.tracking.samples import SAMPLES_FILE, read_samples


def samples_notes(c: Comparison, runs: list[Run]) -> list[str]:
    """One note per completed run whose eval_samples.jsonl a figure reads and that is missing (where the
    run kept samples, or another run of the comparison has them) or has lines skipped."""
    done = c.runs[c.runs["status"] == COMPLETED]
    read = {f: _read(Path(f) / SAMPLES_FILE) for f in done["folder"]}  # folder -> (records, skipped) | None
    keeps = {str(r.folder): lookup(r, "train.keep_eval_samples") for r in runs}
    others_have = any(found is not None for found in read.values())
    seed, shown = shown_runs(c)
    shown_left = [g for g, f in shown.items() if read.get(f) and read[f][0]]
    notes = []
    for _, row in done.iterrows():
        folder, group = row["folder"], row["group"]
        path = Path(folder) / SAMPLES_FILE
        found = read[folder]
        if found is not None and not found[1]:
            continue  # read whole
        if found is None and (keeps.get(folder) is False or not (others_have or keeps.get(folder) is True)):
            continue  # no samples kept: nothing was dropped from what the study wrote
        usable = found is not None and bool(found[0])
        uses = _noise_use(c, row, usable) + _power_use(c, group)
        if shown.get(group) == folder:
            none_left = f" (not shown: no run at seed {seed} has readable samples)" if not shown_left else ""
            uses += [
                f"the Samples section's {group} column{none_left}" if not usable else "the Samples section"
            ]
        if not uses:
            continue
        if found is None:  # or a named pipe, said "missing" (2026-12-04, n23)
            notes.append(f"{path}: {special(path) or 'missing'}; left out of {', '.join(uses)}.")
        elif not usable:
            notes.append(
                f"{path}: {found[1]} damaged lines skipped, none readable; left out of {', '.join(uses)}."
            )
        else:
            notes.append(
                f"{path}: {found[1]} damaged lines skipped (torn or not a JSON record); {', '.join(uses)} "
                f"read its other {len(found[0])} records."
            )
    return notes


def _read(path: Path) -> tuple[list[dict], int] | None:
    """(records, lines skipped) of an eval_samples.jsonl; None when there is none."""
    return read_samples(path) if path.is_file() else None


def _noise_use(c: Comparison, row, usable: bool) -> list[str]:
    """The group's evaluation-noise share, where the run enters it (a completed run with a value of an
    `eval/` metric): how many of its runs it now comes from."""
    value = row.get(c.metric)
    if not c.metric.startswith("eval/") or value is None or not math.isfinite(float(value)):
        return []
    group = row["group"]
    if usable:
        return [f"the evaluation-noise share of {group}"]
    done = c.runs[(c.runs["status"] == COMPLETED) & (c.runs["group"] == group) & c.runs[c.metric].notna()]
    n = next((g.n for g in c.noise if g.group == str(group)), 0)
    said = f"from {n} of its {len(done)} runs" if n >= 2 else "not shown: fewer than 2 runs with samples"
    return [f"the evaluation-noise share of {group} ({said})"]


def _power_use(c: Comparison, group: str) -> list[str]:
    """The power split (evaluation vs seeds) of each claim on an `eval/` metric that names the group."""
    if c.claims is None:
        return []
    claims = [parse_claim(str(text)) for text in c.claims["claim"]]
    named = [str(x) for x in claims if x.metric.startswith("eval/") and group in (x.a, x.b)]
    return [f"the power split of '{text}'" for text in named]
