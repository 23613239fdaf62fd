"""The report's samples: what each arm wrote for a few held-out prompts, side by side, at one seed.

Evaluation draws every (seed, prompt, sample) with the same noise in every arm (common random
numbers, train/evaluate.py), so the responses to one prompt at one seed differ only by the policy.
Read from each run's eval_samples.jsonl (tracking/samples.py), its last evaluated step.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from align_lab.results.comparison import SFT, Comparison
from align_lab.results.render import Block, Heading, Paragraph, Table
from align_lab.results.runs import COMPLETED
from align_lab.results.stats import fmt
from align_lab.tracking.samples import SAMPLES_FILE, read_samples

if TYPE_CHECKING:
    import pandas as pd

N_PROMPTS = 3  # held-out prompts shown: the first prompt ids every arm evaluated
CELL_CHARS = 300  # characters of a response shown in a cell


def shared_seed(done: pd.DataFrame) -> int | None:
    """The smallest seed with a completed run in the most groups (every group where one exists)."""
    groups_per_seed = done.dropna(subset=["seed"]).groupby("seed")["group"].nunique()  # (seeds,)
    if groups_per_seed.empty:
        return None
    most = groups_per_seed.max()
    return int(min(s for s, n in groups_per_seed.items() if n == most))


def shown_runs(comparison: Comparison) -> tuple[int | None, dict[str, str]]:
    """(the shared seed, {group: the folder of its run the Samples section shows}): at that seed, each
    group's first completed run by folder name."""
    runs = comparison.runs
    done = runs[(runs["status"] == COMPLETED) & (runs["group"] != SFT)]
    seed = shared_seed(done)
    shown = {}
    for group in [g for g in comparison.groups if g != SFT] if seed is not None else []:
        folders = sorted(done.loc[(done["group"] == group) & (done["seed"] == seed), "folder"])
        if folders:
            shown[group] = folders[0]
    return seed, shown


def final_records(folder: Path) -> tuple[dict[tuple[int, int], dict], str | None]:
    """{(prompt_id, sample): record} of a run's last evaluated step, and a note when there is none."""
    records, skipped = read_samples(folder / SAMPLES_FILE)
    if not records:
        return (
            {},
            f"{folder.name}: no {SAMPLES_FILE} (a run from before it existed, or "
            "train.keep_eval_samples=false)",
        )
    last = max(r["step"] for r in records)
    final = {(r.get("prompt_id"), r.get("sample")): r for r in records if r["step"] == last}
    return final, (f"{folder.name}: {skipped} damaged lines of {SAMPLES_FILE} skipped" if skipped else None)


def cell(text: str | None, reward: float | None, kind: str) -> str:
    text = " ".join(str(text or "").split())
    text = text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"
    return f"{text or '(empty)'} [{kind} {fmt(reward) if reward is not None else 'n/a'}]"


def reward_of(record: dict, prefix: str = "") -> tuple[float | None, str]:
    """(gold reward, "gold") where the task has one, else (proxy reward, "proxy")."""
    gold = record.get(f"{prefix}gold_reward")
    return (gold, "gold") if gold is not None else (record.get(f"{prefix}proxy_reward"), "proxy")


def samples_blocks(comparison: Comparison, n_prompts: int = N_PROMPTS) -> list[Block]:
    """'Samples' heading, a paragraph and a table (prompt, SFT, one column per group) for the first
    n_prompts prompt ids every group's run at the shared seed evaluated (sample 0, last step); nothing
    when no run has records."""
    seed, shown = shown_runs(comparison)
    if seed is None:
        return []
    notes, columns = [], {}
    for group, folder in shown.items():
        final, note = final_records(Path(folder))
        notes += [note] if note else []
        if final:
            columns[group] = final
    if not columns:
        return []
    shared = set.intersection(*(set(k for k in c if k[1] == 0) for c in columns.values()))
    keys = sorted(shared, key=lambda k: k[0])[:n_prompts]
    first = next(iter(columns.values()))
    rows = []
    for key in keys:
        record = first[key]
        rows.append(
            [
                " ".join(str(record.get("prompt", "")).split()),
                cell(record.get("sft_response"), *reward_of(record, "sft_")),
            ]
            + [cell(columns[g][key].get("response"), *reward_of(columns[g][key])) for g in columns]
        )
    text = (
        f"Seed {seed}, each run's last evaluation, sample 0 of the first {len(keys)} held-out prompts every "
        f"group evaluated: every arm drew these with the same sampling noise (common random numbers), so "
        f"they differ by the policy alone. SFT: the reference policy's sample with the same noise. "
        f"In brackets: the sample's gold reward (proxy where the task has none). All samples: "
        f"each run's {SAMPLES_FILE}."
    )
    blocks: list[Block] = [Heading("Samples"), Paragraph(text), Table(["prompt", SFT, *columns], rows)]
    return blocks + ([Paragraph("Not shown: " + "; ".join(notes))] if notes else [])
