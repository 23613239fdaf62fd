"""scripts/same_numbers.py compares what a run's numbers are, not the digests of its config: a record made
before a key joined its skipped ones (same_run, 2026-12-04: every case "moved") compares as it is now."""

from __future__ import annotations

from scripts.same_numbers import comparable, differences


def case(loss: str, **summary) -> dict:
    return {"metrics": [{"step": 1, "loss": loss, "time/step_s": 0.3}], "summary": {"gold": "0.5", **summary}}


def test_a_digest_skipped_since_the_record_is_not_a_move_and_a_number_is():
    recorded = {"grpo": case("0.25", same_run="8d867c206a1fa9d3"), "rloo": case("0.5")}
    now = {"grpo": comparable(case("0.25")), "rloo": comparable(case("0.5000001"))}
    before = {name: comparable(c) for name, c in recorded.items()}
    assert differences(before, now) == ["rloo: step row 1 loss: 0.5 -> 0.5000001"]
    assert differences({"x": comparable({"error": "boom"})}, {"x": {"error": "boom"}}) == []
