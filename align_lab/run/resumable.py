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
    "task.verifier_timeout_s",  # how long your verifier is waited for (user_timeouts.py): no score changes
)
SOURCE_URL = re.compile(r"reward\.components\.[^.]+\.source\.(url|timeout_s|retries|backoff_s)")
# of those, what a resume keeps: what the run computes and how its checkpoint is laid out, not where it
# runs (eighteenth hunt: a DeepSpeed checkpoint resumed with backend=torch, and the reverse, were 53-91-line
# tracebacks; an fp32 run resumed with dtype=bf16 trained its last steps in bf16, recorded as a bf16 run)
KEPT_ON_RESUME = ("hardware.backend", "hardware.zero_stage", "hardware.dtype")
KEPT_BEFORE = ()  # what checkpoints written before KEPT_ON_RESUME kept of it: nothing (their digests)


def may_change(key: str, kept: tuple[str, ...] = KEPT_ON_RESUME) -> bool:
    """A dotted config key a resume may change: in MAY_CHANGE_ON_RESUME, or under one of its keys, and
    not `kept` nor above a kept key (`hardware` is walked into for its backend); a combined source's URL."""
    if key in kept or any(k.startswith(f"{key}.") for k in kept):
        return False
    parts = key.split(".")
    listed = any(".".join(parts[:i]) in MAY_CHANGE_ON_RESUME for i in range(1, len(parts) + 1))
    return listed or SOURCE_URL.fullmatch(key) is not None


def may_change_said() -> str:
    """MAY_CHANGE_ON_RESUME as a line says it, with what a resume keeps of them."""
    said = ", ".join(MAY_CHANGE_ON_RESUME)
    parent = KEPT_ON_RESUME[0].split(".")[0]
    return said.replace(parent, f"{parent} (not {', '.join(KEPT_ON_RESUME)})", 1)


def changed_key(old, new, prefix: str = "", skip=may_change) -> tuple[str, object, object] | None:
    """The first key (dotted) whose value differs between two configs, with both values; keys `skip`
    names (those under MAY_CHANGE_ON_RESUME) are skipped. None when they agree."""
    if skip(prefix):
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            found = changed_key(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key), skip)
            if found is not None:
                return found
        return None
    return None if old == new else (prefix, old, new)


# the reward keys that checkpoints written before they could change digested (`resumable_part`'s
# `digested`): before 06f07c6 the URL and how it is waited for, then how it is waited for alone
WAITING = (".timeout_s", ".retries", ".backoff_s")
DIGESTED_BEFORE = ((".url", *WAITING), WAITING)


def resumable_part(
    config, prefix: str = "", digested: tuple[str, ...] = (), kept: tuple[str, ...] = KEPT_ON_RESUME
):
    """The config less the keys under MAY_CHANGE_ON_RESUME: what a resume must keep (`digested`: the
    endings of such keys kept anyway, as checkpoints written before they could change digest them;
    `kept`: KEPT_ON_RESUME, or KEPT_BEFORE as older checkpoints digested their config)."""
    if not isinstance(config, dict):
        return config
    keys = {k: f"{prefix}.{k}" if prefix else str(k) for k in config}
    part = {k: v for k, v in config.items() if not may_change(keys[k], kept) or keys[k].endswith(digested)}
    return {k: resumable_part(v, keys[k], digested, kept) for k, v in part.items()}


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
