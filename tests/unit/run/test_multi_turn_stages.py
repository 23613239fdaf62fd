"""The stages on multi-turn data (issue 35 item 4): the SFT stage trains on conversations and keys on a
multi-turn env; the preferences stage stores verifier-labelled conversation pairs from a sampler;
the default single-turn run's keys and pair files are what they were."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

from align_lab.cache import StageCache
from align_lab.envs.guess_number import GuessNumberEnv
from align_lab.models.tiny import TinyLM
from align_lab.run.numerics import numerics
from align_lab.run.pairs import build_preferences, env_fingerprint
from align_lab.run.stages import StageBuild, build_stages
from align_lab.tasks.arith_word import ArithWord
from align_lab.tasks.base import Pair, pair_from_json
from align_lab.tasks.guess_number import WORDS, GuessNumber, binary_search, feedback, secret
from align_lab.tasks.toy_arith import ToyArith
from align_lab.train.sft import SFTConfig
from tests.conftest import Quiet


@dataclasses.dataclass
class SingleTurn:
    """env=single_turn as the spec defines it (mt-core's): no observations."""

    multi_turn = False
    max_turns: int = 1
    step_timeout_s: float = 30.0


def sft_key(cache_dir, task, env):
    sft = SFTConfig(epochs=1, batch_size=32)
    stages = build_stages(task, TinyLM(), sft, StageCache(cache_dir), Quiet, None, env=env)
    return stages.results["sft"].key


def test_a_single_turn_env_keeps_the_keys_a_multi_turn_env_of_conversations_changes_them(tmp_path):
    toy = ToyArith(n_demonstrations=64)
    assert sft_key(tmp_path, toy, SingleTurn()) == sft_key(tmp_path, toy, None)
    # text demonstrations do not depend on the env: the key is the same under a multi-turn one
    assert sft_key(tmp_path, toy, GuessNumberEnv()) == sft_key(tmp_path, toy, None)
    from align_lab.tasks.guess_number import GuessNumber

    game = GuessNumber(n_demonstrations=64)
    key = sft_key(tmp_path, game, GuessNumberEnv())
    assert sft_key(tmp_path, game, GuessNumberEnv(max_turns=5)) != key  # longer conversations
    assert sft_key(tmp_path, game, GuessNumberEnv(observation_template=": {observation}")) != key
    assert sft_key(tmp_path, game, GuessNumberEnv(step_timeout_s=1.0)) == key  # changes no artifact
    with pytest.raises(ValueError, match="task=guess_number: its demonstrations are conversations"):
        sft_key(tmp_path, game, None)  # they would be cut to one turn


def test_arith_word_keeps_its_fingerprint_and_writes_calculator_demonstrations():
    default = ArithWord()
    assert set(default.fingerprint()) == {
        *("task", "world_seed", "max_operand", "operations", "n_train", "n_eval", "instruction"),
        *("n_pairs", "pair_samples", "annotator"),
    }  # the keys of before: sft and demonstrations_env are left out at their defaults
    calc = ArithWord(sft=True, demonstrations_env="calculator")
    assert calc.fingerprint() != default.fingerprint() and calc.prompts("train") == default.prompts("train")
    prompt, turns = calc.demonstrations()[0]
    answer = default.answer(prompt)
    assert turns[1:] == [("env", str(answer)), ("policy", str(answer))]
    expression = turns[0][1].removeprefix("<calc>").removesuffix("</calc>")
    a, op, b = expression.partition("+") if "+" in expression else expression.partition("-")
    assert (int(a) + int(b) if op == "+" else int(a) - int(b)) == answer and a in prompt and b in prompt
    assert [(p, str(default.answer(p))) for p, _ in calc.demonstrations()] == default.demonstrations()
    with pytest.raises(
        ValueError, match="demonstrations_env=calculator: trains in the SFT stage; set task.sft=true"
    ):
        ArithWord(demonstrations_env="calculator")
    with pytest.raises(ValueError, match="demonstrations_env=tools: must be null or calculator"):
        ArithWord(sft=True, demonstrations_env="tools")


def lost_game(prompt: str, max_turns: int = 4) -> list[tuple[str, str]]:
    """Guessing one wrong number max_turns times."""
    wrong = WORDS[secret(prompt) % 8]  # the next number (or one): never the secret
    turns = [("policy", wrong)]
    for _ in range(max_turns - 1):
        turns += [("env", feedback(secret(prompt), wrong)), ("policy", wrong)]
    return turns


def hand_sampler(policy, tokenizer, prompts, k, limits):
    """k = 2 episodes per prompt: a won game, then a lost one; answers are the last guesses."""
    import random

    rng = random.Random(0)
    conversations = [c for p in prompts for c in (binary_search(p, rng), lost_game(p))]
    asked = [p for p in prompts for _ in range(k)]
    return asked, [c[-1][1] for c in conversations], [True] * len(asked), conversations


def preferences(cache_dir, env, sample=hand_sampler):
    from align_lab.tasks.guess_number import GuessNumber

    task = GuessNumber(n_pairs=5, pair_samples=2)
    b = StageBuild(StageCache(cache_dir), Quiet, None, 2**30, numerics(None))
    model = SimpleNamespace(pretrained=False, load_causal_lm=lambda path: None)
    pairs = build_preferences(b, task, model, SFTConfig(), None, task, None, "sft-key", env, sample)
    return pairs, b.results["preferences"]


def test_the_preferences_stage_stores_verifier_labelled_conversation_pairs(tmp_path):
    pairs, built = preferences(tmp_path, GuessNumberEnv())
    assert len(pairs) == 5 and not built.hit
    for pair in pairs:
        assert pair.chosen[-1] == ("policy", WORDS[secret(pair.prompt) - 1])  # the won game
        assert pair.rejected == lost_game(pair.prompt)
        assert (pair.gold_chosen, pair.gold_rejected) == (1.0, 0.0)
    rows = [json.loads(line) for line in (built.path / "pairs.jsonl").read_text().splitlines()]
    assert rows[0]["rejected"][0] == ["policy", lost_game(pairs[0].prompt)[0][1]]  # JSON lists of turns
    again, hit = preferences(tmp_path, GuessNumberEnv())
    assert hit.hit and again == pairs and hit.key == built.key  # read back as (role, text) tuples
    assert preferences(tmp_path, GuessNumberEnv(max_turns=3))[1].key != built.key  # the env is in the key
    assert "env" in json.loads((built.path / "inputs.json").read_text())


def test_single_turn_pairs_are_stored_as_before_and_no_env_enters_their_key():
    pair = Pair("p", "a b", "c", 1.0, 0.0)
    row = json.dumps(dataclasses.asdict(pair))
    assert (
        row == '{"prompt": "p", "chosen": "a b", "rejected": "c", "gold_chosen": 1.0, "gold_rejected": 0.0}'
    )
    assert pair_from_json(json.loads(row)) == pair
    assert env_fingerprint(None) is None and env_fingerprint(SingleTurn()) is None
    assert env_fingerprint(GuessNumberEnv()) == {
        "env": "align_lab.envs.guess_number.GuessNumberEnv",
        "max_turns": 4,
        "right_reward": 0.0,
        "observation_template": "{observation}",
        "max_conversation_tokens": None,  # a limit changes what is sampled: in the key
    }


def test_the_preferences_stage_samples_sft_conversations_through_the_turn_engine(tmp_path):
    import torch

    from align_lab.models.tokenizer import train_tokenizer
    from align_lab.run.pairs import conversation_sampler

    task = GuessNumber(n_games=20, n_pairs=6, pair_samples=4)
    tok = train_tokenizer(task.corpus(), tmp_path / "tok")
    torch.manual_seed(0)
    policy = TinyLM().init_policy(tok)  # untrained: guesses (and other words) at random
    sample = conversation_sampler(GuessNumberEnv(), lambda text: text)
    prompts, answers, finished, conversations = sample(policy, tok, task.prompts("train")[:3], 4, (3, 16))
    assert len(conversations) == 12 and prompts[:4] == [task.prompts("train")[0]] * 4
    for answer, done, turns in zip(answers, finished, conversations, strict=True):
        assert [role for role, _ in turns] == ["policy", "env"] * (len(turns) // 2) + ["policy"]
        assert 1 <= len(turns[::2]) <= 4
        assert not done or answer == turns[-1][1]  # a finished episode's answer: its last policy turn
        assert all(text in ("higher", "lower", "invalid") for role, text in turns if role == "env")


@dataclasses.dataclass
class Calculator:
    """env=calculator as the spec defines it (mt-core's): only what the stages read."""

    multi_turn = True
    max_turns: int = 3
    step_timeout_s: float = 5.0
    observation_template: str = "{observation}"


def test_a_chat_model_takes_an_sft_stage_on_calculator_conversations(hf_assets, tmp_path):
    """task.sft=true task.demonstrations_env=calculator env=calculator on a pretrained chat model: the
    SFT stage runs (keyed on the env) and each observation is the chat template's next user turn."""
    from align_lab.models.chat import chat_observation
    from align_lab.models.hf import HFModel
    from align_lab.models.sequences import encode_conversations, observation_ids
    from align_lab.tasks.view import observation_renderer

    model = HFModel(name_or_path=str(hf_assets.policy), max_prompt_tokens=64, max_response_tokens=8)
    task = ArithWord(n_train=36, n_eval=4, sft=True, demonstrations_env="calculator")
    sft = SFTConfig(epochs=1, batch_size=16, lr=1e-3)
    stages = build_stages(task, model, sft, StageCache(tmp_path), Quiet, None, env=Calculator())
    assert json.loads((stages.results["sft"].path / "inputs.json").read_text())["env"]["max_turns"] == 3
    assert stages.sft_path == stages.results["sft"].path  # the SFT policy, not the checkpoint
    tok, view = stages.tokenizer, stages.policy_task
    prompt, turns = view.demonstrations()[0]
    assert prompt.startswith("user : ") and turns[0][1].startswith("<calc>")  # a rendered prompt
    render = observation_renderer(view, Calculator())
    assert render(turns[1][1]) == chat_observation(tok, turns[1][1]) == f" user : {turns[1][1]} assistant :"
    ids, mask, attend = encode_conversations(tok, [turns], render, 64)
    call = tok(turns[0][1], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    seen = observation_ids(tok, render(turns[1][1]))
    assert ids[0, : len(call) + len(seen)].tolist() == call + seen
    assert mask[0].tolist()[: len(call) + len(seen) + 2] == [1] * len(call) + [0] * len(seen) + [1, 1]
    assert attend[0].sum() == len(call) + len(seen) + 2  # the answer: one token and EOS


class Words:
    """A tokenizer of one id per word (pad 0, EOS 1): encoded lengths countable by hand."""

    pad_token_id, eos_token_id = 0, 1

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": [2] * len(text.split())}


def test_the_sft_stage_sizes_its_rows_by_its_demonstrations_not_the_conversation_budget():
    from align_lab.run.stages import demonstration_bytes
    from align_lab.train.memory.footprint import Dims, row_bytes
    from align_lab.train.memory.planner import stage_plan

    smol = Dims(hidden=576, layers=30, intermediate=1536, heads=9, vocab=49152, kv_width=192)
    demos = [
        ("what is 13 plus 7 ?", [("policy", "<calc>13+7</calc>"), ("env", "20"), ("policy", "20")]),
        ("what is 2 plus 2 ?", [("policy", "<calc>2+2</calc>"), ("env", "4"), ("policy", "4")]),
    ]
    # the longest prompt is 6 words; a conversation 1 + EOS, 1 observation, 1 + EOS = 5 tokens
    got = demonstration_bytes(smol, Words(), demos, (128, 256), lambda text: text)
    assert got == row_bytes(smol, 6, 5)
    # SmolLM2 on 24 GB: a budget-length row (128 + 256 tokens) trains 1 row at a time, these run whole
    budget = 24 * 2**30
    assert stage_plan("sft", "auto", smol, 16, row_bytes(smol, 128, 256), budget) == 1
    assert stage_plan("sft", "auto", smol, 16, got, budget) is None
