"""run/sweep_inputs.py: `study resume` of a sweep whose data file was edited after its runs read it
(twenty-sixth hunt, cases 30 and 45: the run that never started began and completed on the edited file,
while #0, refused by its own checkpoint, had trained on the file as it was; no line)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from align_lab.run.sweep_inputs import changed_since_the_sweep


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


def test_a_run_starting_afresh_in_a_sweep_is_checked_against_its_trained_runs_only(tmp_path):
    """Twenty-seventh hunt, case 16: the sweep's own command typed again trained its runs that had not
    started on an edited reward module. A run without a checkpoint is checked against the sweep's runs that
    trained (completed, or with a checkpoint): not against one that failed before its first checkpoint
    (it starts again on the file as it is), and not outside a sweep's folder."""
    import pytest

    from align_lab.config import ConfigError
    from align_lab.run.sweep_inputs import check_beside_its_sweep

    module = tmp_path / "rew.py"
    module.write_text("SCALE = 1\n")
    then = hashlib.sha256(module.read_bytes()).hexdigest()[:16]
    record = {"reward.path": {"file": str(module), "sha256": then}}
    mine = {"reward.path": {"file": str(module), "sha256": "0123456789abcdef"}}
    failed = run_folder(tmp_path, "0_rloo_seed0", record)
    assert check_beside_its_sweep(mine, tmp_path / "1_rloo_seed1", allow=False) is None  # no sweep's record
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")
    assert check_beside_its_sweep(mine, tmp_path / "1_rloo_seed1", allow=False) is None  # #0 never trained
    (failed / "checkpoints").mkdir()
    (failed / "checkpoints" / "last").write_text("state-00000002.pt")
    with pytest.raises(ConfigError) as refused:
        check_beside_its_sweep(mine, tmp_path / "1_rloo_seed1", allow=False)
    assert str(refused.value).startswith(
        f"reward.path: {module} (sha256 {then[:8]} when 0_rloo_seed0 read it, now 01234567) changed since"
    )
    assert check_beside_its_sweep(mine, tmp_path / "1_rloo_seed1", allow=True).endswith(
        "this run trains on the file as it is now (resume_changed_inputs=true)"
    )
    same = {"reward.path": {"file": str(module), "sha256": then}}
    assert check_beside_its_sweep(same, tmp_path / "1_rloo_seed1", allow=False) is None


def test_a_sweeps_run_is_told_to_choose_another_sweep_folder_a_single_run_another_run_folder(tmp_path):
    """Thirty-third hunt, case 22: a sweep's completed run whose file changed said "choose another
    hydra.run.dir", a key a sweep does not place its runs by."""
    from align_lab.run.sweep_inputs import folder_key

    (tmp_path / "single").mkdir()
    assert folder_key(tmp_path / "single") == "hydra.run.dir"
    (tmp_path / "sweep" / "0_grpo").mkdir(parents=True)
    (tmp_path / "sweep" / "multirun.yaml").write_text("hydra: {}\n")
    assert folder_key(tmp_path / "sweep" / "0_grpo") == "hydra.sweep.dir"
