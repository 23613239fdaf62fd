"""train.stop_at: end a run at the first evaluation whose metric reaches a threshold (NeMo-RL's early stop
on a validation metric), with a record of why it stopped: in the checkpoint written at that step, so a
resume knows the run is complete, and in summary.json, so compare can line it up at equal compute.

Two keys, `train.stop_at.metric` and `train.stop_at.value`, rather than one dict or one string: on Hydra's
command line `train.stop_at.metric=eval/pass@1 train.stop_at.value=0.8` needs no quoting (a dict needs
shell quotes around its braces and comma; a string `eval/pass@1>=0.8` needs Hydra's quotes inside the
shell's, since Hydra's grammar refuses a bare `>`), and a sweep varies the threshold alone
(`train.stop_at.value=0.5,0.8`). "Reaches" is `>=`: every eval/ metric a run can stop on is one whose
rise is the event (pass@k, rewards, win rates; a KL reaching a budget), so no direction key is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from align_lab.results.ranges import metric_range
from align_lab.value_checks import check


@dataclass
class StopAt:
    """The threshold: stop after the first evaluation, before the last step, where `metric` >= `value`;
    metric None: never (the default)."""

    metric: str | None = None  # an eval/ key the run logs at each evaluation, e.g. eval/pass@1
    value: float | None = None  # the threshold, inside the metric's range ([0, 1] for rates)

    def __post_init__(self) -> None:
        if self.metric is None:
            check(self.value is None, "stop_at.value", self.value, "null while stop_at.metric is null (off)")
            return
        check(
            self.metric.startswith("eval/"),
            "stop_at.metric",
            self.metric,
            "an eval/ key, logged at each evaluation (e.g. eval/pass@1)",
        )
        check(
            self.value is not None, "stop_at.value", self.value, f"a number: the threshold of {self.metric}"
        )
        lo, hi = metric_range(self.metric)
        check(
            lo <= self.value <= hi, "stop_at.value", self.value, f"in [{lo:g}, {hi:g}], {self.metric}'s range"
        )

    @property
    def on(self) -> bool:
        return self.metric is not None

    def __str__(self) -> str:
        return f"{self.metric} >= {self.value:g}" if self.on else "off"


def check_schedule(stop: StopAt, eval_every: int, steps: int) -> None:
    """A threshold needs an evaluation before the last step: with eval_every 0 or >= steps the only one is
    at the end, where the run ends anyway (cadence.due)."""
    if stop.on and not 0 < eval_every < steps:
        raise ValueError(
            f"stop_at.metric={stop.metric}: needs an evaluation before the last step, and "
            f"eval_every={eval_every} evaluates only at the end of steps={steps}; set it to 1..{steps - 1}"
        )


def evaluated_metrics(task, eval_samples: int, references: bool = True) -> frozenset[str]:
    """The eval/ keys every evaluation of a run on `task` logs (results/planned_claims.py run_metrics, the
    claims' list), less the reference's own (eval/gold_reward_sft: training does not move it) and, with
    `references` false (the task has no reference responses), the win rate against them."""
    from align_lab.results.planned_claims import run_metrics

    known = run_metrics(bool(task.verifiable), bool(task.has_gold_reward), eval_samples)
    left_out = () if references else ("eval/win_rate_vs_reference",)
    reference = {f"{k}_sft" for k in known}  # eval/gold_reward_sft: the reference's own; not win_rate_vs_sft
    return frozenset(k for k in known if k.startswith("eval/") and k not in reference and k not in left_out)


def check_task(stop: StopAt, task, eval_samples: int) -> None:
    """The metric is one every evaluation of a run on `task` logs (evaluated_metrics); the task's
    reference responses are read only for the win rate against them (a dataset task may load its data)."""
    if not stop.on:
        return
    references = stop.metric != "eval/win_rate_vs_reference" or task.references("eval") is not None
    known = evaluated_metrics(task, eval_samples, references)
    if stop.metric not in known:
        raise ValueError(
            f"train.stop_at.metric={stop.metric}: this run does not log it at evaluation; it logs "
            f"{', '.join(sorted(known))}"
        )


def stop_record(stop: StopAt, evaluation: dict, done: int, steps: int, metrics: dict) -> dict:
    """Why the run stops after step `done` ({} when it goes on): the threshold and the value that reached
    it, the step and the compute spent (counters/*), as summary.json and the checkpoint keep it. The last
    step is no early stop: the run ends there anyway."""
    value = evaluation.get(stop.metric) if stop.on else None
    if done >= steps or not isinstance(value, int | float) or math.isnan(value) or value < stop.value:
        return {}
    spent = {k.removeprefix("counters/"): v for k, v in metrics.items() if k.startswith("counters/")}
    record = {"reason": "stop_at", "metric": stop.metric, "threshold": stop.value, "value": value}
    return record | {"step": done, "steps": steps, **spent}


def describe(record: dict) -> str:
    """A stop record in words: `stopped at step 4 of 10 (train.stop_at: eval/pass@1 = 0.75 >= 0.5)`."""
    return (
        f"stopped at step {record['step']} of {record['steps']} (train.stop_at: {record['metric']} = "
        f"{record['value']:.3g} >= {record['threshold']:g})"
    )


def unreached(stop: StopAt, summary: dict, steps: int) -> list[str]:
    """The run's line where train.stop_at was set and never reached: it trained every step, and said
    nothing of its threshold (third hunt of 2026-12-04, n31); [] otherwise."""
    if not stop.on or summary.get("stopped"):
        return []
    last = summary.get(stop.metric)
    said = f"{last:.3g}" if isinstance(last, int | float) else "not logged"
    return [
        f"  train.stop_at: {stop} not reached (the last evaluation: {said}); it trained all {steps} steps"
    ]
