"""toy_prefs: an RLHF-style world with a hidden, prompt-dependent, dense gold reward.

A prompt names `prompt_topics` topics ("river storm wolf :"); a response is a short list of words.
Every (topic, word) pair has a hidden affinity drawn from N(0, 1) by `world_seed`. The gold reward is

    r*(x, y) = mean_t a(x, y_t) - repeat_penalty * repeated(y)
               - length_penalty * |len(y) - target_len| / target_len - unfinished_penalty * [no EOS]

with a(x, w) the mean affinity of word w to the prompt's topics and repeated(y) the fraction of words
that repeat an earlier one. A reward model trained on a few thousand noisy pairs of SFT samples sees
few repetitions and learns mostly the affinities, so a policy pushed hard against it finds the
repetition and length loopholes: proxy reward rises while gold reward falls (over-optimisation).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

from align_lab.tasks.base import BradleyTerryAnnotator, GeneratedTask, held_out_split, noisy_demonstrations

TOPICS = (
    "river storm wolf garden market winter engine forest "
    "harbor desert temple orchard castle meadow glacier village"
).split()
WORDS = (
    "quiet bright cold green busy ancient swift golden hollow gentle rusty wild "
    "salty dusty sacred ripe stone misty icy humble deep loud warm dark "
    "sweet broken tall calm fresh smooth narrow silver heavy soft proud old"
).split()
SEP = ":"


@dataclass
class ToyPrefs(GeneratedTask):
    """The default task; every field changes the world and so every cache key."""

    world_seed: int = 0
    n_topics: int = 16
    n_words: int = 24
    prompt_topics: int = 2
    eval_fraction: float = 0.15
    target_len: int = 6
    max_response_tokens: int = 12
    repeat_penalty: float = 1.0
    length_penalty: float = 0.5
    unfinished_penalty: float = 0.5
    n_demonstrations: int = 4096
    expert_temperature: float = 0.5
    expert_random_rate: float = 0.2
    n_pairs: int = 4096
    annotator: BradleyTerryAnnotator = field(default_factory=BradleyTerryAnnotator)

    name = "toy_prefs"
    verifiable = False
    has_gold_reward = True
    sft = True

    def __post_init__(self) -> None:
        if not 1 <= self.n_topics <= len(TOPICS):
            raise ValueError(f"n_topics={self.n_topics}: must be in [1, {len(TOPICS)}]")
        if not 2 <= self.n_words <= len(WORDS):
            raise ValueError(f"n_words={self.n_words}: must be in [2, {len(WORDS)}]")
        if not 1 <= self.prompt_topics <= self.n_topics:
            raise ValueError(f"prompt_topics={self.prompt_topics}: must be in [1, n_topics]")
        if not 0 < self.eval_fraction < 1:
            raise ValueError(f"eval_fraction={self.eval_fraction}: must be in (0, 1)")
        for key in ("n_pairs", "n_demonstrations"):
            if getattr(self, key, 1) < 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be >= 1")
        if self.target_len < 1:
            raise ValueError(f"target_len={self.target_len}: must be >= 1")
        if self.max_response_tokens <= self.target_len:  # the gold reward peaks at target_len words + EOS
            raise ValueError(
                f"max_response_tokens={self.max_response_tokens}: must be > target_len={self.target_len} "
                "(the best response has target_len words and an EOS)"
            )
        self._build_annotator()
        rng = random.Random(self.world_seed)
        self._topics = TOPICS[: self.n_topics]
        self._words = WORDS[: self.n_words]
        self._affinity = {(t, w): rng.gauss(0.0, 1.0) for t in self._topics for w in self._words}
        combos = [" ".join(c) for c in itertools.combinations(self._topics, self.prompt_topics)]
        self._split = held_out_split(combos, self.eval_fraction, rng)

    @property
    def max_prompt_tokens(self) -> int:
        return self.prompt_topics + 2  # BOS + topics + separator

    def corpus(self) -> list[str]:
        return [" ".join(self._topics + self._words + [SEP])]

    def prompts(self, split: str) -> list[str]:
        return [f"{topics} {SEP}" for topics in self._split[split]]

    def affinity(self, prompt: str, word: str) -> float:
        topics = prompt.split()[:-1]
        return sum(self._affinity.get((t, word), -1.0) for t in topics) / len(topics)

    def _gold(self, prompt: str, response: str, finished: bool) -> float:
        words = response.split()
        if not words:
            return -1.0 - self.unfinished_penalty * (not finished)
        quality = sum(self.affinity(prompt, w) for w in words) / len(words)
        repeated = 1.0 - len(set(words)) / len(words)
        off_length = abs(len(words) - self.target_len) / self.target_len
        return (
            quality
            - self.repeat_penalty * repeated
            - self.length_penalty * off_length
            - self.unfinished_penalty * (not finished)
        )

    def gold_reward(self, prompts: list[str], responses: list[str], finished: list[bool]) -> list[float]:
        return [self._gold(p, r, f) for p, r, f in zip(prompts, responses, finished, strict=True)]

    def _expert_response(self, prompt: str, rng: random.Random) -> str:
        """A noisy expert: distinct words drawn by softmax(affinity / T), some at random."""
        length = max(1, self.target_len + rng.randint(-2, 2))
        pool = list(self._words)
        words = []
        for _ in range(length):
            if rng.random() < self.expert_random_rate:
                w = rng.choice(pool)
            else:
                weights = [pow(2.718281828, self.affinity(prompt, w) / self.expert_temperature) for w in pool]
                w = rng.choices(pool, weights=weights)[0]
            words.append(w)
            pool.remove(w)
        return " ".join(words)

    def demonstrations(self) -> list[tuple[str, str]]:
        seed = self.world_seed + 1
        return noisy_demonstrations(self.prompts("train"), self.n_demonstrations, seed, self._expert_response)
