"""The shared stages of a run: tokenizer -> SFT policy -> preference pairs -> reward model.

`build_stages` builds (or loads from the cache) every stage a run needs, in that fixed order, and returns
them as one frozen `Stages`, like a torchtune recipe's `setup()`: the run calls it before it sets its
seed, and nothing trains on attribute access, so a run's numbers never depend on which code asked first.
Each stage is built once per content key (cache.py) and shared by every run and seed that uses the same
upstream configuration; the run's seed is not part of any key.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from align_lab.cache import StageCache, StageResult, stage_key
from align_lab.rewards import GoldReward, Verifier
from align_lab.run.numerics import numerics
from align_lab.run.pairs import build_preferences, env_fingerprint
from align_lab.tasks.base import Labelled, Pair
from align_lab.tasks.view import conversation_tokens, observation_renderer
from align_lab.train.memory import Dims, machine_memory, prompt_tokens, response_tokens, row_bytes, stage_plan
from align_lab.value_checks import ArtifactMissing

# Bump a stage's version whenever its code changes what it produces (preferences 2: inverse_cdf draws).
VERSIONS = {"tokenizer": 1, "sft": 2, "preferences": 2, "reward_model": 2, "teacher": 1}


def _fields(obj) -> dict:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else dict(vars(obj))


def reward_model_id(config) -> str:
    """A learned reward model's hyperparameters as one string: the run's reward models are found by it."""
    return json.dumps(_fields(config), sort_keys=True, default=str)


@dataclass(frozen=True)
class Stages:
    """The built stages of a run, read-only: what its context, reward and loops are made from."""

    task: object  # the task as configured
    model: object  # the model spec (models/): loads what the stages saved
    policy_task: object  # the task as the policy sees it (a pretrained model's chat template, limits)
    tokenizer: object
    sft_path: Path  # the SFT policy (also the reference), or the checkpoint when there is no SFT stage
    dims: Dims  # the policy's widths (train/memory/footprint.py)
    numerics: Mapping  # run/numerics.py, taken before the first stage
    results: Mapping[str, StageResult]  # each stage's key, hit and time, by stage name
    micro_batch_sizes: Mapping[str, int | None]  # rows per micro-batch each stage was built with
    preferences: list[Pair] | None = None  # the preference pairs (when the run needs them)
    samples: list[Labelled] | None = None  # unpaired labelled samples (KTO with algo.desirable_threshold)
    reward_models: Mapping[str, Path] = field(default_factory=dict)  # by reward_model_id
    rm_metrics: Mapping = field(default_factory=dict)  # the reward model stage's held-out metrics

    def raw_prompt(self, prompt: str) -> str:
        """The task's prompt text behind a policy prompt, for rewards with their own tokenizer."""
        return getattr(self.policy_task, "raw", lambda p: p)(prompt)

    def load_policy(self):
        """A fresh copy of the SFT policy (the starting point and the frozen reference)."""
        return self.model.load_causal_lm(self.sft_path)

    def load_reference(self):
        """The frozen reference: the SFT policy, or model.reference's checkpoint."""
        return self.model.load_causal_lm(self.model.reference_path(self.sft_path))

    @property
    def critic_start(self) -> Path:
        """The critic's body when algo.critic_init=sft: the SFT policy, or model.critic's checkpoint."""
        return self.model.critic_path(self.sft_path)

    def load_reward_model(self, config):
        """The reward model that `config` (reward=learned_rm) trained; it must have been asked for."""
        path = self.reward_models.get(reward_model_id(config))
        if path is None:
            raise KeyError(f"no reward model stage was built for {reward_model_id(config)}")
        return self.model.load_reward_model(path)


def sequence_bytes(dims: Dims, task, logits: bool = True, env=None) -> int:
    """Activation bytes of one prompt + response of `task` (a conversation with a multi-turn `env`)
    through the policy's body, kept for a backward pass (train/memory/footprint.py row_bytes)."""
    return row_bytes(dims, prompt_tokens(task), response_tokens(task, env), logits)


