"""Checkpoints hold an algorithm's state (state_dict()), not its hyperparameters: resume restores the
state (PPO's adaptive KL coefficient and running reward moments, REINFORCE-MA's baseline) and refuses
a hyperparameter that differs from the checkpoint's, in one line, before training resumes."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.ppo import PPO
from align_lab.algorithms.reinforce_ma import ReinforceMA
from align_lab.config import ConfigError
from align_lab.train.checkpoint_io import save_checkpoint
from align_lab.train.distributed import Group
from align_lab.train.ledger import Ledger
from align_lab.train.resume import checkpoint, restore
from align_lab.train.rng import rng_state
from tests.conftest import compose, run_in_process


def rollout(kl: float) -> Rollout:
    """One response of two tokens whose k1 KL to the reference sums to `kl` (kl/2 per token)."""
    mask = torch.ones(1, 2, dtype=torch.float64)  # (1, 2)
    return Rollout(
        prompt_ids=torch.zeros(1, 2, dtype=torch.long),
        prompt_attn=torch.ones(1, 2, dtype=torch.long),
        response_ids=torch.zeros(1, 2, dtype=torch.long),
        mask=mask,
        logprobs=torch.full((1, 2), -1.0 + kl / 2, dtype=torch.float64),
        scores=torch.tensor([1.0], dtype=torch.float64),
        values=torch.zeros(1, 2, dtype=torch.float64),
        signals={"reference": torch.full((1, 2), -1.0, dtype=torch.float64)},
    )


def context(folder) -> SimpleNamespace:
    """What checkpoint() and restore() read of a Context: the folder, the process's rank and the
    shared stages' keys (saved so a resume on other stages is refused)."""
    return SimpleNamespace(checkpoint_dir=folder, group=Group(), stage_keys={}, identity={}, ledger=Ledger())


def trained_ppo() -> PPO:
    """PPO with an adaptive KL controller after one step: its coefficient and moments have moved."""
    algo = PPO(kl_coef=0.05, kl_target=1.0, kl_horizon=10, reward_scaling=True, reward_norm=True)
    algo.advantages(rollout(kl=3.0))
    # Ziegler et al.: error clip(3/1 - 1, -0.2, 0.2) = 0.2; 0.05 * (1 + 0.2 * 1 sample / 10) = 0.051
    assert algo.current_kl_coef == pytest.approx(0.051)
    return algo


def test_adaptive_kl_coefficient_and_running_moments_are_restored(tmp_path):
    algo = trained_ppo()
    checkpoint(context(tmp_path), {}, algo, step=1)
    fresh = PPO(kl_coef=0.05, kl_target=1.0, kl_horizon=10, reward_scaling=True, reward_norm=True)
    assert restore(context(tmp_path), {}, fresh) == 1
    assert fresh.current_kl_coef == algo.current_kl_coef == pytest.approx(0.051)
    assert fresh.kl_coef == 0.05  # the configured (initial) coefficient is a hyperparameter, untouched
    assert (fresh.reward_mean, fresh.reward_var, fresh.reward_count) == (
        algo.reward_mean,
        algo.reward_var,
        algo.reward_count,
    )


def test_reinforce_ma_baseline_is_restored(tmp_path):
    algo = ReinforceMA(kl_coef=0.0)
    algo.advantages(rollout(kl=0.0))  # one reward of 1.0: baseline 1.0 from now on
    checkpoint(context(tmp_path), {}, algo, step=1)
    fresh = ReinforceMA(kl_coef=0.0)
    restore(context(tmp_path), {}, fresh)
    assert (fresh.reward_sum, fresh.reward_count, fresh.baseline) == (1.0, 1, 1.0)


def test_a_changed_hyperparameter_is_refused_in_one_line(tmp_path):
    checkpoint(context(tmp_path), {}, trained_ppo(), step=1)
    changed = PPO(kl_coef=0.05, kl_target=1.0, kl_horizon=10, reward_scaling=True, reward_norm=False)
    message = (
        f"algo.reward_norm=False: the checkpoint in {tmp_path} was trained with algo.reward_norm=True; "
        f"resume with that value, or delete {tmp_path} to start again"
    )
    with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
        restore(context(tmp_path), {}, changed)
    assert changed.reward_count == 1e-24  # nothing was loaded


def test_a_checkpoint_holding_vars_of_the_algorithm_still_loads(tmp_path):
    """Checkpoints written before state_dict() held vars(algo), with the adapted coefficient as kl_coef."""
    old = trained_ppo()
    legacy = {k: v for k, v in vars(old).items() if k != "current_kl_coef"} | {"kl_coef": old.current_kl_coef}
    save_checkpoint(tmp_path, {"step": 1, "objects": {}, "algo": legacy, "rng": rng_state()})
    fresh = PPO(kl_coef=0.05, kl_target=1.0, kl_horizon=10, reward_scaling=True, reward_norm=True)
    assert restore(context(tmp_path), {}, fresh) == 1
    assert fresh.current_kl_coef == pytest.approx(0.051) and fresh.reward_mean == old.reward_mean
    changed = PPO(kl_coef=0.05, kl_target=1.0, kl_horizon=20, reward_scaling=True, reward_norm=True)
    with pytest.raises(
        ConfigError, match=r"^algo\.kl_horizon=20: the checkpoint in .* with algo\.kl_horizon=10;"
    ):
        restore(context(tmp_path), {}, changed)


class Interrupt(BaseException):
    """A kill between two steps (not an Exception, so nothing on the way catches it)."""


def test_resuming_a_run_with_another_learning_rate_stops_with_one_line(tmp_path, cache_dir, monkeypatch):
    from align_lab.tracking import JsonlTracker

    original = JsonlTracker.log

    def log_then_die(self, metrics, step):
        original(self, metrics, step)
        if step == 2:
            raise Interrupt

    monkeypatch.setattr(JsonlTracker, "log", log_then_die)
    with pytest.raises(Interrupt):
        run_in_process(["algo=reinforce_ma"], tmp_path, cache_dir)
    monkeypatch.setattr(JsonlTracker, "log", original)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError) as e:
        run_in_process(["algo=reinforce_ma", "algo.lr=0.002"], tmp_path, cache_dir)
    # refused before any compute: the run folder (summary, metrics, checkpoints) is untouched
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    folder = tmp_path / "checkpoints"
    assert str(e.value) == (
        f"algo.lr=0.002: the checkpoint in {folder} was trained with algo.lr=0.001; "
        f"resume with that value, or delete {folder} to start again"
    )
    lr = compose(["algo=reinforce_ma"])[0].algo.lr
    assert lr == 0.001  # the message's old value is the YAML's
