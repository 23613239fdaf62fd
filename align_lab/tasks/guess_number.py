"""guess_number: a multi-turn game on the toy world. The policy guesses a secret number, the environment
(envs/guess_number.py, env=guess_number) answers "higher", "lower" or "right"; binary search wins.

A prompt is "game 3 7 : guess my number from one to eight"; the secret is a deterministic function of the
prompt (`secret`), so every run, the environment and the task agree on it; held-out evaluation games
have game ids never trained on. The gold reward reads the episode's answer: the last guess.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from align_lab.tasks.base import BradleyTerryAnnotator, GeneratedTask, Pair, held_out_split, verified_pairs
from align_lab.tasks.toy_arith import DIGITS, spell

WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
FEEDBACK = ("higher", "lower", "right")
INVALID = "invalid"  # the environment's answer to a turn that is not a number word
PROMPT_WORDS = ["game", ":", "guess", "my", "number", "from", "to"]


def game_prompt(game: int, top: int) -> str:
    """game 12, top 8 -> "game 1 2 : guess my number from one to eight"."""
    return f"game {spell(game)} : guess my number from one to {WORDS[top - 1]}"


def top_of(prompt: str) -> int:
    """The largest number a game allows, read from its prompt's last word."""
    return WORDS.index(prompt.split()[-1]) + 1


def secret(prompt: str) -> int:
    """The game's secret in [1, top]: a hash of the prompt text (no state, no seed: the same for the task,
    the environment and every run)."""
    digest = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
    return 1 + digest % top_of(prompt)


def guess_of(turn: str) -> int | None:
    """ "five" -> 5; None when the turn is not exactly one number word."""
    words = turn.split()
    return WORDS.index(words[0]) + 1 if len(words) == 1 and words[0] in WORDS else None


def feedback(secret_number: int, turn: str) -> str:
    """The environment's word for a guess: higher (the secret is larger), lower, right, or invalid."""
    guess = guess_of(turn)
    if guess is None:
        return INVALID
    return "right" if guess == secret_number else ("higher" if secret_number > guess else "lower")


def binary_search(prompt: str, rng: random.Random) -> list[tuple[str, str]]:
    """A winning conversation: guess the middle of what is left (its lower or upper middle at random,
    so demonstrations vary), read the feedback, narrow, until right; ceil(log2(top + 1)) turns at most."""
    lo, hi, target, turns = 1, top_of(prompt), secret(prompt), []
    while True:
        mid = (lo + hi + rng.randint(0, 1)) // 2
        turns.append(("policy", WORDS[mid - 1]))
        word = feedback(target, WORDS[mid - 1])
        if word == "right":
            return turns
        turns.append(("env", word))
        lo, hi = (mid + 1, hi) if word == "higher" else (lo, mid - 1)


def random_search(prompt: str, rng: random.Random) -> list[tuple[str, str]]:
    """A conversation that reads the feedback but not well: each guess uniform over the numbers the
    feedback so far leaves possible, until right (the SFT policy then wins 4 turns only part of the time:
    room for reinforcement learning to find binary search)."""
    lo, hi, target, turns = 1, top_of(prompt), secret(prompt), []
    while True:
        guess = rng.randint(lo, hi)
        turns.append(("policy", WORDS[guess - 1]))
        word = feedback(target, WORDS[guess - 1])
        if word == "right":
            return turns
        turns.append(("env", word))
        lo, hi = (guess + 1, hi) if word == "higher" else (lo, guess - 1)


STRATEGIES = {"binary": binary_search, "random": random_search}


@dataclass
class GuessNumber(GeneratedTask):
    """Games "game <id> : guess my number from one to <top>"; the gold reward is 1 when the last guess
    is the secret. Train with env=guess_number (the environment that answers the guesses)."""

    world_seed: int = 0
    top: int = 8
    n_games: int = 200
    eval_fraction: float = 0.2
    n_demonstrations: int = 2048
    n_pairs: int = 256
    pair_samples: int = 4
    annotator: BradleyTerryAnnotator = field(default_factory=BradleyTerryAnnotator)
    max_response_tokens: int = 3  # per policy turn: a number word, EOS, one spare
    demonstrations_strategy: str = "random"  # random: uniform over what is left; binary: binary search

    name = "guess_number"
    verifiable = True
    has_gold_reward = True
    sft = True
    conversations = True  # demonstrations are games: they need a multi-turn env (run/fit.py)

    def __post_init__(self) -> None:
        if not 2 <= self.top <= len(WORDS):
            raise ValueError(f"top={self.top}: must be in [2, {len(WORDS)}]")
        if not 2 <= self.n_games <= 1000:
            raise ValueError(f"n_games={self.n_games}: must be in [2, 1000]")
        if not 0 < self.eval_fraction < 1:
            raise ValueError(f"eval_fraction={self.eval_fraction}: must be in (0, 1)")
        for key in ("n_demonstrations", "n_pairs"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be >= 1")
        if self.pair_samples < 2:
            raise ValueError(f"pair_samples={self.pair_samples}: must be >= 2 (a pair needs two responses)")
        if self.max_response_tokens < 2:
            raise ValueError(f"max_response_tokens={self.max_response_tokens}: must be >= 2 (a word and EOS)")
        if self.demonstrations_strategy not in STRATEGIES:
            strategy = self.demonstrations_strategy
            raise ValueError(f"demonstrations_strategy={strategy!r}: must be one of {sorted(STRATEGIES)}")
        self._build_annotator()
        games = list(range(self.n_games))
        self._split = held_out_split(games, self.eval_fraction, random.Random(self.world_seed))

    @property
    def max_prompt_tokens(self) -> int:
        return 3 + len(str(self.n_games - 1)) + 7  # BOS game <digits> : guess my number from one to <top>

    def corpus(self) -> list[str]:
        return [" ".join(DIGITS + PROMPT_WORDS + WORDS + list(FEEDBACK) + [INVALID])]

    def prompts(self, split: str) -> list[str]:
        return [game_prompt(g, self.top) for g in self._split[split]]

    def gold_reward(self, prompts: list[str], responses: list[str], finished: list[bool]) -> list[float]:
        """1 when the episode's answer (its last guess, ended by EOS) is the secret, else 0."""
        return [
            float(f and feedback(secret(p), r) == "right")
            for p, r, f in zip(prompts, responses, finished, strict=True)
        ]

    def label_samples(self, prompt: str, responses: list, gold: list[float], rng) -> list[Pair]:
        """A won game over a lost one (the verifier's label, no noise)."""
        return verified_pairs(prompt, responses, gold, rng)

    def demonstrations(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """n_demonstrations conversations (demonstrations_strategy) on train games drawn at random."""
        rng = random.Random(self.world_seed + 1)
        prompts = self.prompts("train")
        games = [rng.choice(prompts) for _ in range(self.n_demonstrations)]
        play = STRATEGIES[self.demonstrations_strategy]
        return [(p, play(p, rng)) for p in games]
