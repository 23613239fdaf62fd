"""A sweep's claims checked at launch, before any run starts: every arm a claim names is a value of the
study's `compare_by` among the sweep's jobs, and its metric is one a run of that config will report.

Conservative: a metric is refused only when it surely will not exist (a typo such as eval/gold_rewrd,
pass@k on a task without a verifier, gold metrics without a gold reward); train/*, time/*, memory/* and
other keys vary by algorithm and backend and are never refused. Pure: admission.py's admit_sweep (the
launchers' check pass) turns a ValueError into its one-line ConfigError.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from align_lab.results.claims import parse_claims
from align_lab.results.extract import COUNTERS, logged_metric
from align_lab.results.runs import Run, group_label
from align_lab.rl import pass_ks

# what every evaluation reports (train/evaluate.py: evaluate); win_rate_vs_sft by the gold reward or the judge
EVAL_ALWAYS = (
    "eval/proxy_reward",
    "eval/proxy_reward_sft",
    "eval/kl",
    "eval/response_length",
    "eval/finished_fraction",
    "eval/distinct_1",
    "eval/distinct_2",
    "eval/repeated_words",
    "eval/rm_score",
    "eval/win_rate_vs_sft",
    "eval/win_rate_vs_reference",  # only for tasks with reference responses: kept, to be conservative
)
GOLD = ("eval/gold_reward", "eval/gold_reward_sft")
CHECKED_PREFIXES = ("eval/", "counters/")  # fixed sets; other keys are never refused


def run_metrics(verifiable: bool, has_gold_reward: bool, eval_samples: int) -> frozenset[str]:
    """The eval/* and counters/* keys a run reports, from its task's kind and its train.eval_samples:
    gold metrics with a gold reward, pass@k for k in rl.pass_ks(eval_samples) with a verifier."""
    keys = [*EVAL_ALWAYS, *COUNTERS, *(GOLD if has_gold_reward else ())]
    keys += [f"eval/pass@{k}{s}" for k in pass_ks(eval_samples) for s in ("", "_sft")] if verifiable else []
    return frozenset(keys)


def may_report(metric: str, known: frozenset[str]) -> bool:
    """Whether a run whose eval/counters keys are `known` may report `metric` (mean(...) / std(...): the
    metric inside)."""
    metric = logged_metric(metric)
    return metric in known or not metric.startswith(CHECKED_PREFIXES)


@dataclass(frozen=True)
class PlannedJob:
    """What the check needs of one job of a sweep."""

    arm: str  # its value of the study's compare_by, as compare labels it
    compare_by: str
    claims: tuple[str, ...]
    metrics: frozenset[str]  # run_metrics of its config


def planned_job(config: dict, names: dict, overrides: list[str], task, eval_samples: int) -> PlannedJob:
    """A job from its resolved config, config-group choices, overrides and built task."""
    by = str(config.get("compare_by") or "algo")
    keys = [k.strip() for k in by.split(",") if k.strip()]
    run = Run(Path("."), "planned", config=config, choices=dict(names), overrides=list(overrides))
    metrics = run_metrics(bool(task.verifiable), bool(task.has_gold_reward), int(eval_samples))
    return PlannedJob(group_label(run, keys), by, tuple(str(c) for c in config.get("claims") or ()), metrics)


def check_planned_claims(jobs: Sequence[PlannedJob]) -> None:
    """Each claim of the sweep names arms among its jobs' compare_by values and a metric the runs of both
    arms may report; else a one-line ValueError naming the claim, the value and what is allowed."""
    claims = parse_claims(dict.fromkeys(c for j in jobs for c in j.claims))
    arms = sorted({j.arm for j in jobs})
    for claim in claims:
        for arm in (claim.a, claim.b):
            if arm not in arms:
                raise ValueError(
                    f"claims: '{claim}' names {arm!r}, which no job of this sweep has as its "
                    f"{jobs[0].compare_by} (compare_by); they have {', '.join(arms)}"
                )
        for arm in (claim.a, claim.b):
            mine = [j for j in jobs if j.arm == arm]
            if not any(may_report(claim.metric, j.metrics) for j in mine):
                known = ", ".join(sorted(k for k in mine[0].metrics if k.startswith("eval/")))
                raise ValueError(
                    f"claims: '{claim}': no run of {arm} will report {claim.metric}; its runs report {known} "
                    "(and train/*, time/*, counters/*)"
                )
