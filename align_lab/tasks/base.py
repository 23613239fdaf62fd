"""The Task contract: prompts, demonstrations, a gold reward and a preference annotator."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Pair:
    """One preference pair; `gold_*` are the hidden gold rewards (for analysis, never for training),
    NaN for pairs from a dataset, which has none."""

    prompt: str
    chosen: str | list[tuple[str, str]]  # a response, or a conversation [(role, text), ...] (multi-turn)
    rejected: str | list[tuple[str, str]]
    gold_chosen: float = math.nan
    gold_rejected: float = math.nan


@dataclass(frozen=True)
class Labelled:
    """One unpaired sample labelled desirable or not (KTO's data, TRL's (prompt, completion, label) rows);
    `gold` is its hidden gold reward (for analysis, never for training), `score` the run's reward that
    labelled it (algo.desirable_threshold: desirable when score > threshold)."""

    prompt: str
    response: str | list[tuple[str, str]]  # a response, or a conversation [(role, text), ...]
    desirable: bool
    gold: float = math.nan
    score: float = math.nan


def labelled_from_json(row: dict) -> Labelled:
    """A Labelled from its JSON row (dataclasses.asdict): a conversation's turns back to tuples; a row
    without a score was labelled by its gold reward."""
    response = row["response"]
    turns = response if isinstance(response, str) else [tuple(t) for t in response]
    return Labelled(**{"score": row.get("gold", math.nan), **row, "response": turns})


def pair_from_json(row: dict) -> Pair:
    """A Pair from its JSON row (dataclasses.asdict): a conversation's turns back to (role, text) tuples."""
    turns = {k: [tuple(t) for t in row[k]] for k in ("chosen", "rejected") if isinstance(row[k], list)}
    return Pair(**{**row, **turns})


class Task(Protocol):
    """What the stages and loops need from a task; text in, floats out."""

    verifiable: bool  # True when gold_reward is an exact checker (a reward=verifier may use it)
    has_gold_reward: bool  # False for dataset tasks: evaluation reports no gold metrics
    sft: bool  # False: a pretrained model's checkpoint is the SFT policy (no SFT stage)
    max_prompt_tokens: int  # dataset tasks have none: the pretrained model's limits apply
    max_response_tokens: int

    def fingerprint(self) -> dict:
        """Everything that defines the task's data: it goes into every stage's cache key."""
        ...

    def corpus(self) -> list[str]:
        """Text the tokenizer is trained on."""
        ...

    def prompts(self, split: str) -> list[str]:
        """Prompts of split "train" or "eval" (held out)."""
        ...

    def demonstrations(self) -> list[tuple[str, str | list[tuple[str, str]]]]:
        """(prompt, response) pairs for supervised fine-tuning; a response may be a conversation
        [("policy", text), ("env", text), ...] (multi-turn: SFT trains on the policy turns)."""
        ...

    def preference_pairs(self) -> list[Pair] | None:
        """Pairs from data; None: the world samples SFT pairs and labels them with annotate()."""
        ...

    def references(self, split: str) -> list[str] | None:
        """A reference response per prompt of `split` (win rates against them), or None."""
        ...

    def gold_reward(self, prompts: list[str], responses: list[str], finished: list[bool]) -> list[float]:
        """The hidden gold reward r*(x, y); `finished` is False for a response cut before EOS."""
        ...

    def annotate(self, gold_a: float, gold_b: float, rng: random.Random) -> bool:
        """True if the annotator prefers a over b."""
        ...


@dataclass
class BradleyTerryAnnotator:
    """Labels a pair with P(a > b) = sigmoid(bt_beta * (r*(a) - r*(b))), then flips it w.p. label_noise."""

    bt_beta: float = 10.0
    label_noise: float = 0.1

    def __post_init__(self) -> None:
        if self.bt_beta <= 0:
            raise ValueError(f"annotator.bt_beta={self.bt_beta}: must be > 0")  # built inside task
        if not 0 <= self.label_noise < 0.5:
            raise ValueError(f"annotator.label_noise={self.label_noise}: must be in [0, 0.5)")

    def __call__(self, gold_a: float, gold_b: float, rng: random.Random) -> bool:
        p = 1.0 / (1.0 + math.exp(-self.bt_beta * (gold_a - gold_b)))
        prefers_a = rng.random() < p
        return prefers_a != (rng.random() < self.label_noise)


class GeneratedTask:
    """What the tasks generated from `world_seed` share (toy_prefs, toy_arith, arith_word): pairs are
    sampled from the policy and labelled by `annotator`, there are no reference responses, and every
    public field defines the data, so all of them make the fingerprint. `name` is the task's config name."""

    name: str
    annotator: BradleyTerryAnnotator

    def _build_annotator(self) -> None:
        if isinstance(self.annotator, dict):  # built without Hydra
            self.annotator = BradleyTerryAnnotator(**self.annotator)

    # keys added after stages were cached, with the value that gives the data of before: left out of the
    # fingerprint at that value, so the runs that do not set them keep their stage keys
    quiet_defaults: dict = {}

    def fingerprint(self) -> dict:
        quiet = self.quiet_defaults
        fields = {
            k: v
            for k, v in vars(self).items()
            if not k.startswith("_") and not (k in quiet and v == quiet[k])
        }
        fields["annotator"] = vars(self.annotator)
        return {"task": self.name, **fields}

    pair_samples = 2  # responses sampled per prompt for the preferences stage (run/stages.py)

    def preference_pairs(self) -> None:
        return None  # sampled from the policy and labelled by label_samples (run/stages.py)

    def references(self, split: str) -> None:
        return None

    def annotate(self, gold_a: float, gold_b: float, rng: random.Random) -> bool:
        return self.annotator(gold_a, gold_b, rng)

    def label_samples(self, prompt: str, responses: list[str], gold: list[float], rng) -> list[Pair]:
        """The pairs the annotator makes of `pair_samples` responses to one prompt: here one, the two
        responses ordered by a Bradley-Terry draw on their gold rewards (label noise included)."""
        a_wins = self.annotate(gold[0], gold[1], rng)
        w, l = (0, 1) if a_wins else (1, 0)
        return [Pair(prompt, responses[w], responses[l], gold[w], gold[l])]


def verified_pairs(prompt: str, responses: list[str], gold: list[float], rng: random.Random) -> list[Pair]:
    """Pairs of a verifiable task's own samples labelled by its verifier: a correct response (gold 1)
    over a wrong one, drawn at random among each; none when all are right or all wrong (no contrast)."""
    right = [i for i, g in enumerate(gold) if g > 0]
    wrong = [i for i, g in enumerate(gold) if g <= 0]
    if not right or not wrong:
        return []
    w, l = rng.choice(right), rng.choice(wrong)
    return [Pair(prompt, responses[w], responses[l], gold[w], gold[l])]


def held_out_split(items: list, eval_fraction: float, rng: random.Random) -> dict[str, list]:
    """{"eval": a shuffled eval_fraction of items (at least one), "train": the rest}, each sorted."""
    items = list(items)
    rng.shuffle(items)
    n_eval = max(1, round(len(items) * eval_fraction))
    return {"eval": sorted(items[:n_eval]), "train": sorted(items[n_eval:])}


def noisy_demonstrations(
    prompts: list[str], n: int, seed: int, respond: Callable[[str, random.Random], str]
) -> list[tuple[str, str]]:
    """n (prompt, response) pairs: a prompt drawn at random, then a noisy expert's response to it."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt = rng.choice(prompts)
        out.append((prompt, respond(prompt, rng)))
    return out
