"""The preferences stage (run/stages.py step 3): the task's pairs, or samples of the SFT policy labelled
by the task (its annotator, or its verifier); with a multi-turn environment the samples are whole
conversations, stored as (role, text) turns. Also what of an environment goes into a stage's key."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from pathlib import Path

import torch

from align_lab.tasks.base import Labelled, labelled_from_json, pair_from_json
from align_lab.tasks.view import observation_renderer

# (policy, tokenizer, prompts, k, (max_response_tokens, max_prompt_tokens)) -> k samples per prompt, a
# prompt's contiguous: (prompts, answers the verifier reads, finished, what a pair stores: the response
# text, or the conversation [(role, text), ...] of a multi-turn episode)
Sampler = Callable[..., tuple[list, list, list, list]]


def env_fingerprint(env) -> dict | None:
    """What of a multi-turn env changes an artifact: its class and fields, the step timeout aside; None
    for no env or a single-turn one, so the default run's stage keys are what they were before envs."""
    if env is None or not getattr(env, "multi_turn", False):
        return None
    fields = dataclasses.asdict(env) if dataclasses.is_dataclass(env) else dict(vars(env))
    fields.pop("step_timeout_s", None)
    return {"env": f"{type(env).__module__}.{type(env).__qualname__}", **fields}


def single_turn_sampler() -> Sampler:
    """One response per sample from HF generate at temperature 1 (the stage's sampler before envs)."""
    from align_lab.rollout.hf import HFGenerate

    engine = HFGenerate(temperature=1.0)

    def sample(policy, tokenizer, prompts, k, limits):
        s = engine.sample(policy, tokenizer, prompts, k, *limits)
        return s.prompts, s.responses, s.finished, s.responses

    return sample


def conversation_sampler(env, render_observation, raw_prompt=lambda prompt: prompt) -> Sampler:
    """Whole episodes of `env` per sample, from HF sampling at temperature 1 played turn by turn
    (rollout/turns.py TurnEngine): each row's answer (what the verifier reads), whether it finished, and
    its turns [(role, text), ...] (decoded policy turns, observations before rendering)."""
    from align_lab.rollout.hf import HFGenerate
    from align_lab.rollout.turns import TurnEngine

    engine = TurnEngine(HFGenerate(temperature=1.0), env, type(env).__name__, render_observation, raw_prompt)

    def sample(policy, tokenizer, prompts, k, limits):
        s = engine.sample(policy, tokenizer, prompts, k, *limits)
        return s.prompts, s.responses, s.finished, s.conversations

    return sample


def threshold_labels(threshold: float) -> Callable:
    """A labeller of unpaired samples: each of a prompt's responses its own sample, desirable when its
    score (the run's reward; default its gold reward: the verifier's 0/1, or the task's reward) is above
    `threshold` (algo.desirable_threshold)."""

    def label(prompt: str, responses: list, gold: list[float], rng, scores=None) -> list[Labelled]:
        scores = gold if scores is None else scores
        rows = zip(responses, gold, scores, strict=True)
        return [Labelled(prompt, r, s > threshold, g, s) for r, g, s in rows]

    return label


