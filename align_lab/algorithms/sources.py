"""Sources: where a step's rows come from. One declared source per algorithm (`source`), asked once a
step by the loop (train/online.py step 1); the answer travels with the rollout (rollout.sampled_by)."""

from __future__ import annotations

from dataclasses import dataclass

from align_lab.rl import on_policy_step

POLICY = "policy"  # the policy's own samples
TEACHER = "teacher"  # the teacher's samples (off-policy distillation; rollout=hf samples the model handed)
DATA = "data"  # the task's demonstrations of the step's prompts, nothing sampled (rollout/demonstrated.py)
SOURCES = (POLICY, TEACHER, DATA)


@dataclass(frozen=True)
class Source:
    """A step draws from the policy with probability `on_policy` (from (seed, step) alone: GKD's lmbda,
    rl.on_policy_step), from `off` otherwise. Source() is the policy every step; SFT-distill's
    Source(TEACHER, 0.0) the teacher every step."""

    off: str = POLICY
    on_policy: float = 1.0

    def at(self, seed: int, step: int) -> str:
        """Step `step`'s source in run `seed`: a pure function of both (a resumed step draws the same)."""
        if self.off == POLICY or self.on_policy >= 1:
            return POLICY
        if self.on_policy <= 0:
            return self.off
        return POLICY if on_policy_step(self.on_policy, seed, step) else self.off

    @property
    def kinds(self) -> tuple[str, ...]:
        """The sources some step may draw from (what the run must provide: run/teacher.py)."""
        if self.off == POLICY or self.on_policy >= 1:
            return (POLICY,)
        return (self.off,) if self.on_policy <= 0 else (POLICY, self.off)
