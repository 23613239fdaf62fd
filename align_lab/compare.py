"""python -m align_lab.compare <folder> [<folder> ...]: one report comparing every run below the folders.

Groups runs by what the sweep varied (the algorithm by default), gives per-group means with 95%
Student-t CIs, paired-by-seed tests against a baseline (Holm-corrected), a compute-matched view and
curves; writes report.md, a self-contained report.html, runs.csv, runs.parquet and PNG figures.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from align_lab.results import plan_record
from align_lab.results.claims import check_algorithm_names, saved_claims
from align_lab.results.out_folder import out_problem
from align_lab.results.tuning import tuning_notes, tuning_report_lines
from align_lab.value_checks import said_all, say


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m align_lab.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folders", nargs="+", type=Path, help="folders searched (recursively) for run folders")
    p.add_argument(
        "--by",
        action="append",  # `--by a --by b` is `--by a,b` (parse_args; the first was dropped: eighth hunt)
        help="group runs by a config group (algo, task), a dotted config key (algo.kl_coef, seed), "
        "or several, comma-separated or repeated (default: the study's `compare_by`, algo unless its sweep "
        "file sets another, e.g. the arm group of sweeps/off_policy.yaml); runs that differ in task or "
        "model are split by it too, never pooled",
    )
    p.add_argument(
        "--baseline",
        default=None,
        help="the group others are compared with, or SFT (default: SFT, the reference every run "
        "started from, when the metric has an SFT value; else the first group by name)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <first folder>/compare)")
    p.add_argument(
        "--budget",
        default="generated_tokens",
        choices=["generated_tokens", "reward_queries", "trained_tokens", "wall_time", "kl"],
        help="compute budget of the compute-matched view (default: generated_tokens); trained_tokens "
        "(response tokens in the policy's loss) also places offline pairwise runs such as DPO; wall_time "
        "(the steps' seconds summed, this machine's) compares at equal time; kl reads every run at a "
        "common KL to the reference (eval/kl) instead: the KL-matched view",
    )
    p.add_argument(
        "--at-kl",
        type=_at_kl,
        default=None,
        metavar="KL",
        help="with --budget kl: the common KL (default: the smallest peak KL among the completed runs, "
        "which every run reaches); runs that never reach it are named and left out",
    )
    p.add_argument("--metric", default="eval/gold_reward", help="metric compared (default: eval/gold_reward)")
    add_claim_arguments(p)
    p.add_argument(
        "--wandb",
        action="store_true",
        help="also log the comparison to W&B: a compare run in the study's group and, online, a W&B "
        "report and workspace (offline: their JSON, wandb_report.json); online when logged in, else "
        "offline files in <out>/wandb as runs write them (WANDB_MODE overrides); refused for runs of no "
        "named study (study=default)",
    )
    args = p.parse_args(argv)
    args.by = ",".join(args.by) if args.by else None
    return args


def add_claim_arguments(p: argparse.ArgumentParser) -> None:
    """--claim, --drop-claim and --min-effect: what is tested, and what its seeds-needed lines size for."""
    p.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="CLAIM",
        help='a hypothesis to test, e.g. "rloo > ppo on eval/gold_reward" (repeatable); added to the '
        "claims the study saved (its sweep file's `claims:`)",
    )
    p.add_argument(
        "--drop-claim",
        action="append",
        default=[],
        metavar="CLAIM",
        help="a claim the study saved, not to test this time (repeatable; its text as saved)",
    )
    p.add_argument(
        "--min-effect",
        type=_min_effect,
        default=0.5,
        metavar="SD",
        help="the smallest effect of interest the seeds-needed lines are sized for, in SDs of the paired "
        "differences, where a claim names none ('... by <effect>' in the metric's units); default 0.5",
    )


def _positive(what: str, example: str):
    """An argparse type: a finite number > 0, else a one-line usage error naming what it must be."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value > 0 and value != float("inf")):
            raise argparse.ArgumentTypeError(f"{text!r}: must be {what} > 0, e.g. {example}")
        return value

    return parse


_min_effect = _positive("a number of SDs", "0.5")  # --min-effect
_at_kl = _positive("a KL (eval/kl's units)", "2.5")  # --at-kl


def _most_common(values: list, default: str) -> str:
    values = [str(v) for v in values if v not in (None, "")]
    return Counter(values).most_common(1)[0][0] if values else default


def study_grouping(runs) -> str:
    """The key the study's arms differ by: its runs' saved `compare_by` (algo unless the sweep file
    sets another)."""
    return _most_common([r.config.get("compare_by") for r in runs], "algo")


def split_pooled_settings(runs, by: list[str], problems: list[str]) -> list[str]:
    """`by` plus task and/or model where the runs differ in them (results.runs.settings_to_split): compare
    never pools tasks or models; one note says so."""
    from align_lab.results.runs import lookup, settings_to_split

    split = settings_to_split(runs, by)
    for key in split:
        values = sorted({str(v) for v in (lookup(r, key) for r in runs) if v is not None})
        problems.append(
            f"The runs differ in {key} ({', '.join(values)}): grouped by {','.join([*by, *split])}, never "
            f"pooled (a mean over {key}s would mix their scales as if they were seeds)."
        )
    return [*by, *split]


