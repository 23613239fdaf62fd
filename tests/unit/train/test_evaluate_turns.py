"""Evaluation through the turn engine (multi-turn environments): eval/turns and eval/tool_calls are
the per-episode means of the records, which keep the whole conversation (capped like every text)."""

from __future__ import annotations

import torch

from align_lab.envs.base import LastTurn, Step
from align_lab.models.tiny import TinyLM
from align_lab.models.tokenizer import train_tokenizer
from align_lab.rollout.hf import HFGenerate
from align_lab.rollout.turns import TurnEngine
from align_lab.tasks.toy_arith import ToyArith
from align_lab.tracking.samples import cap_texts
from align_lab.train.evaluate import evaluate


def plain(text: str) -> str:  # an observation rendered between spaces (a test's renderer)
    return f" {text} "


TASK = ToyArith(max_operand=4)


class Echo:
    """Answers the policy's first turn with "1 + 1 =" (a tool call), ends the episode on the second."""

    multi_turn, max_turns, step_timeout_s = True, 3, 5.0

    def start(self, prompt):
        class Episode(LastTurn):
            def step(self, turn):
                self.turns.append(turn)
                if len(self.turns) == 1:
                    return Step(observation="1 + 1 =", tool_call=True)
                return Step(done=True)

        return Episode()


def test_multi_turn_evaluation_reports_turns_and_tool_calls_per_episode(tmp_path):
    tok = train_tokenizer(TASK.corpus(), tmp_path)
    torch.manual_seed(0)
    policy, reference = TinyLM().init_policy(tok), TinyLM().init_policy(tok)
    with torch.no_grad():  # EOS likely: episodes reach their second turn
        for m in (policy, reference):
            m.lm_head.weight[tok.eos_token_id] += 0.5 * m.lm_head.weight.abs().mean()
    engine = TurnEngine(HFGenerate(), Echo(), "echo", plain, lambda p: p)
    scorer = lambda prompts, responses, finished: torch.tensor([float(len(r)) for r in responses])  # noqa: E731
    result = evaluate(policy, reference, tok, TASK, scorer, engine, 2, 7)
    records = result.records
    assert len(records) == len(TASK.prompts("eval")) * 2
    for field in ("turns", "tool_calls"):
        mean = sum(r[field] for r in records) / len(records)
        assert result.metrics[f"eval/{field}"] == mean
    assert {r["turns"] for r in records} <= {1, 2} and any(r["turns"] == 2 for r in records)
    for r in records:
        assert r["tool_calls"] == (1 if r["turns"] == 2 else 0)
        if r["turns"] == 2:  # the transcript holds both turns and the observation between them
            assert " 1 + 1 = " in r["transcript"] and r["transcript"].count("<eos>") == 1 + r["finished"]
    capped = cap_texts(records, 5)
    assert all(len(r["transcript"]) <= 5 for r in capped)
    assert any(r.get("truncated") for r in capped)