def no_check(record: str, stage: str, key: str, inputs: dict) -> None:
    """A new run's stage check: any stage will do (a resume's: run/resume_stages.py resume_stage_check)."""


def not_built(stage: str, key: str, root: Path, out: Path) -> None:
    """The build of a rank other than 0, which finds its stages built: a key that is not there was
    deleted since rank 0 built it, or the ranks differ in the stage code or its inputs (the checkout
    changed under the run). One line (seventeenth hunt: a ~100-line traceback that guessed the checkout
    where the entry was simply deleted)."""
    raise ArtifactMissing(
        f"stage {stage}: key {key} is not in {root}, where rank 0 built the run's stages: deleted since (a "
        "cache entry removed while the run used it: rerun the same command, the stage is built again), or "
        "this rank's stage code or inputs differ from rank 0's (the checkout changed as the run started)"
    )


@dataclass
class StageBuild:
    """Asks the cache for stages and records what it served, while build_stages runs."""

    cache: StageCache
    progress: Callable
    micro_batch_size: object  # train.micro_batch_size as set: "auto", rows, or None
    memory: int | None  # bytes "auto" divides (the node's, for the main process alone; None: the machine's)
    numerics: dict
    may_build: bool = True  # False on ranks other than 0: rank 0 has built every stage
    check: Callable = no_check  # (record, stage, key, inputs) before each stage is looked up or built
    results: dict[str, StageResult] = field(default_factory=dict)
    micro_batch_sizes: dict[str, int | None] = field(default_factory=dict)
    dims: Dims | None = None  # the policy's, once its config is known (the stages' models share them)

    def stage_numerics(self, stage: str) -> dict:
        """numerics() with the stage's rows per micro-batch: float rounding only, but rounding grows
        through training, so it is in the key like the thread count (None where a stage has none)."""
        return {**self.numerics, "micro_batch_size": self.micro_batch_sizes.get(stage)}

    def get(self, stage: str, inputs: dict, build: Callable[[Path], None], record: str | None = None) -> Path:
        """The stage's folder, built if missing; its result recorded under `record` (default: `stage`)."""
        inputs = {**inputs, "numerics": self.stage_numerics(stage)}
        key = stage_key(stage, VERSIONS[stage], inputs)
        self.check(record or stage, stage, key, inputs)  # a resume on other stages stops before any build
        if not self.may_build:
            build = partial(not_built, stage, key, self.cache.root)
        result = self.results[record or stage] = self.cache.get(stage, VERSIONS[stage], inputs, build)
        return result.path

    @property
    def budget(self) -> int:
        """The bytes "auto" divides."""
        return self.memory or machine_memory()

    def resolve(self, stage: str, rows: int, bytes_per_row: int) -> int | None:
        """train.micro_batch_size resolved for a stage's forwards; recorded (it is in the stage's key)."""
        chosen = stage_plan(stage, self.micro_batch_size, self.dims, rows, bytes_per_row, self.budget)
        self.micro_batch_sizes[stage] = chosen
        return chosen


def build_tokenizer(b: StageBuild, task, model):
    """1. The tokenizer: trained on the task's corpus, or a pretrained checkpoint's own (no stage)."""
    from align_lab.models.tokenizer import load_tokenizer, train_tokenizer

    if model.pretrained:
        tok = model.load_tokenizer()
    else:
        inputs = {"task": task.fingerprint()}
        tok = load_tokenizer(b.get("tokenizer", inputs, lambda out: train_tokenizer(task.corpus(), out)))
    tok.padding_side = "left"
    return tok


def conversation_inputs(policy_task, env) -> dict:
    """The SFT key's env entry: a multi-turn env when the demonstrations are conversations (it renders
    their observations and bounds their length); none otherwise (the default run's key as before)."""
    fingerprint = env_fingerprint(env)
    if fingerprint is None or all(isinstance(r, str) for _, r in policy_task.demonstrations()):
        return {}
    return {"env": fingerprint}


