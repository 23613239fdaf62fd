"""The notes under a report's headline: what the statistics leave out or cannot say (runs not
completed, unequal compute, unpaired seeds, too few seeds, pooled configs, which randomness the CIs
cover), each a sentence. Pure computation on a Comparison; report.py lists them.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from align_lab.folder import changed_inputs_said
from align_lab.results.averaged import averaged_notes
from align_lab.results.comparison import SFT, Comparison
from align_lab.results.extract import BUDGETS, KL, is_completed
from align_lab.results.matched_notes import budget_notes, matched_baseline_notes, unvalued_notes
from align_lab.results.runs import COMPLETED, NEVER_POOLED, Run, group_label
from align_lab.results.stopped import stopped_notes
from align_lab.results.tables import has_sft

if TYPE_CHECKING:
    import pandas as pd


def comparison_notes(c: Comparison, runs: list[Run], baseline: str | None, problems: list[str]) -> list[str]:
    """Every note, in the report's order; `baseline` as the user gave it (None: chosen here),
    `problems` from reading the run folders."""
    table = c.runs
    notes = _status_notes(table) + list(problems)
    if c.budget != KL:  # at equal KL, the runs left out are named by matched.kl_notes (in problems)
        notes += budget_notes(table, BUDGETS[c.budget], c.budget.replace("_", " "))
        notes += unvalued_notes(c)
    notes += stopped_notes(c, runs)  # train.stop_at: which runs stopped, and the equal-compute rule
    notes += matched_baseline_notes(c.baseline, c.matched_baseline, c.budget == KL, bool(c.common_by))
    notes += _pairing_notes(table, c.baseline, c.paired)
    notes += _baseline_notes(c, baseline)
    if has_sft(table, c.metric):  # per SFT row: another task's reference is no mismatch
        notes += [n for _, mine in _by_reference(table) for n in sft_notes(mine, c.metric)]
    notes += _config_notes(runs, c.by) + between_notes(runs, c.by)
    notes += _few_seeds_notes(table) + changed_inputs_notes(runs) + mixed_inputs_notes(runs)
    notes += averaged_notes(c, runs)
    randomness = stage_randomness(runs)
    notes += [randomness] if randomness else []
    return notes + [f"{row.folder}: {row.problems}" for row in table.itertuples() if row.problems]


def changed_inputs_notes(runs: list[Run]) -> list[str]:
    """A run resumed on changed inputs (resume_changed_inputs=true) mixes two datasets or rewards in its
    figures: each named (twenty-third hunt's notes: only its resume's log said so)."""
    return [
        f"WARNING: {run.folder} {said}; its figures mix both (rerun it from step 0 to compare it cleanly)."
        for run in runs
        if (said := changed_inputs_said(run.summary))
    ]


def mixed_inputs_notes(runs: list[Run]) -> list[str]:
    """Runs that read one file of yours (data, reward or verifier module) in different versions (edited
    between the runs of a sweep, or before `study resume` started a run that had not begun): their
    spread is no seed noise (twenty-sixth hunt, case 30: pooled as `grpo n=2` with no note)."""
    versions: dict[tuple[str, str], dict[str, list[str]]] = {}
    for run in runs:
        for key, found in ((run.summary or {}).get("inputs") or {}).items():
            if isinstance(found, dict) and found.get("sha256"):
                where = (key, str(found.get("file") or found.get("url") or key))
                versions.setdefault(where, {}).setdefault(found["sha256"][:8], []).append(run.folder.name)
    return [
        f"WARNING: the runs read {opened_or(key, where)} in {len(seen)} versions: "
        + "; ".join(f"sha256 {digest} in {', '.join(names)}" for digest, names in seen.items())
        + ": their differences are not seed noise (rerun them on one version to compare them)."
        for (key, where), seen in versions.items()
        if len(seen) > 1
    ]


def opened_or(key: str, where: str) -> str:
    """`task.path (<file>)`, or `a file your code opened (<file>)` (run/start.py opened_inputs' keys)."""
    return f"a file your code opened ({where})" if key.startswith("file ") else f"{key} ({where})"


def _status_notes(table: pd.DataFrame) -> list[str]:
    counts = Counter(table.loc[table["status"] != COMPLETED, "status"])
    if not counts:
        return []
    listed = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    n = sum(counts.values())  # "1 runs are" (fourth hunt of 2026-12-04)
    return [f"{n} run{'s are' if n > 1 else ' is'} not in the statistics ({listed}); see Runs."]


def _baseline_notes(c: Comparison, baseline: str | None) -> list[str]:
    """How the baseline was chosen, when the user did not name one."""
    if baseline is None and c.baseline == SFT:
        return [
            f"Baseline: SFT, the reference policy every group started from: each run is paired with its "
            f"own {c.metric}_sft (the same evaluation of the SFT policy); choose a group with --baseline."
        ]
    if baseline is None and len(c.groups) > 1:
        return [
            f"Baseline: {c.baseline}, the first group by name ({c.metric} has no SFT value); choose one with "
            "--baseline."
        ]
    return []


def _config_notes(runs: list[Run], by: list[str]) -> list[str]:
    notes = []
    for g, keys in config_differences(runs, lambda r: group_label(r, by)).items():
        keys = sorted(keys, key=lambda k: k.split(".")[0] not in NEVER_POOLED)  # task, model first
        shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        mine = [r for r in runs if is_completed(r) and group_label(r, by) == g]
        notes.append(
            f"WARNING: group {g} pools runs whose configs differ in {shown}: its CI mixes settings, not "
            f"only seeds; split it with --by (e.g. --by {','.join([*by, split_key(keys, mine)])})."
        )
    return notes


def between_notes(runs: list[Run], by: list[str]) -> list[str]:
    """A note naming the config keys, outside `by`, each group holds one value of but the groups differ
    in (ninth hunt: a gkd student and a reinforce_pp run compared --by algo.teacher, with no word that
    their algorithms differ too)."""
    values: dict[str, dict[str, set]] = {}
    for r in runs:
        if is_completed(r):
            flat = {k: repr(v) for k, v in _flat(r.config).items() if not _seed_like(k, r.config)}
            for k, v in flat.items():
                values.setdefault(k, {}).setdefault(group_label(r, by), set()).add(v)
    groups = {group_label(r, by) for r in runs if is_completed(r)}
    mine = tuple(by) + tuple(f"{b}." for b in by)
    keys = [
        k
        for k, per in sorted(values.items())
        if not k.startswith(mine) and set(per) == groups and len(groups) > 1
        if all(len(v) == 1 for v in per.values()) and len(set.union(*per.values())) > 1
    ]
    if not keys:
        return []
    shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
    return [f"The groups also differ in {shown}: a difference between them is not {','.join(by)}'s alone."]


def split_key(keys: list[str], runs: list[Run]) -> str:
    """What --by should add to split a group: the first differing key's config group (task, reward) when
    the runs chose different files for it, else the key itself."""
    group = keys[0].split(".")[0]
    return group if len({r.choices.get(group) for r in runs} - {None}) > 1 else keys[0]


def _few_seeds_notes(table: pd.DataFrame) -> list[str]:
    done = table[table["status"] == COMPLETED]
    few = [g for g in sorted(set(done["group"])) if (done["group"] == g).sum() < 3]
    if not few:
        return []
    return [
        f"Fewer than 3 seeds in {', '.join(few)}: their CIs are unreliable (2 seeds: the t interval "
        "is +-12.7 standard errors; 1 seed: none)."
    ]


def _pairing_notes(runs: pd.DataFrame, baseline: str, paired: pd.DataFrame) -> list[str]:
    done = runs[runs["status"] == COMPLETED]
    notes = []
    for (g, s), n in Counter(zip(done["group"], done["seed"], strict=True)).items():
        cell = done.loc[(done["group"] == g) & (done["seed"] == s)]
        digests = list(cell.get("config_digest", [""] * len(cell)))
        same = (
            len(set(digests)) == 1 and "" not in digests
        )  # a seed given twice (`seed=0,1,1`: 40th hunt, 41)
        configs = len({d for d in digests if d}) + digests.count("")  # a run of no digest: its own
        how = ", all of one config: one run trained again, counted once" if same else "; their mean is used"
        if not same and configs < n:  # as the row counts them (seventh hunt of 2026-12-04, cp1)
            how = f"; the mean of its {configs} configs (runs of one config counted once) is used"
        if n > 1:
            notes.append(f"{g} has {n} completed runs with seed {s:g}{how} for pairing.")
    # too few seeds for the exact test is said by each group's verdict and by the action line, not here
    if baseline == SFT:  # every run carries its own SFT reference: nothing is left unpaired
        return notes
    base_seeds = set(done.loc[done["group"] == baseline, "seed"])
    for g in sorted(set(done["group"]) - {baseline}):
        unpaired = sorted(set(done.loc[done["group"] == g, "seed"]) ^ base_seeds)
        if unpaired:
            notes.append(
                f"{g} vs {baseline}: seeds {', '.join(f'{s:g}' for s in unpaired)} are not in both "
                "groups and are left out of the paired comparison."
            )
    return notes


def _by_reference(table: pd.DataFrame) -> list:
    """The runs table split by SFT row (tables.sft_references): each row's runs share one reference."""
    return list(table.groupby("sft_reference")) if "sft_reference" in table else [(None, table)]


def sft_notes(runs: pd.DataFrame, metric: str) -> list[str]:
    """A warning when completed runs of one seed report different SFT values: they did not all start
    from one SFT policy (another task, model or SFT setting), so the SFT row pools references."""
    column = f"{metric}_sft"
    done = runs[(runs["status"] == COMPLETED) & runs["seed"].notna() & runs[column].notna()]
    spread = done.groupby("seed")[column].agg(["min", "max"])
    differing = spread[(spread["max"] - spread["min"]) > 1e-9 * (1 + spread["max"].abs())]
    if differing.empty:
        return []
    seed, (lo, hi) = differing.index[0], differing.iloc[0]
    return [
        f"WARNING: the runs do not share one SFT reference ({column} at seed {seed:g} ranges from "
        f"{lo:.4g} to {hi:.4g}): the SFT row pools different references; paired against SFT, each run is "
        "compared with its own."
    ]


IGNORED_KEYS = (
    "seed",
    "cache_dir",
    "hardware",
    "tracker",
    "claims",
    "study",
    "resume_changed_code",
    "resume_changed_inputs",
    "tune",
)


def _flat(node, prefix: str = "") -> dict:
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict = {}
    for k, v in node.items():
        out |= _flat(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def _seed_like(key: str, config: dict) -> bool:
    """Keys that differ between a group's seeds by design: the run seed, where and how it ran, and
    with stages.seed=per_run the shared stages' seeds (the run's seed, run/defaults.py apply_stage_seed)."""
    top = key.split(".")[0]
    per_run = (config.get("stages") or {}).get("seed") == "per_run"
    return top in IGNORED_KEYS or (per_run and top in ("sft", "reward") and key.endswith(".seed"))


def stage_randomness(runs: list[Run]) -> str | None:
    """Which randomness a study's CIs over seeds cover (its runs' stages.seed), or None for none."""
    settings = {(r.config.get("stages") or {}).get("seed", "shared") for r in runs if is_completed(r)}
    if settings == {"per_run"}:
        return (
            "stages.seed=per_run: each seed built its own SFT policy, preference pairs and reward model, "
            "so the CIs cover the whole pipeline's randomness."
        )
    if settings == {"shared"}:
        return (
            "stages.seed=shared: every seed trained on one SFT policy, one set of preference pairs and one "
            "reward model, so the CIs cover policy optimisation's randomness only, conditional on those "
            "stages; stages.seed=per_run covers the whole pipeline."
        )
    if settings:
        return "WARNING: runs with stages.seed=shared and per_run are pooled; split them: --by stages.seed."
    return None


def config_differences(runs: list[Run], label_of) -> dict[str, list[str]]:
    """Per group: the config keys (seed, where it ran and how it was tracked aside) whose values differ
    between the group's completed runs, which would then be pooled as if they were seeds."""
    by_group: dict[str, list[dict]] = {}
    for r in runs:
        if is_completed(r):
            flat = {k: v for k, v in _flat(r.config).items() if not _seed_like(k, r.config)}
            by_group.setdefault(label_of(r), []).append(flat)
    out = {}
    for g, flats in by_group.items():
        keys = sorted({k for f in flats for k in f})
        differing = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
        if differing:
            out[g] = differing
    return out
