"""Every online algorithm trains on multi-turn environments (issue 35, "Done when"): GRPO, RLOO, REINFORCE++,
ReMax, PPO and PPO-max, each for two steps through the real run entry on the toy game (task=guess_number
env=guess_number) and on the calculator (task=arith_word env=calculator).

arith_word is real text, so it runs on model=hf: a tiny Llama saved with save_pretrained whose word-level
tokenizer is trained on the task's own questions and calculator demonstrations (each `<calc>a+b</calc>` is
one word, so a tiny model can write a call), with a chat template; the SFT stage on the solver's calculator
conversations (task.sft=true task.demonstrations_env=calculator) teaches it the protocol.

Each run: every step's loss is finite; the trained tokens are the policy's sampled tokens (epochs x the
rollout's policy tokens, from train/response_length, which counts `mask`); every evaluated episode's
`tokens` (its policy tokens) is its transcript's words less the observations' words (the observations are
attended, never counted); the game plays more than one turn and the calculator is called in evaluation.
PPO-max is ppo_max_sft_critic (verifiable rewards have no reward model to start the critic from)."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from align_lab.tasks.arith_word import ArithWord
from tests.conftest import run_in_process
from tests.hf_assets import CHAT_TEMPLATE, tiny_config

ALGOS = ["grpo", "rloo", "reinforce_pp", "remax", "ppo", "ppo_max_sft_critic"]
CALC = {"max_operand": 6, "n_train": 40, "n_eval": 8}  # the calculator world: small questions, small vocab
GAME = ["task=guess_number", "env=guess_number", "reward=verifier", "task.n_games=40"]


@pytest.fixture(scope="module")
def calc_model(tmp_path_factory):
    """A tiny Llama with a word-level tokenizer over arith_word's questions, calculator calls and answers,
    and the chat template's words; saved as a model=hf checkpoint."""
    import torch
    from transformers import LlamaForCausalLM

    from align_lab.models.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("calc_model")
    task = ArithWord(**CALC, sft=True, demonstrations_env="calculator")
    words = [text for _, turns in task.demonstrations() for _, text in turns]
    corpus = [*task.corpus(), *task.prompts("eval"), " ".join(words), "user assistant system :"]
    tok = train_tokenizer(corpus, root / "tokenizer")
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_config(tok)).save_pretrained(str(root / "policy"))
    tok.save_pretrained(str(root / "policy"))
    return root / "policy"


def calculator(model) -> list[str]:
    return [
        "model=hf",
        f"model.name_or_path={model}",
        "model.max_prompt_tokens=40",
        "model.max_response_tokens=4",
        "task=arith_word",
        "env=calculator",
        "reward=verifier",
        "task.sft=true",
        "task.demonstrations_env=calculator",
        *[f"task.{k}={v}" for k, v in CALC.items()],
        "sft.epochs=30",
        "sft.batch_size=8",
    ]


def observation_words(config: dict) -> int:
    """Words of one observation as the policy reads it: the game's feedback word; the calculator's result
    as the chat template's next user turn, ' user : 7 assistant :' (five words)."""
    return 5 if config["env"]["_target_"].endswith("Calculator") else 1


@pytest.mark.parametrize("env", ["guess_number", "calculator"])
@pytest.mark.parametrize("algo", ALGOS)
def test_every_online_algorithm_trains_on_a_multi_turn_env(algo, env, request, tmp_path, cache_dir):
    world = calculator(request.getfixturevalue("calc_model")) if env == "calculator" else GAME
    run_dir = tmp_path / "run"
    summary = run_in_process([f"algo={algo}", *world, "train.steps=2"], run_dir, cache_dir)
    assert summary["status"] == "completed"
    config = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "train/loss" in x]
    assert [x["step"] for x in steps] == [1, 2]
    assert all(math.isfinite(x["train/loss"]) and math.isfinite(x["train/grad_norm"]) for x in steps)
    # the trained tokens: algo.epochs passes over the rollout's policy tokens (mask), nothing else
    policy_tokens = sum(x["train/response_length"] * config["train"]["rollout_size"] for x in steps)
    assert steps[-1]["counters/trained_tokens"] == pytest.approx(config["algo"]["epochs"] * policy_tokens)
    # each evaluated episode: its policy tokens are its transcript's words less its observations'
    records = [json.loads(x) for x in (run_dir / "eval_samples.jsonl").read_text().splitlines()]
    obs = observation_words(config)
    for r in records:
        assert r["tokens"] == len(r["transcript"].split()) - obs * (r["turns"] - 1), r
    assert max(r["turns"] for r in records) > 1  # observations were read
    if env == "calculator":
        assert summary["eval/tool_calls"] > 0 and any(r["tool_calls"] for r in records)
