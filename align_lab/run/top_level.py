"""The top-level keys of a run's resolved config that no component builds (study, claims, stages, ...)
and every `seed`: each of its type and range, one line naming the key, before any compute
(align_lab/run/admission.py calls them)."""

from __future__ import annotations

from align_lab.config import ConfigError

SEED_RANGE = (-(2**63), 2**64)  # torch.manual_seed's


def _is_name(value) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


# the top-level keys no component builds: what each must be, and the test (a wrong type read later was a
# traceback far from the key, `stages=abc`, or another key's error, `study=[a]` as tracker.group, or a
# silent truth, `resume_changed_code=abc` resuming changed code as if true)
TOP_LEVEL = {
    "stages": ("a mapping, e.g. {seed: shared}", lambda v: isinstance(v, dict)),
    "study": ("a name (a string)", _is_name),
    "compare_by": ("a key or group name, or several comma-separated", lambda v: isinstance(v, str)),
    "claims": (
        'a list of claims, e.g. ["rloo > ppo on eval/gold_reward"]',
        lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v),
    ),
    "normalise": ("null or a mapping of task to {metric, low, high}", lambda v: isinstance(v, dict | None)),
    "resume_changed_code": ("true or false", lambda v: isinstance(v, bool)),
    "resume_changed_inputs": ("true or false", lambda v: isinstance(v, bool)),
    "tune": (
        "null or a mapping with trials and space (docs/studies.md)",
        lambda v: isinstance(v, dict | None),
    ),
    "tuning_split": (
        "null or a share in (0, 1) of the training prompts",
        lambda v: v is None or (isinstance(v, float | int) and not isinstance(v, bool) and 0 < v < 1),
    ),
    "cache_dir": ("null or a folder path", lambda v: v is None or isinstance(v, str)),
}


def check_top_level(config: dict) -> None:
    """The top-level keys of the resolved config each of the type TOP_LEVEL says, before any compute."""
    for key, (allowed, ok) in TOP_LEVEL.items():
        if key in config and not ok(config[key]):
            raise ConfigError(f"{key}={config[key]}: must be {allowed}")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_seeds(config, path: str = "") -> None:
    """Every integer `seed` of the resolved config within torch's seed range, before any compute (1e30
    too: a float with an integer value, which config.integer takes)."""
    if isinstance(config, dict):
        for key, value in config.items():
            check_seeds(value, f"{path}.{key}" if path else str(key))
    elif path.split(".")[-1] == "seed" and isinstance(config, str) and _number(config):  # seed='1': text
        raise ConfigError(  # recorded '1', "another config" than seed=1 (forty-fourth hunt, case 15)
            f"{path}={config!r}: must be an integer, not a text: write {path}={config.strip()} unquoted"
        )
    elif (
        path.split(".")[-1] == "seed"
        and isinstance(config, int | float)
        and not isinstance(config, bool)
        and float(config).is_integer()
    ):
        low, high = SEED_RANGE
        if not low <= config < high:
            raise ConfigError(f"{path}={config}: must be an integer in [-2^63, 2^64) (torch's seed range)")
        if isinstance(config, float):  # seed=1e0 ran seed 1, its config recorded 1.0: "another config"
            raise ConfigError(  # than seed=1, and compare counted the two as two seeds (43rd hunt, 28-29)
                f"{path}={config}: must be an integer written as one ({path}={int(config)}): the run's "
                f"config would record {config}, another config than {path}={int(config)}"
            )