def sample_pairs(b, policy, tokenizer, task, seed: int, sample: Sampler, label=None, score=None) -> list:
    """task.pair_samples samples (`sample`) of the SFT policy for task.n_pairs train prompts, labelled by
    `label` (default task.label_samples: its annotator or verifier, into pairs), handed `score`'s
    values too when given (the run's reward, (prompts, answers, finished) -> (B,)); ValueError when
    none gives a row."""
    label = label or task.label_samples
    rng = random.Random(seed)
    torch.manual_seed(seed)
    train_prompts = task.prompts("train")
    prompts = [rng.choice(train_prompts) for _ in range(task.n_pairs)]
    k = task.pair_samples  # responses per prompt, labelled together by the task
    chunk = max(1, 512 // k)  # prompts per sampling call: 512 responses at most
    rows, scored = [], set()
    limits = (task.max_response_tokens, task.max_prompt_tokens)
    with b.progress(total=len(prompts), desc="preferences") as bar:
        for i in range(0, len(prompts), chunk):
            asked, answers, finished, samples = sample(policy, tokenizer, prompts[i : i + chunk], k, limits)
            gold = task.gold_reward(asked, answers, finished)
            scored.update(gold[:64])  # what the samples scored, for the line where none gave a row
            scores = None if score is None else score(asked, answers, finished).tolist()
            for j in range(0, len(asked), k):
                extra = {} if scores is None else {"scores": scores[j : j + k]}
                rows += label(asked[j], samples[j : j + k], gold[j : j + k], rng, **extra)
            bar.update(len(asked) // k)
    if not rows:  # fourteenth hunt: a ValueError's traceback, before any step
        from align_lab.value_checks import TrainsNothing

        raise TrainsNothing(no_pairs_line(len(prompts), len(set(prompts)), k, scored))
    return rows


def no_pairs_line(draws: int, distinct: int, k: int, scored: set) -> str:
    """The line where no sample of the SFT policy gave a pair: how many prompts it was (task.n_pairs
    draws of the training prompts), what the samples scored, and what can give a pair (thirty-third hunt,
    case 58: "none of 256 prompts" of a 36-question file, and "score with reward=verifier", already set
    and no help to DPO, whose pairs come whatever scores them)."""
    what = (
        f"every sample scored {next(iter(scored)):g}"
        if len(scored) == 1
        else "each prompt's samples scored alike"
    )
    return (
        f"preferences: none of {draws} draws (task.n_pairs) of the {distinct} training prompts x {k} samples "
        f"(task.pair_samples) of the SFT policy gave a pair: {what}; a pair is two samples of one prompt "
        "that score differently: raise task.pair_samples, or start from a policy that answers some right; "
        "pairs are made for reward=learned_rm's reward model (the default reward) and for the pairwise "
        "algorithms (DPO's family): an online algorithm with reward=verifier needs none"
    )


def check_labels(rows: list[Labelled], threshold: float) -> None:
    """Unpaired samples all on one side of the threshold teach KTO nothing to contrast: the run stops in
    one line (TrainsNothing) naming the key, its value and the range of the rewards the samples got."""
    from align_lab.value_checks import TrainsNothing

    desirable = sum(r.desirable for r in rows)
    if desirable in (0, len(rows)):
        side = "above" if desirable else "at or below"
        low, high = min(r.score for r in rows), max(r.score for r in rows)
        raise TrainsNothing(
            f"algo.desirable_threshold={threshold}: all {len(rows)} sampled responses' rewards, in "
            f"[{low:g}, {high:g}], are {side} it, so KTO has nothing to contrast; choose a threshold in "
            f"[{low:g}, {high:g})"
        )


def build_preferences(
    b,
    task,
    model,
    sft,
    tokenizer,
    policy_task,
    sft_path,
    policy_key,
    env=None,
    sample=None,
    threshold=None,
    labeller=None,
):
    """3. Preference pairs: the task's data, or task.pair_samples samples per prompt of the SFT policy
    (`sample`; default: single turn, or `env`'s conversations) labelled by the task. A multi-turn env
    is in the key; single-turn pairs' files are as before. With `threshold` (algo.desirable_threshold)
    the samples are unpaired instead, each labelled against it (threshold_labels; in the key) by its
    gold reward, or by `labeller` = (key, scorer factory): the run's reward (its key in the stage's)."""
    pairs = policy_task.preference_pairs()
    if pairs is not None and threshold is None:
        return pairs
    if sample is None:
        multi = env_fingerprint(env) is not None
        render = observation_renderer(policy_task, env)
        raw = getattr(policy_task, "raw", lambda prompt: prompt)  # the env starts from the task's own prompt
        sample = conversation_sampler(env, render, raw) if multi else single_turn_sampler()
    label = None if threshold is None else threshold_labels(threshold)
    name = "pairs.jsonl" if threshold is None else "samples.jsonl"

    def build(out: Path) -> None:
        policy = model.load_causal_lm(sft_path)
        seed = policy_task.world_seed + 2 + sft.seed  # per run with stages.seed=per_run
        score = None if labeller is None else labeller[1]()
        rows = sample_pairs(b, policy, tokenizer, policy_task, seed, sample, label, score)
        if threshold is not None:
            check_labels(rows, threshold)
        with open(out / name, "w") as f:
            for row in rows:
                f.write(json.dumps(dataclasses.asdict(row)) + "\n")

    inputs = {"sft": policy_key, "task": task.fingerprint()}
    if model.pretrained:  # the chat template changes the prompts
        inputs["model"] = model.fingerprint()
    if env_fingerprint(env) is not None:
        inputs["env"] = env_fingerprint(env)
    if threshold is not None:  # only then: the pairs' keys are as before
        inputs["unpaired"] = {"desirable_threshold": threshold} | ({} if labeller is None else labeller[0])
    from_json = pair_from_json if threshold is None else labelled_from_json
    record = "preferences" if threshold is None else "unpaired_samples"  # a run may build both
    with open(b.get("preferences", inputs, build, record) / name) as f:
        return [from_json(json.loads(line)) for line in f]
