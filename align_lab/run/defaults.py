"""The defaults a run's composed config takes before it is specified (run/admission.py): the stage seed
(`stages.seed`), the model preset's optimiser scale (`model.algo_defaults`) and an algorithm's keys on one
model (conf/algo_on_model/), each recorded where it came from. A key the user set always wins."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, open_dict

from align_lab.config import SPECIALISED, ConfigError, specialisation


def override_keys(overrides) -> set[str]:
    """The keys a list of Hydra overrides sets ("algo.lr=1e-5", "+x=1", "++y=2" -> algo.lr, x, y)."""
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}


STAGE_SEEDS = ("shared", "per_run")


def apply_stage_seed(cfg: DictConfig) -> str:
    """`stages.seed`: shared (default) builds the SFT policy, the preference pairs and the reward model
    once, from sft.seed and reward.seed, for every run seed, so a study's CIs cover the randomness of
    policy optimisation alone; per_run sets those seeds to the run's `seed` (the stages are then cached
    per seed), so the CIs cover the whole pipeline. Returns the setting."""
    setting = cfg.get("stages", {}).get("seed", "shared")
    if setting not in STAGE_SEEDS:
        raise ConfigError(f"stages.seed={setting}: must be one of {', '.join(STAGE_SEEDS)}")
    if setting == "per_run":
        with open_dict(cfg):
            cfg.sft.seed = cfg.seed
            for node in _with_seed(cfg.get("reward")):  # a learned reward model, or one of a combination
                node.seed = cfg.seed
    return setting


def _with_seed(node) -> list:
    """Every mapping below `node` (itself included) that has a `seed` key."""
    if not isinstance(node, DictConfig):
        return [item for child in node for item in _with_seed(child)] if isinstance(node, ListConfig) else []
    found = [node] if "seed" in node else []
    return found + [item for key in node if key != "seed" for item in _with_seed(node[key])]


def apply_model_defaults(cfg: DictConfig, overrides, model_name: str | None) -> dict[str, str]:
    """Puts the model preset's optimiser scale (`model.algo_defaults`: e.g. lr, critic_lr, kl_coef) into
    every `algo.<key>` the algorithm has and the user did not set (`overrides`: the command line's, or a
    sweep's per-run overrides). Returns where each value came from, {"algo.lr": "model=smollm2_135m"},
    for the run record. A key the algorithm lacks (critic_lr without a critic) is left alone, and so is
    a term the algorithm turns off (kl_coef 0: DAPO, CISPO, OPD keep their papers' no KL). A value
    written into a config file (a sweep's `algo: {lr: ...}`) is not an override: set it on the command
    line or in `hydra.sweeper.params` to win over the preset."""
    preset = cfg.get("model", {}).get("algo_defaults") or {}
    if not preset or "algo" not in cfg:
        return {}
    chosen = override_keys(overrides)
    applied = {}
    with open_dict(cfg):
        for key, value in preset.items():
            if key in cfg.algo and f"algo.{key}" not in chosen and cfg.algo[key] != 0:
                cfg.algo[key] = value
                applied[f"algo.{key}"] = f"model={model_name}"
    return applied


def apply_specialised_defaults(cfg: DictConfig, overrides, names: dict) -> dict[str, str]:
    """Where the run's algo keys come from conf/algo_on_model/<algo>_<model>.yaml (an algorithm's keys on
    one model, where its paper's defaults cannot work there: sdpo on the toy world's model): {"algo.kl_coef":
    "algo_on_model=sdpo_tiny_llama"} for each key of the file that still has its value (the command line or
    a sweep file did not change it), for the run record. Hydra has already merged the file."""
    import yaml

    path = specialisation(names)
    if path is None or "algo" not in cfg:
        return {}
    chosen = override_keys(overrides)
    values = yaml.safe_load(path.read_text()) or {}
    source = f"{SPECIALISED}={names[SPECIALISED]}"
    return {
        f"algo.{k}": source
        for k, v in values.items()
        if f"algo.{k}" not in chosen and k in cfg.algo and cfg.algo[k] == v
    }


ONLINE_ONLY = {"train.rollout_size": "each step takes train.minibatch_size pairs"}  # what else sizes a step


def unread_by_the_algorithm(spec, overrides) -> str | None:
    """The note for a key the command line sets that the run's algorithm does not read: train.rollout_size
    under a pairwise algorithm (`algo=dpo train.rollout_size=7` ran as if unset, unsaid: fortieth hunt,
    case 69). A note, not a refusal: a sweep over algorithms sets it for its online arms."""
    from align_lab.algorithms.base import OnlineAlgorithm

    if isinstance(spec.algo, OnlineAlgorithm):
        return None
    unread = sorted(override_keys(overrides) & set(ONLINE_ONLY))
    if not unread:
        return None
    name = spec.names.get("algo", type(spec.algo).__name__)
    return (
        f"align_lab: note: {unread[0]} is not read by algo={name}, a pairwise algorithm ("
        f"{ONLINE_ONLY[unread[0]]}); the run goes on as if it were unset"
    )
