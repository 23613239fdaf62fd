"""The KV-cache sampling loop draws exactly the tokens of transformers' generate for one seed."""

from __future__ import annotations

import pytest
import torch

from align_lab.models.tiny import TinyLM
from align_lab.models.tokenizer import train_tokenizer
from align_lab.rollout import sampling
from align_lab.rollout.hf import HFGenerate
from align_lab.tasks.toy_prefs import ToyPrefs

TASK = ToyPrefs(max_response_tokens=12)
# prompts of 1, 2 and 3 topics: left padding in the batch
PROMPTS = [*TASK.prompts("train")[:3], "river :", "wolf storm garden :"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(TASK.corpus(), tmp_path_factory.mktemp("tok"))


def both(model, tok, greedy=False, **engine):
    out = []
    for use_generate in (True, False):
        torch.manual_seed(3)
        engine_ = HFGenerate(use_generate=use_generate, **engine)
        out.append(engine_.sample(model, tok, PROMPTS, 4, 12, 6, greedy))
    return out


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize(
    "greedy, engine",
    [(False, {}), (False, {"temperature": 0.7, "top_k": 5, "top_p": 0.9}), (True, {})],
)
def test_kv_cache_loop_draws_the_tokens_of_generate(arch, greedy, engine, fast, tokenizer, monkeypatch):
    if not fast:  # the model's own forward decodes (other model classes)
        monkeypatch.setattr(sampling, "fast_decode_supported", lambda model: False)
    torch.manual_seed(0)
    model = TinyLM(arch=arch).init_policy(tokenizer)
    generate, loop = both(model, tokenizer, greedy, **engine)
    assert torch.equal(loop.response_ids, generate.response_ids)
    assert loop.responses == generate.responses and loop.finished == generate.finished
    assert torch.equal(loop.mask, generate.mask)


def test_kv_cache_loop_stops_when_every_row_has_ended(tokenizer):
    torch.manual_seed(0)
    model = TinyLM(arch="qwen2").init_policy(tokenizer)
    with torch.no_grad():  # EOS likely at every step: all rows end well before the limit
        model.lm_head.weight[tokenizer.eos_token_id] *= 40
    generate, loop = both(model, tokenizer)
    assert all(loop.finished) and loop.response_ids.shape[1] < 12
    assert torch.equal(loop.response_ids, generate.response_ids)
