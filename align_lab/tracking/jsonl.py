"""metrics.jsonl: one flat JSON object per logged step, the run folder's own record; and beside it
eval_samples.jsonl, each evaluation's samples (tracking/samples.py)."""

from __future__ import annotations

import json
import logging
import operator
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from align_lab.tracking.samples import SamplesFile
from align_lab.user_fds import identity
from align_lab.value_checks import naming

METRICS_FILE = "metrics.jsonl"
_ABANDONED: list = []  # files whose descriptor code of the user's closed: its number may be another's now
log = logging.getLogger("align_lab")


def to_number(value: object) -> int | float:
    """A plain int or float from a python number, numpy scalar or 0-d tensor (via `.item()`)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item):
        # numpy scalars and 0-d tensors; a tensor with more elements raises here.
        return to_number(item())
    raise TypeError(f"not a scalar number: {value!r} ({type(value).__name__})")


def to_numbers(metrics: Mapping[str, object]) -> dict[str, int | float]:
    """`to_number` on every value; the error names the offending key."""
    out: dict[str, int | float] = {}
    for key, value in metrics.items():
        try:
            out[key] = to_number(value)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"metric {key!r}: {e}") from e
    return out


def format_line(metrics: Mapping[str, object], step: int) -> str:
    """One metrics.jsonl line (no newline): `{"step": step, **metrics}`, keys sorted."""
    if "step" in metrics:
        raise ValueError("'step' is reserved in metrics.jsonl; pass it as the step argument")
    return json.dumps({"step": operator.index(step), **to_numbers(metrics)}, sort_keys=True)


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl, in file order.

    A last line without its newline (torn by a kill mid-write) is dropped; a line that
    is not JSON is corruption and raises ValueError.
    """
    # Every line is written with its "\n", so the piece after the last "\n" is "" or torn.
    complete = Path(path).read_text(encoding="utf-8").split("\n")[:-1]
    records = []
    for number, line in enumerate(complete, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: not a JSON line: {line[:80]!r}") from e
    return records


class JsonlTracker:
    """Appends `{"step": step, **metrics}` to run_dir/metrics.jsonl, flushed per line.

    At the first log() any existing file is cut to the lines with step < start_step (and
    any torn last line dropped): the steps from start_step on are about to be logged
    again by the resumed run. start_step=0 therefore starts the file afresh. A run
    refused before its first step (a resume on other stages) leaves the file as it was.
    """

    def __init__(self, run_dir: str | os.PathLike[str], start_step: int = 0) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start_step = start_step
        self._file = None  # opened (and the file cut) by the first log(); closed in close()
        self._opened_on = None  # what its descriptor was opened on (user_fds.identity)
        self._samples = SamplesFile(run_dir, start_step)

    def _open(self):
        self._samples.cut()
        if self.path.exists():
            kept = [r for r in read_metrics(self.path) if r["step"] < self.start_step]
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept), encoding="utf-8")
            os.replace(tmp, self.path)
        opened = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._opened_on = identity(opened.fileno())
        return opened

    def log(self, metrics: Mapping[str, object], step: int) -> None:
        if self._file is None:
            self._file = self._open()
        elif identity(self._file.fileno()) != self._opened_on:
            self._reopen()
        self._same_size()
        with naming(self.path):
            self._file.write(format_line(metrics, step) + "\n")
            self._file.flush()  # a killed run keeps every line it logged
            self._size = os.fstat(self._file.fileno()).st_size

    def _same_size(self) -> None:
        """A file written or cut by code not the run's since its last line (a reward appending lines, which
        compare then plotted: forty-third hunt, case 13): said once."""
        size = os.fstat(self._file.fileno()).st_size
        if getattr(self, "_size", size) != size and not getattr(self, "_said", False):
            self._said = True
            log.warning(
                f"warning: {self.path}: changed by code not the run's since its last line ({self._size} -> "
                f"{size} bytes); the run's lines go on after it, compare reads what is there"
            )

    def _reopen(self) -> None:
        """The file opened again to append, where code of the user's closed (or replaced) its descriptor: a
        thread of a reward's calling os.closerange after its call failed the run's next write in a 63-line
        traceback (thirty-ninth hunt, cases 39-40). The old file object is kept, never closed: its number
        may be another file's now."""
        _ABANDONED.append(self._file)
        with naming(self.path):
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._opened_on = identity(self._file.fileno())
        log.warning(
            f"warning: {self.path}: its descriptor was closed by code not the run's (your code's thread?); "
            "opened again to append"
        )

    def samples(self, records: list[dict], step: int) -> None:
        """Appends an evaluation's records to eval_samples.jsonl (tracking/samples.py)."""
        if self._file is None:
            self._file = self._open()
        self._samples.append(records, step)

    def summary(self, values: Mapping[str, Any]) -> None:
        """No-op: summary.json is written by the run itself."""

    def close(self) -> None:
        if self._file is not None and identity(self._file.fileno()) != self._opened_on:
            _ABANDONED.append(self._file)  # not ours to close now
        elif self._file is not None:
            with naming(self.path):
                self._file.close()


def trained(run_dir: str | os.PathLike[str]) -> tuple[list, float]:
    """Each logged step's train/grad_norm and the largest train/reward_std of the run's metrics.jsonl
    (tracking/progress.py unmoved_line); none where the file cannot be read."""
    try:
        rows = read_metrics(Path(run_dir) / METRICS_FILE)
    except (OSError, ValueError):
        return [], 0.0
    spread = max((m.get("train/reward_std") or 0.0 for m in rows), default=0.0)
    return [m["train/grad_norm"] for m in rows if "train/grad_norm" in m], spread
