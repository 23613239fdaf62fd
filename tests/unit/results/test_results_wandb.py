"""--wandb's choice of mode: W&B is used only when configured; never online without a login."""

from __future__ import annotations

from pathlib import Path

from align_lab.results.wandb_report import wandb_mode


def test_wandb_mode_needs_a_login_or_an_explicit_offline_mode(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}  # no ~/.netrc there
    assert wandb_mode(home) is None  # not configured: compare prints one line and writes nothing
    assert wandb_mode({**home, "WANDB_MODE": "offline"}) == "offline"
    assert wandb_mode({**home, "WANDB_MODE": "online"}) is None  # online without credentials
    assert wandb_mode({**home, "WANDB_API_KEY": "k"}) == "online"
    assert wandb_mode({**home, "WANDB_API_KEY": "k", "WANDB_MODE": "disabled"}) is None
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    assert wandb_mode(home) == "online"