def demonstration_bytes(dims: Dims, tokenizer, demos: list, limits: tuple[int, int], render) -> int:
    """Activation bytes of the longest demonstration as SFT encodes it (prompt and response, each
    within `limits`): the SFT stage's rows are as long as its data, not the task's token limits (a
    calculator conversation of ~20 tokens against a 256-token budget: 16 rows per forward, not 1)."""
    from align_lab.models.sequences import encode_prompts
    from align_lab.train.sft import encode_demonstrations

    prompt_ids, _ = encode_prompts(tokenizer, [p for p, _ in demos], limits[0])
    response_ids, _, _ = encode_demonstrations(tokenizer, [r for _, r in demos], limits[1], render)
    return row_bytes(dims, prompt_ids.shape[1], response_ids.shape[1])


def check_demonstrations(demos: list, task, env) -> None:
    """Conversation demonstrations need a multi-turn env: without one they would be cut to one turn."""
    if env_fingerprint(env) is None and any(not isinstance(r, str) for _, r in demos):
        raise ValueError(
            f"task={getattr(task, 'name', type(task).__name__)}: its demonstrations are conversations; "
            "they need a multi-turn env (env=guess_number, or env=calculator for arith_word's)"
        )


def build_sft(b: StageBuild, task, model, sft, tokenizer, policy_task, dims, env=None, record=None) -> Path:
    """2. The SFT policy (also the reference; `record`: another name, "teacher": run/teacher.py); a pretrained
    checkpoint is its own unless task.sft. Conversation demonstrations train on policy tokens, observations
    rendered for `env` (in the key)."""
    from align_lab.train.sft import train_sft

    demos = policy_task.demonstrations()
    check_demonstrations(demos, policy_task, env)
    limits = (policy_task.max_prompt_tokens, conversation_tokens(policy_task, env))
    render = observation_renderer(policy_task, env)
    micro = b.resolve("sft", sft.batch_size, demonstration_bytes(dims, tokenizer, demos, limits, render))
    inputs = {
        "tokenizer": None if model.pretrained else b.results["tokenizer"].key,
        "model": model.fingerprint(),
        "sft": _fields(sft),
        "task": task.fingerprint(),
        **conversation_inputs(policy_task, env),
    }

    def build(out: Path) -> None:
        torch.manual_seed(sft.seed)
        policy = model.init_policy(tokenizer)
        steps = sft.epochs * -(-len(demos) // sft.batch_size)
        with b.progress(total=steps, desc="sft") as bar:
            loss = train_sft(policy, tokenizer, demos, sft, *limits, bar, micro, render)
        policy.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        (out / "metrics.json").write_text(json.dumps({"sft/final_loss": loss}))

    return b.get("sft", inputs, build, record)


def build_reward_model(b: StageBuild, config, model, tokenizer, policy_task, dims, sft_path, pairs, keys):
    """4. A Bradley-Terry reward model (reward=learned_rm `config`), initialised from the SFT backbone
    and trained on the preference pairs; `keys`: what identifies (the pairs, the SFT policy)."""
    from align_lab.train.reward_model import train_reward_model

    heldout = max(1, int(len(pairs) * config.heldout_fraction))
    pair_bytes = 2 * sequence_bytes(dims, policy_task, logits=False)  # a scalar head: no vocabulary logits
    micro = b.resolve("reward_model", max(config.batch_size, heldout), pair_bytes)
    inputs = {"preferences": keys[0], "sft": keys[1], "model": model.fingerprint(), "rm": _fields(config)}

    def build(out: Path) -> None:
        torch.manual_seed(config.seed)  # the new head's draw must not depend on what ran before
        rm = model.init_reward_model(tokenizer, init_from=sft_path)
        steps = config.epochs * -(-(len(pairs) - heldout) // config.batch_size)
        limits = (policy_task.max_prompt_tokens, policy_task.max_response_tokens)
        with b.progress(total=steps, desc="reward model") as bar:
            stats = train_reward_model(rm, tokenizer, pairs, config, *limits, bar, micro)
        rm.save_pretrained(str(out))
        (out / "metrics.json").write_text(json.dumps(stats))

    return b.get("reward_model", inputs, build)


def build_stages(
    task,
    model,
    sft,
    cache: StageCache,
    progress: Callable,
    micro_batch_size="auto",
    memory: int | None = None,
    preferences: bool = False,
    reward_models: tuple = (),
    may_build: bool = True,
    env=None,
    desirable_threshold: float | None = None,
    reward=None,
    check: Callable = no_check,
) -> Stages:
    """Every stage a run needs, built (or loaded) in a fixed order: tokenizer, SFT policy, the preference
    pairs when `preferences` or a reward model asks for them, each of `reward_models` (learned_rm configs),
    KTO's unpaired samples last with `desirable_threshold` (labelled by `reward`; None: gold). `memory`:
    the bytes "auto" divides (default: the machine's); `may_build=False`: only load (ranks > 0); `env`: the
    multi-turn env (None: single turn); `check`: StageBuild.check. Call it first: it seeds."""
    b = StageBuild(cache, progress, micro_batch_size, memory, numerics(None), may_build, check)
    tokenizer = build_tokenizer(b, task, model)
    policy_task = model.view(task, tokenizer)
    dims = b.dims = Dims.of(model.hf_config(tokenizer))
    needs_sft = not model.pretrained or task.sft
    if needs_sft:
        sft_path = build_sft(b, task, model, sft, tokenizer, policy_task, dims, env)
    else:
        sft_path = Path(model.path("name_or_path"))
    policy_key = b.results["sft"].key if needs_sft else model.fingerprint()
    pairs, rms, rm_metrics = None, {}, {}
    if preferences or reward_models:
        pairs = build_preferences(b, task, model, sft, tokenizer, policy_task, sft_path, policy_key, env)
    pairs_key = b.results["preferences"].key if "preferences" in b.results else task.fingerprint()
    for config in reward_models:
        keys = (pairs_key, policy_key)
        path = build_reward_model(b, config, model, tokenizer, policy_task, dims, sft_path, pairs, keys)
        rms[reward_model_id(config)] = path
        rm_metrics |= json.loads((path / "metrics.json").read_text())
    stages = Stages(
        task=task,
        model=model,
        policy_task=policy_task,
        tokenizer=tokenizer,
        sft_path=sft_path,
        dims=dims,
        numerics=b.numerics,
        results=dict(b.results),
        micro_batch_sizes=dict(b.micro_batch_sizes),
        preferences=pairs,
        reward_models=rms,
        rm_metrics=rm_metrics,
    )
    if desirable_threshold is None:
        return stages
    stage = (b, task, model, sft, tokenizer, policy_task, sft_path, policy_key, env)
    labeller = unpaired_labeller(reward, stages)  # after the reward models: a learned one labels
    samples = build_preferences(*stage, threshold=desirable_threshold, labeller=labeller)
    return dataclasses.replace(stages, samples=samples, results=dict(b.results))


def unpaired_labeller(reward, stages: Stages) -> tuple[dict, Callable] | None:
    """What labels KTO's unpaired samples (algo.desirable_threshold): the run's reward source `reward`,
    as (its identity for the stage's key, a factory of its scorer on `stages`); None for the task's
    gold reward (reward=gold, reward=verifier, or no reward given: the stage's key as before)."""
    if reward is None or isinstance(reward, GoldReward | Verifier):
        return None
    identity = {"reward": f"{type(reward).__module__}.{type(reward).__qualname__}", "config": _fields(reward)}
    return identity, partial(reward.scorer, stages)
