"""The memory model of a run (docs/memory.md), one subpackage behind one surface: what the run's Context,
its stages and its hardware check (run/) and the Learner (train/learner.py) ask of it. Inside: the bytes
of a decoder's rows (footprint.py), the plan of a run's peak and of `train.micro_batch_size: auto`
(planner.py) and the lines it logs (plan_lines.py), and an online update's rows per micro-batch from
its rows' tokens (token_budget.py). The loops see only ints or None, never "auto"."""

from align_lab.train.memory.footprint import Dims, divergence_copies, held_modules, parameter_bytes, row_bytes
from align_lab.train.memory.kept import kept_line, kept_row_bytes
from align_lab.train.memory.planner import (
    RUNTIME,
    Planned,
    default_budget,
    machine_memory,
    plan_run,
    prompt_tokens,
    record,
    response_tokens,
    stage_plan,
    trainer_floor,
)
from align_lab.train.memory.token_budget import first_update_rows, update_rows

__all__ = [
    "RUNTIME",
    "Dims",
    "Planned",
    "default_budget",
    "divergence_copies",
    "first_update_rows",
    "held_modules",
    "kept_line",
    "kept_row_bytes",
    "machine_memory",
    "parameter_bytes",
    "plan_run",
    "prompt_tokens",
    "record",
    "response_tokens",
    "row_bytes",
    "stage_plan",
    "trainer_floor",
    "update_rows",
]
