"""The report's samples table: each group's response to the same first held-out prompts at one seed,
from the runs' last evaluation in eval_samples.jsonl, with what could not be read named."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from align_lab.results.render import Heading, Paragraph, Table, to_markdown
from align_lab.results.samples import samples_blocks
from align_lab.tracking.samples import SAMPLES_FILE


def record(step: int, prompt_id: int, sample: int, response: str, gold: float | None, proxy: float) -> dict:
    return {
        "step": step,
        "prompt_id": prompt_id,
        "sample": sample,
        "prompt": f"question {prompt_id}",
        "response": response,
        "gold_reward": gold,
        "proxy_reward": proxy,
        "sft_response": f"sft {prompt_id}.{sample}",
        "sft_gold_reward": None if gold is None else 0.0,
        "sft_proxy_reward": 0.5,
    }


def write(folder: Path, records: list[dict], tail: str = "") -> str:
    folder.mkdir(parents=True)
    text = "".join(json.dumps(r) + "\n" for r in records) + tail
    (folder / SAMPLES_FILE).write_text(text)
    return str(folder)


def comparison(rows: list[tuple[str, int, str, str]]) -> SimpleNamespace:
    runs = pd.DataFrame(rows, columns=["folder", "seed", "group", "status"])
    return SimpleNamespace(runs=runs, groups=sorted(set(runs["group"])))


def test_the_first_prompts_of_the_last_step_side_by_side_at_the_seed_most_groups_share(tmp_path):
    # ppo at seeds 0 and 1, rloo at seed 1 only, dpo failed at 1: seed 1 is the one both groups completed
    # (seed 0: 1 group). Steps 2 and 4: step 4's samples are shown; prompt 0 lacks sample 0 in rloo,
    # so the first prompts both have are 1, 2, 3 (4 is the fourth: not shown)
    def evaluation(step, tag, skip=None):
        return [
            record(step, p, s, f"{tag}{step}.{p}.{s}", float(p) / 10, 1.0 + p)
            for p in range(5)
            for s in range(2)
            if (p, s) != skip
        ]

    ppo0 = write(tmp_path / "ppo0", evaluation(4, "A"))
    ppo1 = write(tmp_path / "ppo1", evaluation(2, "P") + evaluation(4, "P"))
    rloo1 = write(
        tmp_path / "rloo1", evaluation(2, "R") + evaluation(4, "R", skip=(0, 0)), tail='{"step": 6, "pro'
    )
    dpo1 = write(tmp_path / "dpo1", evaluation(4, "D"))
    c = comparison(
        [
            (ppo0, 0, "ppo", "completed"),
            (ppo1, 1, "ppo", "completed"),
            (rloo1, 1, "rloo", "completed"),
            (dpo1, 1, "dpo", "failed"),
        ]
    )
    heading, text, table, note = samples_blocks(c)
    assert heading == Heading("Samples") and isinstance(text, Paragraph) and "Seed 1" in text.text
    assert table == Table(
        ["prompt", "SFT", "ppo", "rloo"],
        [
            ["question 1", "sft 1.0 [gold 0]", "P4.1.0 [gold 0.1]", "R4.1.0 [gold 0.1]"],
            ["question 2", "sft 2.0 [gold 0]", "P4.2.0 [gold 0.2]", "R4.2.0 [gold 0.2]"],
            ["question 3", "sft 3.0 [gold 0]", "P4.3.0 [gold 0.3]", "R4.3.0 [gold 0.3]"],
        ],
    )
    assert note == Paragraph(f"Not shown: rloo1: 1 damaged lines of {SAMPLES_FILE} skipped")
    assert "| question 1 | sft 1.0 [gold 0] | P4.1.0 [gold 0.1] | R4.1.0 [gold 0.1] |" in to_markdown(
        [table], tmp_path
    )


def test_proxy_reward_where_no_gold_and_runs_without_the_file_are_named(tmp_path):
    a = write(tmp_path / "a", [record(3, p, 0, "" if p == 0 else "x", None, 2.5) for p in range(2)])
    b = str(tmp_path / "b")  # a run from before eval_samples.jsonl
    (tmp_path / "b").mkdir()
    heading, _, table, note = samples_blocks(comparison([(a, 0, "a", "completed"), (b, 0, "b", "completed")]))
    assert table.header == ["prompt", "SFT", "a"]
    assert table.rows[0] == ["question 0", "sft 0.0 [proxy 0.5]", "(empty) [proxy 2.5]"]
    assert len(table.rows) == 2 and "b: no eval_samples.jsonl" in note.text


def test_no_samples_anywhere_adds_nothing(tmp_path):
    (tmp_path / "a").mkdir()
    assert samples_blocks(comparison([(str(tmp_path / "a"), 0, "a", "completed")])) == []
    assert samples_blocks(comparison([(str(tmp_path / "a"), 0, "a", "failed")])) == []
