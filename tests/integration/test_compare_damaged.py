"""python -m align_lab.compare on damaged inputs (docs/faults.md, "Damaged inputs to compare"): each
damaged file gives a note naming it and what was left out, or a one-line refusal; no figure is dropped
or changed in silence. test_compare.py's hand-built sweep, with one input damaged per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_compare import compare, make_sweep

TORN_PLAN = '{"plan": {"start": 2, "wave": 2'  # a write cut short
NOT_A_PLAN = '{"claims": ["ppo > rloo on step"], "looks": [{"index": 0}]}'  # JSON, not as written


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (TORN_PLAN, "cannot be read (JSONDecodeError: "),
        (NOT_A_PLAN, "not a plan record (KeyError: 'seeds')"),
    ],
    ids=["torn", "not_a_record"],
)
def test_a_damaged_plan_json_is_a_note_naming_it(tmp_path: Path, damage: str, said: str) -> None:
    sweep = make_sweep(tmp_path)
    (sweep / "plan.json").write_text(damage)
    out = tmp_path / "out"
    result = compare(str(sweep), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    note = f"note: {sweep / 'plan.json'}: {said}"
    (line,) = [x for x in result.stdout.splitlines() if x.strip().startswith(note)]
    assert line.endswith("the sequential plan's looks and verdicts (the study's verdicts) are left out")
    assert "sequential plan (plan.json)" not in result.stdout  # no verdicts from a damaged record
    assert f"{sweep / 'plan.json'}: {said}" in (out / "report.md").read_text()
    assert (sweep / "plan.json").read_text() == damage  # compare only reads
