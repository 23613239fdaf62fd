"""The toy game (issue 35 item 1): task=guess_number and env=guess_number on hand cases."""

from __future__ import annotations

import random

import pytest

from align_lab.envs.base import Step
from align_lab.envs.guess_number import GuessNumberEnv
from align_lab.tasks.guess_number import (
    WORDS,
    GuessNumber,
    binary_search,
    feedback,
    game_prompt,
    random_search,
    secret,
)


def play(env, prompt: str, guesses: list[str]) -> list[Step]:
    episode = env.start(prompt)
    return [episode.step(g) for g in guesses]


def test_prompts_spell_the_game_and_eval_games_are_unseen_ids():
    task = GuessNumber()
    assert game_prompt(37, 8) == "game 3 7 : guess my number from one to eight"
    train, held_out = set(task.prompts("train")), set(task.prompts("eval"))
    assert len(train) + len(held_out) == 200 and not train & held_out
    assert len(held_out) == 40
    lengths = [1 + len(p.split()) for p in train | held_out]  # BOS and one token per word
    assert max(lengths) == task.max_prompt_tokens == 13


def test_the_secret_is_a_function_of_the_prompt_alone():
    prompt = game_prompt(37, 8)
    assert secret(prompt) == secret(prompt) == secret(str(prompt))  # no state, no seed
    assert 1 <= secret(prompt) <= 8
    assert secret(prompt) == 3  # pinned: a changed hash would change every game's data
    assert secret(game_prompt(5, 3)) in (1, 2, 3)  # read from the prompt's top word
    secrets = {secret(game_prompt(g, 8)) for g in range(200)}
    assert secrets == set(range(1, 9))  # every number is some game's secret
    # two tasks with other seeds split the games differently, but agree on each game's secret
    assert GuessNumber(world_seed=1).prompts("eval") != GuessNumber().prompts("eval")


def test_feedback_words():
    assert feedback(5, "three") == "higher"
    assert feedback(5, "seven") == "lower"
    assert feedback(5, "five") == "right"
    assert feedback(5, " five ") == "right"  # surrounding spaces do not matter
    assert [feedback(5, t) for t in ("five six", "5", "")] == ["invalid"] * 3


def test_the_env_answers_until_right_or_max_turns():
    prompt = game_prompt(37, 8)  # secret three
    env = GuessNumberEnv()
    steps = play(env, prompt, ["one", "six", "three"])
    assert [(s.observation, s.done) for s in steps] == [("higher", False), ("lower", False), ("", True)]
    assert [s.reward for s in steps] == [0.0, 0.0, 0.0] and not any(s.tool_call for s in steps)
    # right_reward sits on the turn that guessed right
    assert [s.reward for s in play(GuessNumberEnv(right_reward=1.0), prompt, ["one", "three"])] == [0.0, 1.0]
    # max_turns: the 4th wrong guess ends the episode; its answer is the last guess
    episode = env.start(prompt)
    steps = [episode.step(g) for g in ["one", "eight", "zebra", "two"]]
    assert [s.done for s in steps] == [False, False, False, True]
    assert [s.observation for s in steps] == ["higher", "lower", "invalid", ""]
    assert episode.answer() == "two"
    with pytest.raises(ValueError, match="max_turns=0: must be >= 1"):
        GuessNumberEnv(max_turns=0)


def test_gold_reward_reads_the_last_guess():
    task = GuessNumber()
    prompt = game_prompt(37, 8)
    rewards = task.gold_reward([prompt] * 4, ["three", "five", "three", "higher"], [True, True, False, True])
    assert rewards == [1.0, 0.0, 0.0, 0.0]  # a guess cut before EOS does not count


def test_binary_search_demonstrations_always_win_within_max_turns():
    env = GuessNumberEnv()  # max_turns 4
    rng = random.Random(0)
    for top in (2, 5, 8, 10):
        for game in range(60):
            prompt = game_prompt(game, top)
            turns = binary_search(prompt, rng)
            assert [r for r, _ in turns] == ["policy", "env"] * (len(turns) // 2) + ["policy"]
            steps = play(env, prompt, [t for r, t in turns if r == "policy"])
            assert steps[-1].done and feedback(secret(prompt), turns[-1][1]) == "right"
            assert [s.observation for s in steps[:-1]] == [t for r, t in turns if r == "env"]
            assert len(steps) <= 4


def test_demonstrations_are_conversations_on_train_games_in_the_corpus():
    task = GuessNumber(n_demonstrations=50)
    demos = task.demonstrations()
    assert demos == task.demonstrations()  # deterministic
    train = set(task.prompts("train"))
    assert len(demos) == 50 and all(p in train for p, _ in demos)
    vocabulary = set(task.corpus()[0].split())
    for prompt, turns in demos:
        assert isinstance(turns, list) and turns[0][0] == "policy"
        assert set(prompt.split()) <= vocabulary and {t for _, t in turns} <= vocabulary
    assert set(WORDS) <= vocabulary
    assert task.fingerprint()["task"] == "guess_number"


def test_random_search_demonstrations_read_the_feedback_and_win_in_4_turns_only_sometimes():
    rng, won, games = random.Random(0), 0, 400
    for game in range(games):
        prompt = game_prompt(game, 8)
        turns = random_search(prompt, rng)
        lo, hi = 1, 8  # every guess is one the feedback so far leaves possible
        for (_, guess), answer in zip(
            turns[::2], [t for r, t in turns if r == "env"] + ["right"], strict=True
        ):
            n = WORDS.index(guess) + 1
            assert lo <= n <= hi
            lo, hi = (n + 1, hi) if answer == "higher" else ((lo, n - 1) if answer == "lower" else (n, n))
        assert feedback(secret(prompt), turns[-1][1]) == "right"
        won += len(turns) <= 2 * 4 - 1  # within 4 guesses
    assert 0.5 < won / games < 0.95  # below binary search's 1.0: room for reinforcement learning
    with pytest.raises(ValueError, match="demonstrations_strategy='smart': must be one of"):
        GuessNumber(demonstrations_strategy="smart")
