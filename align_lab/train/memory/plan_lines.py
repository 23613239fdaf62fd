"""The lines a run logs about its memory plan (train/memory/planner.py): the rows each forward runs, the
predicted peak, and how `auto` sizes an online update's forwards."""

from __future__ import annotations

import logging

log = logging.getLogger("align_lab")

MiB = 2**20


def describe(where: str, setting, chosen: int | None, rows: int, per_row: int, room: int) -> str:
    """The one line a run logs about the rows chosen for `where` (training, evaluation, a stage)."""
    if setting != "auto":
        return f"train.micro_batch_size={setting} ({where})"
    what = "whole batches" if chosen is None else f"{chosen} rows per forward"
    return (
        f"train.micro_batch_size=auto ({where}): {what} ({rows} rows at most, ~{per_row / MiB:.3g} MiB "
        f"a row; {room / MiB:.0f} MiB for them)"
    )


def log_plan(planned, setting, rows: tuple[int, int, int], room: int, pairwise: bool) -> None:
    """The lines a run logs about its plan (planner.py's Planned): the rows of each forward (`rows`:
    an update's, the rollout's, evaluation's at most), its predicted peak, and how `auto` sizes an
    online update's forwards (train/memory/token_budget.py)."""
    peak, (update, sampled, n_eval) = planned.peak, rows
    chooses = planned.budget is not None and planned.budget.chooses
    where = "training, rows at their longest" if chooses else "training"
    log.info(describe(where, setting, planned.micro_batch_size, update, peak.train_row, room))
    forwards, evaluation = planned.forward_micro_batch_size, planned.eval_micro_batch_size
    if not pairwise:
        log.info(describe("rollout forwards", setting, forwards, sampled, peak.eval_row, room))
    log.info(describe("evaluation", setting, evaluation, n_eval, peak.eval_row, room))
    log.info(peak.describe())
    if chooses:
        budget, rows_cap = planned.budget, planned.budget.max_rows
        log.info(
            f"train.micro_batch_size=auto (training): each update's rows per forward from its rows' tokens "
            f"(a shared prompt once): whole up to {budget.whole / MiB:.0f} MiB, else micro-batches of up "
            f"to {budget.micro / MiB:.0f} MiB" + (f" and {rows_cap} rows" if rows_cap else "")
        )
