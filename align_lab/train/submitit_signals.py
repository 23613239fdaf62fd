"""What submitit's signal handlers mean to a run: its SIGTERM bypass, which a run takes over
(train/preemption.py Interruption), and in a Slurm job the USR2 that may follow a SIGTERM."""

from __future__ import annotations

import os


def submitits_bypass(handler) -> bool:
    """submitit's SIGTERM handler, which ignores it: `kill -TERM` of a local sweep's run, or a plain `scancel`
    of a Slurm one, trained on with no word outside `.submitit/` (twenty-second hunt, cases 36 and 16; in
    Slurm, KillWait's SIGKILL then lost every step since the last checkpoint). A run's own Interruption
    takes SIGTERM instead, as outside submitit: the step ends, is checkpointed, the run says where it
    stopped; in a Slurm job only once no USR2 followed (slurms_sigterm)."""
    owner = getattr(handler, "__self__", None)
    return getattr(handler, "__name__", "") == "bypass" and type(owner).__module__.startswith("submitit")


def slurms_sigterm(handler) -> bool:
    """SIGTERM taken from submitit in a Slurm job, where it may be a preemption's: Slurm sends a preempted
    job SIGTERM and then its USR2 (submitit's own `_interrupt` does so), and the USR2 requeues it. Such a
    SIGTERM stops the run as an interruption only after PREEMPTION_FOLLOWS_S with no USR2
    (Interruption.settled); the SIGTERM of a requeue after a USR2 stops nothing (`preempting`)."""
    return submitits_bypass(handler) and os.environ.get("SUBMITIT_EXECUTOR", "slurm") != "local"


# how long a SIGTERM in a Slurm job waits for a preemption's USR2 (submitit's `_interrupt` sends them with
# two `scancel` calls, a fraction of a second apart); well inside Slurm's KillWait (30 s by default, 5 s
# on the tests' cluster), after which a SIGKILL ends the job
PREEMPTION_FOLLOWS_S = 2.0
