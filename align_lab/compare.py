"""python -m align_lab.compare <folder> [<folder> ...]: one report comparing every run below the folders.

Groups runs by what the sweep varied (the algorithm by default), gives per-group means with 95%
Student-t CIs, paired-by-seed tests against a baseline (Holm-corrected), a compute-matched view and
curves; writes report.md, a self-contained report.html, runs.csv, runs.parquet and PNG figures.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m align_lab.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folders", nargs="+", type=Path, help="folders searched (recursively) for run folders")
    p.add_argument(
        "--by",
        default="algo",
        help="group runs by a config group (algo, task), a dotted config key (algo.kl_coef, seed), "
        "or several, comma-separated (default: algo)",
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
        choices=["generated_tokens", "reward_queries", "trained_tokens"],
        help="compute budget of the compute-matched view (default: generated_tokens); trained_tokens "
        "(response tokens in the policy's loss) also places offline pairwise runs such as DPO",
    )
    p.add_argument("--metric", default="eval/gold_reward", help="metric compared (default: eval/gold_reward)")
    p.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="CLAIM",
        help='a hypothesis to test, e.g. "rloo > ppo on eval/gold_reward" (repeatable); added to the '
        "claims the study saved (its sweep file's `claims:`)",
    )
    p.add_argument(
        "--wandb",
        action="store_true",
        help="also log the comparison to W&B (a compare run in the study's group; a report "
        "when wandb_workspaces is installed); needs a W&B login or WANDB_MODE",
    )
    return p.parse_args(argv)


def _most_common(values: list, default: str) -> str:
    values = [str(v) for v in values if v not in (None, "")]
    return Counter(values).most_common(1)[0][0] if values else default


def saved_claims(runs) -> list[str]:
    """The claims the runs' saved configs declare (a study's sweep file `claims:`), in order, once."""
    seen: list[str] = []
    for run in runs:
        for text in run.config.get("claims") or []:
            if str(text) not in seen:
                seen.append(str(text))
    return seen


def check_algorithm_names(claims, by: list[str]) -> None:
    """Grouped by algorithm, a claim must name registered algorithms (checked before reading runs)."""
    if by != ["algo"]:
        return
    from align_lab import registry

    known = registry.choices("algo")
    for c in claims:
        for name in (c.a, c.b):
            if name not in known:
                raise ValueError(f"claim '{c}': no algorithm {name!r}; allowed: {', '.join(known)}")


def main(argv: list[str] | None = None) -> int:
    from align_lab.results.aggregate import SFT, aggregate
    from align_lab.results.claims import parse_claims
    from align_lab.results.report import write_report
    from align_lab.results.runs import load_runs
    from align_lab.results.stats import fmt, fmt_ci

    args = parse_args(argv)
    missing = [str(f) for f in args.folders if not f.is_dir()]
    by = [k.strip() for k in args.by.split(",") if k.strip()]
    try:
        if missing:
            raise ValueError(f"no such folder: {', '.join(missing)}")
        claims = parse_claims(args.claim)  # before anything is read
        check_algorithm_names(claims, by)
        out = args.out or args.folders[0] / "compare"
        runs, problems = load_runs(args.folders)
        saved = saved_claims(runs)
        if saved and by != ["algo"]:  # a study's claims name algorithms
            problems.append(
                f"the study's {len(saved)} saved claims name algorithms: not tested with --by {args.by}"
            )
            saved = []
        claims = parse_claims([*saved, *args.claim])
        comparison = aggregate(runs, by, args.metric, args.budget, args.baseline, problems, claims)
    except ValueError as e:
        print(f"align_lab.compare: error: {e}", file=sys.stderr)
        return 2
    paths, figures = write_report(comparison, list(args.folders), out)

    c = comparison
    statuses = Counter(c.runs["status"])
    print(
        f"{len(c.runs)} runs ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}) in "
        f"{len(c.groups)} groups by {args.by}; baseline {c.baseline}; {c.metric}:"
    )
    print(c.headline)
    paired = {r.group: r for r in c.paired.itertuples()}
    for _, r in c.group_table.iterrows():
        mean, lo, hi = (r[f"{c.metric}:{s}"] for s in ("mean", "lo", "hi"))
        line = f"  {r['group']:<20} n={r['n']:<3} {fmt_ci(mean, lo, hi)}"
        if r["group"] == SFT:
            line += "   the reference every group started from (n = seeds)"
        if r["group"] in paired:
            d = paired[r["group"]]
            line += f"   diff {fmt_ci(d.diff, d.diff_lo, d.diff_hi)}, Holm p {fmt(d.p_holm)}: {d.verdict}"
        print(line)
    if c.claims is not None:
        print(f"claims ({len(c.claims)}, Holm-corrected together):")
        for r in c.claims.itertuples():
            why = f" ({r.why})" if r.why else ""
            print(
                f"  {r.verdict.upper():<12} {r.claim}: a - b = {fmt_ci(r.diff, r.diff_lo, r.diff_hi)}, "
                f"{r.n_pairs} seeds, Holm p {fmt(r.p_holm)}{why}"
            )
    for note in c.notes:
        print(f"  note: {note}")
    print(f"report: {paths['report.html']} (and report.md, runs.csv, runs.parquet, figures) in {out}")

    if args.wandb:
        from align_lab.results.wandb_report import NOT_CONFIGURED, log_comparison, wandb_mode

        mode = wandb_mode(os.environ)
        if mode is None:
            print(NOT_CONFIGURED)
            return 0
        project = _most_common([r.config.get("tracker", {}).get("project") for r in runs], "align_lab")
        group = _most_common([r.config.get("study") for r in runs], "compare")
        for line in log_comparison(c, figures, out, project, group, mode):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
