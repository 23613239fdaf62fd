"""The turn engine (rollout/turns.py): the policy is trained on the very ids it sampled, with the
observation ids between its turns (never a re-tokenisation of decoded text), masks and attend that
say which tokens are the policy's, per-turn rewards at each turn's EOS, a context limit and bad
environments ending in one line naming the environment and the turn."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch
from tokenizers import Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

from align_lab.envs.base import EnvError, LastTurn, Step
from align_lab.models.sequences import encode_prompts, observation_ids, response_logprobs
from align_lab.models.tiny import TinyLM
from align_lab.models.tokenizer import train_tokenizer
from align_lab.rollout.base import Samples
from align_lab.rollout.hf import HFGenerate
from align_lab.rollout.turns import TurnEngine, turn_seeds
from align_lab.tasks.toy_arith import ToyArith


def plain(text: str) -> str:  # an observation rendered between spaces (a test's renderer)
    return f" {text} "


PAD, EOS, SP, A, B, AB, Q = 0, 1, 3, 4, 5, 6, 7


def merging_tokenizer():
    """A BPE tokenizer that merges "a" "b" into "ab": the sampled ids [a, b] decode to "ab", which
    encodes back to [ab]."""
    vocab = {"<pad>": PAD, "<eos>": EOS, "<unk>": 2, " ": SP, "a": A, "b": B, "ab": AB, "q": Q}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("a", "b")], unk_token="<unk>"))
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


class Scripted:
    """An engine that plays each prompt's scripted turns (ids), with log-prob -0.5 a token; it records
    the contexts it is asked to continue."""

    temperature, samples_in_background = 1.0, False

    def __init__(self, script: dict[str, list[list[int]]]):
        self.script, self.contexts = script, []

    def sample(
        self, model, tok, prompts, n, max_new_tokens, max_prompt_tokens, greedy=False, seeds=None, rs=False
    ):
        prompts = [p for p in prompts for _ in range(n)]
        ids, attn = encode_prompts(tok, prompts, max_prompt_tokens)
        self.prompt_ids = {p: ids[i][attn[i].bool()].tolist() for i, p in enumerate(prompts)}
        turns = [self.script[p][0] for p in prompts]
        out = torch.full((len(turns), max(map(len, turns))), PAD)
        for i, t in enumerate(turns):
            out[i, : len(t)] = torch.tensor(t)
        mask = (torch.arange(out.shape[1]) < torch.tensor([[len(t)] for t in turns])).float()
        return Samples(prompts, ids, attn, out, mask, [""] * len(turns), [True] * len(turns), -0.5 * mask)

    def sample_ids(self, model, tok, contexts, max_new_tokens, greedy=False, seeds=None, row_seeded=False):
        self.contexts.append([list(c) for c in contexts])
        rows = []
        for c in contexts:
            prompt = next(p for p, ids in self.prompt_ids.items() if c[: len(ids)] == ids)
            turn = sum(1 for t in c[len(self.prompt_ids[prompt]) :] if t == EOS)
            rows.append(self.script[prompt][turn][:max_new_tokens])
        out = torch.full((len(rows), max(map(len, rows))), PAD)
        for i, t in enumerate(rows):
            out[i, : len(t)] = torch.tensor(t)
        return out, torch.where(out != PAD, -0.5, 0.0)


class Game:
    """A test environment: answers `observation` to the first `calls` turns (a tool call, reward 0.5),
    then says done with reward 1."""

    multi_turn, step_timeout_s = True, 1.0

    def __init__(self, observation="ab", calls=1, max_turns=3, sleep=0.0, max_conversation_tokens=None):
        self.observation, self.calls, self.max_turns, self.sleep = observation, calls, max_turns, sleep
        self.max_conversation_tokens = max_conversation_tokens

    def start(self, prompt):
        game = self

        class Episode(LastTurn):
            def step(self, turn):
                time.sleep(game.sleep)
                self.turns.append(turn)
                if len(self.turns) <= game.calls:
                    return Step(observation=game.observation, reward=0.5, tool_call=True)
                return Step(done=True, reward=1.0)

        return Episode()


MODEL = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=64))


def turn_engine(inner, env):
    return TurnEngine(inner, env, "game", plain, lambda p: p)


def test_the_policy_is_trained_on_its_sampled_ids_never_a_retokenisation():
    tok = merging_tokenizer()
    assert tok(tok.decode([A, B]), add_special_tokens=False)["input_ids"] == [AB]  # decode -> encode differs
    inner = Scripted({"q": [[A, B, EOS], [B, A, EOS]]})
    s = turn_engine(inner, Game()).sample(MODEL, tok, ["q"], 1, 8, 4)
    obs = observation_ids(tok, plain("ab"))
    assert obs == [SP, AB, SP]
    expected = [A, B, EOS, *obs, B, A, EOS]
    assert s.response_ids[0].tolist() == expected
    # the engine continued from the exact ids too: prompt ids + sampled ids + observation ids
    assert inner.contexts == [[[Q, A, B, EOS, *obs]]]
    assert s.mask[0].tolist() == [1, 1, 1, 0, 0, 0, 1, 1, 1]
    assert s.attend[0].tolist() == [1.0] * 9
    assert s.logprobs[0].tolist() == [-0.5] * 3 + [0.0] * 3 + [-0.5] * 3  # 0 on observations
    assert s.turn_rewards[0].tolist() == [0, 0, 0.5, 0, 0, 0, 0, 0, 1.0]  # at each answered turn's EOS
    assert (s.responses, s.finished, s.turns, s.tool_calls) == (["ba"], [True], [2], [1])
    assert s.transcripts == ["ab<eos> ab ba<eos>"]


def test_rows_of_different_lengths_are_padded_after_their_conversation():
    tok = merging_tokenizer()
    inner = Scripted({"q": [[A, EOS], [B, EOS]], "a": [[A, A, A, EOS], [B, EOS]]})
    s = turn_engine(inner, Game(observation="q", calls=1)).sample(MODEL, tok, ["q", "a"], 1, 8, 4)
    assert s.response_ids.tolist() == [
        [A, EOS, SP, Q, SP, B, EOS, PAD, PAD],
        [A, A, A, EOS, SP, Q, SP, B, EOS],
    ]
    assert s.attend.tolist() == [[1] * 7 + [0] * 2, [1] * 9]
    assert s.mask.tolist() == [[1, 1, 0, 0, 0, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0, 0, 1, 1]]
    assert bool((s.mask <= s.attend).all()) and s.turn_rewards.shape == s.mask.shape == s.logprobs.shape


def test_a_turn_without_eos_ends_the_episode_unfinished_and_max_turns_ends_it():
    tok = merging_tokenizer()
    cut = turn_engine(Scripted({"q": [[A, A, A]]}), Game()).sample(MODEL, tok, ["q"], 1, 3, 4)
    assert (cut.finished, cut.turns, cut.tool_calls) == ([False], [1], [0])  # no step without EOS
    # the reward reads the cut turn's text, finished False, as it reads a cut single-turn response
    assert cut.responses == [tok.decode([A, A, A], skip_special_tokens=True)] == [cut.conversations[0][-1][1]]
    never_done = Game(calls=99, max_turns=2)
    s = turn_engine(Scripted({"q": [[A, EOS], [B, EOS]]}), never_done).sample(MODEL, tok, ["q"], 1, 8, 4)
    assert (s.finished, s.turns, s.tool_calls) == ([True], [2], [2])  # not an error
    assert s.response_ids[0].tolist() == [A, EOS, SP, AB, SP, B, EOS]  # no observation after the last turn


class Closing(Game):
    """Game whose episodes count their close() calls (a hub environment's sandbox let go)."""

    def start(self, prompt):
        episode = super().start(prompt)
        episode.closed = 0

        def close():
            episode.closed += 1

        episode.close = close
        self.episodes = [*getattr(self, "episodes", []), episode]
        return episode


def test_every_episode_is_closed_once_however_it_ends():
    tok = merging_tokenizer()
    ends = {  # at max_turns without done; a turn without EOS (unfinished); a step past the timeout
        "max_turns": (Closing(calls=99, max_turns=2), Scripted({"q": [[A, EOS], [B, EOS]]})),
        "unfinished": (Closing(), Scripted({"q": [[A, A, A]]})),
        "error": (Closing(sleep=30), Scripted({"q": [[A, EOS]]})),
    }
    ends["error"][0].step_timeout_s = 0.2
    for name, (env, inner) in ends.items():
        try:
            turn_engine(inner, env).sample(MODEL, tok, ["q"], 1, 3 if name == "unfinished" else 8, 4)
        except EnvError:
            assert name == "error"
        assert [e.closed for e in env.episodes] == [1], name


class FailsToClose(Closing):
    """Closing whose episodes' close() raises after counting (issue 73: a 72-line traceback before)."""

    def start(self, prompt):
        episode = super().start(prompt)
        counted = episode.close

        def close():
            counted()
            raise OSError("sandbox\nwould not stop")  # CLOSE_LINE

        episode.close = close
        return episode


def test_a_close_that_raises_is_one_line_naming_the_env_after_every_episode_is_closed():
    tok = merging_tokenizer()
    env = FailsToClose(calls=99, max_turns=1)
    with pytest.raises(EnvError) as e:
        turn_engine(Scripted({"q": [[A, EOS]]}), env).sample(MODEL, tok, ["q"], 2, 8, 4)
    at = next(i for i, x in enumerate(open(__file__), 1) if "# CLOSE_LINE" in x)  # 36th hunt, case 21
    assert (
        str(e.value) == f"env=game: turn 1: close() raised OSError: sandbox would not stop at {__file__}:{at}"
    )
    assert [x.closed for x in env.episodes] == [1, 1]  # the second episode closed all the same
    slow = FailsToClose(sleep=30)  # a step error in flight is the one reported, not close()'s
    slow.step_timeout_s = 0.2
    with pytest.raises(EnvError, match="step took longer than env.step_timeout_s=0.2$"):
        turn_engine(Scripted({"q": [[A, EOS]]}), slow).sample(MODEL, tok, ["q"], 1, 8, 4)


def test_a_context_over_the_limit_is_one_line_before_the_forward_that_would_fail():
    tok = merging_tokenizer()
    inner = Scripted({"q": [[A, EOS], [B, EOS]]})
    env = Game(observation="ab " * 20, max_conversation_tokens=16)
    with pytest.raises(EnvError) as e:
        turn_engine(inner, env).sample(MODEL, tok, ["q"], 1, 8, 4)
    assert str(e.value) == (  # 45 - 20 = 25 over
        "env=game: turn 1: the context holds 45 tokens after the observation, 25 over the limit of 20 "
        "(model.max_prompt_tokens 4 + env.max_conversation_tokens 16): no room for the next turn"
    )
    # thirty-first hunt, case 66: where the model's positions bind, the line names them, not two keys a
    # tiny model's preset does not have (model.max_prompt_tokens, env.max_conversation_tokens)
    env = Game(observation="ab " * 40)
    with pytest.raises(EnvError) as e:
        turn_engine(Scripted({"q": [[A, EOS], [B, EOS]]}), env).sample(MODEL, tok, ["q"], 1, 8, 4)
    assert str(e.value).endswith(
        "over the limit of 64 (the model's positions: max_position_embeddings in its config): no room for "
        "the next turn"
    )
    assert inner.contexts == []  # the next turn was never sampled


def test_a_context_at_the_limit_is_called_at_it_and_a_larger_limit_lets_the_next_turn_run():
    """It said "19 tokens over the limit of 19": a context of exactly the limit leaves no room for a
    token, and is refused, but it is at the limit, not over it. Each "ab " is two tokens: 20 of them
    made 45 above, so 7 make 45 - 2 * 13 = 19, the limit 4 + 15 = 19."""
    tok = merging_tokenizer()
    env = Game(observation="ab " * 7, max_conversation_tokens=15)
    with pytest.raises(EnvError) as e:
        turn_engine(Scripted({"q": [[A, EOS], [B, EOS]]}), env).sample(MODEL, tok, ["q"], 1, 8, 4)
    assert "the context holds 19 tokens after the observation, at the limit of 19 (" in str(e.value)
    assert str(e.value).endswith("): no room for the next turn")
    env = Game(observation="ab " * 7, max_conversation_tokens=16)  # the limit raised by one: room for one
    s = turn_engine(Scripted({"q": [[A, EOS], [B, EOS]]}), env).sample(MODEL, tok, ["q"], 1, 8, 4)
    assert s.turns == [2]


def test_a_hung_step_is_stopped_by_the_step_timeout():
    env = Game(sleep=30)
    env.step_timeout_s = 0.3
    start = time.perf_counter()
    with pytest.raises(EnvError, match=r"^env=game: turn 1: step took longer than env.step_timeout_s=0.3$"):
        turn_engine(Scripted({"q": [[A, EOS]]}), env).sample(MODEL, merging_tokenizer(), ["q"], 1, 8, 4)
    assert time.perf_counter() - start < 5


def test_turn_seeds_are_the_row_seed_then_a_function_of_seed_and_turn():
    assert turn_seeds([5, 9], 0) == [5, 9] and turn_seeds(None, 2) is None
    assert turn_seeds([5], 1) == turn_seeds([5, 9], 1)[:1] != turn_seeds([5], 2)


# the real engine on the tiny toy model
TASK = ToyArith(max_operand=4)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    tok = train_tokenizer(TASK.corpus(), tmp_path_factory.mktemp("tok"))
    torch.manual_seed(0)
    return tok, TinyLM().init_policy(tok)


def test_sample_ids_continues_exact_ids_as_sample_draws_a_prompt(toy):
    tok, model = toy
    prompts = TASK.prompts("train")[:3]
    engine, seeds = HFGenerate(seed_per_sample=True), [11, 12, 13]
    s = engine.sample(model, tok, prompts, 1, 6, 8, seeds=seeds)
    contexts = [ids[attn.bool()].tolist() for ids, attn in zip(s.prompt_ids, s.prompt_attn, strict=True)]
    ids, logprobs = engine.sample_ids(model, tok, contexts, 6, seeds=seeds)
    assert torch.equal(ids, s.response_ids) and torch.allclose(logprobs, s.logprobs, atol=1e-6)


def test_the_turn_engine_on_the_tiny_model(toy):
    tok, model = toy
    prompts = TASK.prompts("train")[:2]
    env = Game(observation="1 + 2 =", calls=1, max_turns=3)
    engine = turn_engine(HFGenerate(seed_per_sample=True), env)
    seeds = [21, 22, 23, 24]
    with torch.no_grad():  # EOS likely: turns end, so episodes reach the environment
        model.lm_head.weight[tok.eos_token_id] += 0.5 * model.lm_head.weight.abs().mean()
    s = engine.sample(model, tok, prompts, 2, 6, 8, seeds=seeds)
    B, T = s.response_ids.shape
    assert B == 4 and s.mask.shape == s.attend.shape == s.logprobs.shape == s.turn_rewards.shape == (B, T)
    assert bool((s.mask <= s.attend).all()) and bool((s.logprobs[s.mask == 0] == 0).all())
    obs = observation_ids(tok, plain("1 + 2 ="))
    for i in range(B):
        n, ids = int(s.attend[i].sum()), s.response_ids[i].tolist()
        policy = s.mask[i, :n].bool().tolist()
        if s.turns[i] == 2:  # turn 1, the observation, turn 2
            first = policy.index(False)
            assert ids[first - 1] == tok.eos_token_id and ids[first : first + len(obs)] == obs
            assert s.turn_rewards[i, first - 1] == 0.5
    # each row draws the same conversation whatever the other rows: rows 2-3 alone
    alone = engine.sample(model, tok, prompts[1:], 2, 6, 8, seeds=seeds[2:])
    width = alone.response_ids.shape[1]
    assert torch.equal(alone.response_ids, s.response_ids[2:, :width]) and alone.turns == s.turns[2:]
    # the trainer's log-probs of the whole conversation (attending observations) are the engine's
    trainer, _ = response_logprobs(model, s.prompt_ids, s.prompt_attn, s.response_ids, s.attend)
    assert torch.allclose(trainer * s.mask, s.logprobs, atol=1e-4)


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_an_observation_is_the_chat_templates_user_turn_after_the_policys_eos():
    from align_lab.models.chat import chat_observation
    from align_lab.tasks.view import PolicyView, observation_renderer

    tok = merging_tokenizer()
    tok.eos_token, tok.chat_template = "<|im_end|>", CHATML
    rendered = chat_observation(tok, "20")
    assert rendered == "\n<|im_start|>user\n20<|im_end|>\n<|im_start|>assistant\n"
    view = PolicyView(SimpleNamespace(prompts=lambda split: ["q"]), str, lambda t: [1] * len(t), 8, 8)
    assert view.render_observation("20") == observation_renderer(TASK, None)("20") == "20"  # no template
