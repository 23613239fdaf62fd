"""What `python -m align_lab.compare` prints of a comparison (the report itself: report.py)."""

from __future__ import annotations

from collections import Counter


def comparison_lines(c, by: str) -> list[str]:
    """What the command prints of a comparison: runs and groups, each group's mean and CI with its paired
    difference from the baseline, the claims' verdicts, and the notes."""
    from align_lab.results.across_tasks import across_lines
    from align_lab.results.comparison import is_sft
    from align_lab.results.noise import noise_line
    from align_lab.results.power import power_lines
    from align_lab.results.robust import robust_lines
    from align_lab.results.stats import fmt, fmt_ci

    statuses = ", ".join(f"{n} {s}" for s, n in sorted(Counter(c.runs["status"]).items()))
    lines = [  # "1 runs (1 running) in 1 groups" (sixth hunt of 2026-12-04)
        f"{counted(len(c.runs), 'run')} ({statuses}) in {counted(len(c.groups), 'group')} by {by}; "
        f"baseline {c.baseline}; {c.metric}:",
        c.headline,
    ]
    paired = {r.group: r for r in c.paired.itertuples()}
    for _, r in c.group_table.iterrows():
        mean, lo, hi = (r[f"{c.metric}:{s}"] for s in ("mean", "lo", "hi"))
        line = f"  {r['group']:<20} n={r[f'{c.metric}:n']:<3} {fmt_ci(mean, lo, hi)}"
        if is_sft(r["group"]):
            line += "   the reference " + ("every group" if r["group"] == "SFT" else "its task's groups")
            line += " started from (n = seeds)"
        if r["group"] in paired:
            d = paired[r["group"]]
            line += f"   diff {fmt_ci(d.diff, d.diff_lo, d.diff_hi)}, Holm p {fmt(d.p_holm)}: {d.verdict}"
        lines.append(line)
    lines.append(f"  action: {c.action}")
    if c.claims is not None:
        lines.append(f"claims ({len(c.claims)}, Holm-corrected together):")
        for r in c.claims.itertuples():
            why = f" ({r.why})" if r.why else ""
            lines.append(
                f"  {r.verdict.upper():<12} {r.claim}: a - b = {fmt_ci(r.diff, r.diff_lo, r.diff_hi)}, "
                f"{r.n_pairs} seeds, Holm p {fmt(r.p_holm)}{why}"
            )
        lines += power_lines(c.claims, c.power or [], c.min_effect_sd)
    lines += robust_lines(c.robustness)
    lines += noise_line(c.noise)
    lines += across_lines(c.across_tasks)
    return lines + [f"  note: {note}" for note in c.notes]


def counted(n: int, noun: str) -> str:
    """`1 run`, `2 runs`."""
    return f"{n} {noun}{'s' * (n != 1)}"
