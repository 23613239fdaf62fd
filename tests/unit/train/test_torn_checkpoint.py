"""train/checkpoint_io.py: a damaged newest checkpoint file beside a whole older one names the older one
(twenty-eighth hunt, case 12: a torn state-00000025.pt beside a whole state-00000020.pt, with `last`
naming it or removed, and the only hint deleted the folder, 20 steps with it)."""

from __future__ import annotations

import pytest
import torch

from align_lab.train.checkpoint_io import CheckpointError, checkpoint_file


@pytest.mark.parametrize("pointer", ["names_the_torn_one", "removed"])
def test_a_torn_checkpoint_beside_a_whole_one_names_the_whole_one(tmp_path, pointer):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"step": 20}, folder / "state-00000020.pt")
    (folder / "state-00000025.pt").write_bytes((folder / "state-00000020.pt").read_bytes()[:300])
    if pointer == "names_the_torn_one":
        (folder / "last").write_text("state-00000025.pt")
    with pytest.raises(CheckpointError) as e:
        checkpoint_file(folder)
    assert str(e.value).startswith(f"checkpoint {folder / 'state-00000025.pt'} is unreadable (")
    assert str(e.value).endswith(
        f"; it sits beside state-00000020.pt, whole: write that name into {folder / 'last'} to resume from "
        f"it, or delete {folder} to start the run again from step 0"
    )
    (folder / "last").write_text("state-00000020.pt")
    assert checkpoint_file(folder) == folder / "state-00000020.pt"


def test_a_teachers_torn_checkpoint_names_no_other(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"step": 20}, folder / "state-00000020.pt")
    (folder / "state-00000025.pt").write_bytes(b"torn")
    (folder / "last").write_text("state-00000025.pt")
    with pytest.raises(CheckpointError) as e:
        checkpoint_file(folder, "retrain the teacher")
    assert "sits beside" not in str(e.value) and str(e.value).endswith("; retrain the teacher")