def drop_claims(saved: list[str], drop: list[str]) -> list[str]:
    """The saved claims without those --drop-claim names (compared as parsed claims, so spacing does not
    matter); one that names no saved claim is a ValueError."""
    from align_lab.results.claims import parse_claim

    gone = [parse_claim(text) for text in drop]
    for text, claim in zip(drop, gone, strict=True):
        if claim not in [parse_claim(s) for s in saved]:
            listed = "; ".join(saved) if saved else "none"
            raise ValueError(f"--drop-claim {text!r}: no saved claim has this text; saved claims: {listed}")
    return [s for s in saved if parse_claim(s) not in gone]


def _keys(by: str) -> list[str]:
    """The --by keys, an old flat key under its nested name (algo.clip_high: algo.clip.high; aliases.py)."""
    from align_lab.aliases import rename_override

    return [rename_override(f"{k.strip()}=")[0][:-1] for k in by.split(",") if k.strip()]


def compare(args: argparse.Namespace):
    """(the comparison, the runs read, the output folder) of the parsed command line; ValueError for a
    folder, claim or grouping that is wrong, before any report is written. Sets args.by when not given."""
    from align_lab.results.aggregate import aggregate
    from align_lab.results.claims import parse_claims
    from align_lab.results.runs import folders_problem, load_runs

    if problem := folders_problem(args.folders):
        raise ValueError(problem)
    if args.at_kl is not None and args.budget != "kl":
        raise ValueError(f"--at-kl {args.at_kl:g}: only with --budget kl (it is {args.budget})")
    claims = parse_claims(args.claim)  # before anything is read
    if args.by is not None:
        check_algorithm_names(claims, _keys(args.by))
    out = args.out or args.folders[0] / "compare"
    runs, problems = load_runs(args.folders)
    if args.wandb:  # before any report is written
        from align_lab.results.wandb_report import runs_scope

        runs_scope(runs)
    problems += plan_record.plan_notes(args.folders) + tuning_notes(args.folders)
    grouping = study_grouping(runs)
    args.by = args.by or grouping
    by = split_pooled_settings(runs, _keys(args.by), problems)
    args.by = ",".join(by)
    check_algorithm_names(claims, by)
    saved = drop_claims(saved_claims(runs), args.drop_claim)
    if saved and by != [grouping]:  # a study's claims name the values of its own grouping
        problems.append(
            f"the study's {len(saved)} saved claims name {grouping} values: not tested with --by {args.by}"
        )
        saved = []
    claims = parse_claims([*saved, *args.claim])
    comparison = aggregate(
        runs, by, args.metric, args.budget, args.baseline, problems, claims, args.min_effect, args.at_kl
    )
    return comparison, runs, out


def wandb_lines(c, figures, out: Path, runs, args) -> list[str]:
    """Logs the comparison to W&B (--wandb) in the runs' most common project and study; what it says."""
    from align_lab.results.wandb_report import (
        log_comparison,
        not_logged,
        online_command,
        runs_scope,
        unsynced,
        wandb_mode,
    )

    mode = wandb_mode(os.environ)
    if mode is None:
        return [not_logged(os.environ)]
    project = _most_common([r.config.get("tracker", {}).get("project") for r in runs], "align_lab")
    group, ids = runs_scope(runs)
    choices = {k for r in runs for k in r.choices}  # --by keys that are config groups (an arm)
    said = log_comparison(c, figures, out, project, group, mode, choices, online_command(args), ids)
    return [*unsynced(runs), *said]


class Stopped(Exception):
    """SIGINT or SIGTERM while compare reads the runs or writes the report (its name the message)."""


@contextmanager
def signals_stop() -> Iterator[None]:
    """SIGINT and SIGTERM raise Stopped in the block, their handlers put back after it; one a finalizer
    swallowed ("Exception ignored in: ... Stopped", rc 0) is raised again as the block ends, unsaid there."""
    came: list[str] = []

    def stop(signum, frame):
        came.append(signal.Signals(signum).name)
        raise Stopped(came[-1])

    unraisable = lambda said: None if isinstance(said.exc_value, Stopped) else hook(said)  # noqa: E731
    before = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
        if came:  # swallowed where it was raised
            raise Stopped(came[0])
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        sys.unraisablehook = hook


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with signals_stop():
            return compared(args)
    except Stopped as e:  # a 28-56-line traceback (Ctrl-C), or no word (SIGTERM): 24th hunt, case 32
        where = args.out or args.folders[0] / "compare"
        said = f"interrupted by {e}; the report in {where} may be unfinished: rerun the command"
        print(f"align_lab.compare: {said}", file=sys.stderr)
        return 128 + signal.Signals[str(e)].value


def compared(args: argparse.Namespace) -> int:
    """The command: the report written and what it found printed; 2 with one line for what is wrong."""
    from align_lab.results.printed import comparison_lines
    from align_lab.results.report import write_report

    message = out_problem(args.out) if args.out else None
    if args.out is None and args.folders[0].is_dir():  # the default: <folder>/compare
        message = out_problem(args.folders[0] / "compare", given=False)
    if message is not None:  # before any run is read
        print(f"align_lab.compare: error: {message}", file=sys.stderr)
        return 2
    try:
        comparison, runs, out = compare(args)
        paths, figures = write_report(comparison, list(args.folders), out)
    except ValueError as e:
        print(f"align_lab.compare: error: {e}", file=sys.stderr)
        return 2
    for line in comparison_lines(comparison, args.by):
        say(line)
    for line in [*plan_record.plan_lines(args.folders), *tuning_report_lines(args.folders)]:
        say(line)
    say(f"report: {paths['report.html']} (and report.md, runs.csv, runs.parquet, figures) in {out}")
    for line in wandb_lines(comparison, figures, out, runs, args) if args.wandb else []:
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(said_all(main()))
