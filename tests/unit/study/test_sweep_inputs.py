"""study/sweep_inputs.py: `study resume` of a sweep whose data file was edited after its runs read it
(twenty-sixth hunt, cases 30 and 45: the run that never started began and completed on the edited file,
while #0, refused by its own checkpoint, had trained on the file as it was; no line)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from align_lab.study.sweep_inputs import changed_since_the_sweep


def run_folder(root: Path, name: str, inputs: dict) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"status": "interrupted", "inputs": inputs}))
    return folder


def test_a_file_the_sweeps_runs_read_edited_since_is_one_line_naming_it(tmp_path):
    data = tmp_path / "q.jsonl"
    data.write_text('{"q": "1+1", "a": 2}\n')
    then = hashlib.sha256(data.read_bytes()).hexdigest()[:16]
    runs = [
        run_folder(tmp_path, "0_grpo_seed0", {"task.path": {"file": str(data), "sha256": then}}),
        tmp_path / "1_grpo_seed1",  # never started: no folder
        run_folder(tmp_path, "2_grpo_seed2", {"reward.url": {"file": "http://h:1/s", "sha256": "ab" * 8}}),
    ]
    assert changed_since_the_sweep(runs) is None
    data.write_text('{"q": "1+1", "a": 3}\n')
    now = hashlib.sha256(data.read_bytes()).hexdigest()[:8]
    assert changed_since_the_sweep(runs) == (
        f"task.path: {data} (sha256 {then[:8]} when 0_grpo_seed0 read it, now {now}) changed since the "
        "sweep's runs read it: a run resumed or started now would train on another version than theirs; "
        "put it back as it was, or start another sweep (another hydra.sweep.dir)"
    )


def test_a_helper_of_a_module_the_runs_read_is_checked_too(tmp_path):
    """Twenty-seventh hunt, case 9: a verifier module recorded with the helper module it imports was
    skipped as not a plain file, and the never-started run trained on the edited helper."""
    from align_lab.run.inputs import module_digest

    module, helper = tmp_path / "myv2.py", tmp_path / "vh2.py"
    module.write_text("from vh2 import MODE\n")
    helper.write_text("MODE = 'strict'\n")
    record = {"file": f"{module} (and vh2.py)", "sha256": module_digest([module, helper])[:16]}
    runs = [run_folder(tmp_path, "0_grpo_seed0", {"task.verifier": record})]
    assert changed_since_the_sweep(runs) is None
    helper.write_text("MODE = 'lenient'\n")
    assert changed_since_the_sweep(runs).startswith(f"task.verifier: {module} (and vh2.py) (sha256 ")
