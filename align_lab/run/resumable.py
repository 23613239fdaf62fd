"""What a resume may change of a run's config (its length, cadences, where it runs, how it is tracked, a
judge's address), and the part of a config a resume must keep: its digest is the run's identity."""

from __future__ import annotations

import hashlib
import json
import re

# what a user may change when resuming a run: its length, cadences, where it runs and how it is tracked,
# and whether rollouts are sampled on a thread
MAY_CHANGE_ON_RESUME = (
    "train.steps",
    "train.eval_every",
    "train.checkpoint_every",
    "train.keep_checkpoint",
    "train.keep_eval_samples",  # what is written, not what is computed
    "train.eval_text_chars",
    "train.async_rollouts",  # the same numbers either way (train/staleness.py)
    "train.stop_at",  # when it ends, as train.steps; not once it has stopped (run/folder_checks.py)
    "hardware",
    "tracker",
    # a judge server's address (a requeued job's server on another node or port): what answers there is
    # asked again on resume, the checkpoint's rows (user_probes.py), a combined source's too; and how it
    # is waited for, which changes no score (a slower judge after a requeue: fifteenth hunt)
    "reward.url",
    "reward.timeout_s",
    "reward.retries",
    "reward.backoff_s",
)
SOURCE_URL = re.compile(r"reward\.components\.[^.]+\.source\.(url|timeout_s|retries|backoff_s)")


def may_change(key: str) -> bool:
    """A dotted config key a resume may change (MAY_CHANGE_ON_RESUME, a combined source's reward URL)."""
    return key in MAY_CHANGE_ON_RESUME or SOURCE_URL.fullmatch(key) is not None


def changed_key(old, new, prefix: str = "") -> tuple[str, object, object] | None:
    """The first key (dotted) whose value differs between two configs, with both values; keys under
    MAY_CHANGE_ON_RESUME are skipped. None when they agree."""
    if may_change(prefix):
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            found = changed_key(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
            if found is not None:
                return found
        return None
    return None if old == new else (prefix, old, new)


# the reward keys that checkpoints written before they could change digested (`resumable_part`'s
# `digested`): before 06f07c6 the URL and how it is waited for, then how it is waited for alone
WAITING = (".timeout_s", ".retries", ".backoff_s")
DIGESTED_BEFORE = ((".url", *WAITING), WAITING)


def resumable_part(config, prefix: str = "", digested: tuple[str, ...] = ()):
    """The config less the keys under MAY_CHANGE_ON_RESUME: what a resume must keep (`digested`: the
    endings of such keys kept anyway, as checkpoints written before they could change digest them)."""
    if not isinstance(config, dict):
        return config
    keys = {k: f"{prefix}.{k}" if prefix else str(k) for k in config}
    kept = {k: v for k, v in config.items() if not may_change(keys[k]) or keys[k].endswith(digested)}
    return {k: resumable_part(v, keys[k], digested) for k, v in kept.items()}


DEFAULT_ENV = {"_target_": "align_lab.envs.single_turn.SingleTurn"}
RESUME_CHANGED_CODE = "resume_changed_code"  # true: resume a checkpoint of other training code
RESUME_CHANGED_INPUTS = "resume_changed_inputs"  # true: resume a checkpoint of other data, verifier, ...
PERMISSIONS = (RESUME_CHANGED_CODE, RESUME_CHANGED_INPUTS)


def without_default_env(config: dict) -> dict:
    """The config less `env` when it is the default single_turn: as runs wrote it before environments
    existed, so their digests and resume checks still hold; and less `resume_changed_code` and
    `resume_changed_inputs`, permissions of one resume, not settings of the run."""
    return {k: v for k, v in config.items() if not (k == "env" and v == DEFAULT_ENV) and k not in PERMISSIONS}


def config_digest(config: dict) -> str:
    """sha256 of the resolved config (canonical JSON), 16 hex chars: the identity of a run's settings."""
    from align_lab.aliases import flat_config

    # over the old flat names of a part's node (algo.clip_high, not algo.clip.high): a run recorded before
    # the rename digests as it did, so its resume and its completed summary are this run's
    canonical = json.dumps(flat_config(without_default_env(config)), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
