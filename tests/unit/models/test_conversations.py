"""Conversations as tensors (issue 35): policy turns in the mask, observations attended only, on a tiny
word-level tokenizer by hand (models/sequences.py); observations rendered by the chat template."""

from __future__ import annotations

import pytest
import torch

from align_lab.models.chat import chat_observation
from align_lab.models.sequences import attended, encode_conversations, encode_responses, observation_ids
from align_lab.models.tokenizer import train_tokenizer
from align_lab.tasks.view import observation_renderer

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tokenizer(["calc 1 2 3 + = 20 higher lower five four"], tmp_path_factory.mktemp("tok"))


def ids(tok, text: str) -> list[int]:
    return tok.convert_tokens_to_ids(text.split())


def test_a_conversation_is_policy_ids_with_eos_and_observation_ids_attended_not_masked(tok):
    eos, pad = tok.eos_token_id, tok.pad_token_id
    conversations = [
        [("policy", "five"), ("env", "lower"), ("policy", "four")],
        [("policy", "1 + 2"), ("env", "3"), ("policy", "3")],
        "20",  # a single-turn response: one policy turn
    ]
    render = observation_renderer(None, type("Env", (), {"observation_template": "= {observation}"})())
    response_ids, mask, attend = encode_conversations(tok, conversations, render, max_tokens=8)
    assert response_ids.tolist() == [
        ids(tok, "five") + [eos] + ids(tok, "= lower four") + [eos, pad, pad],
        ids(tok, "1 + 2") + [eos] + ids(tok, "= 3 3") + [eos],
        ids(tok, "20") + [eos] + [pad] * 6,
    ]
    assert mask.tolist() == [
        [1, 1, 0, 0, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 0, 1, 1],
        [1, 1, 0, 0, 0, 0, 0, 0],
    ]
    assert attend.tolist() == [
        [1, 1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 0, 0, 0, 0, 0, 0],
    ]
    assert observation_ids(tok, "= lower") == ids(tok, "= lower")  # no BOS: add_special_tokens=False
    # cut at max_tokens: the second conversation loses its last policy token and EOS
    cut_ids, cut_mask, cut_attend = encode_conversations(tok, conversations[1:2], render, max_tokens=6)
    assert cut_ids.tolist() == [ids(tok, "1 + 2") + [eos] + ids(tok, "= 3")]
    assert cut_mask.tolist() == [[1, 1, 1, 1, 0, 0]] and cut_attend.tolist() == [[1] * 6]
    with pytest.raises(ValueError, match="turn role 'user'"):
        encode_conversations(tok, [[("user", "five")]], render, 8)


def test_single_turn_responses_encode_as_before(tok):
    responses = ["five", "1 + 2 = 3", ""]
    new_ids, mask, attend = encode_conversations(tok, responses, lambda t: t, max_tokens=4)
    old_ids, old_mask = encode_responses(tok, responses, [True] * 3, max_tokens=4)
    assert torch.equal(new_ids, old_ids) and torch.equal(mask, old_mask) and torch.equal(attend, old_mask)


def test_attended_is_attend_or_the_mask():
    mask, attend = torch.tensor([[1.0, 0.0, 1.0]]), torch.tensor([[1.0, 1.0, 1.0]])
    assert attended(mask, None) is mask and attended(mask, attend) is attend


def test_a_chat_template_renders_an_observation_as_the_next_user_turn_ending_in_the_assistant_header(tok):
    tok.chat_template = CHATML
    tok.eos_token = "<|im_end|>"
    try:
        assert chat_observation(tok, "20") == "\n<|im_start|>user\n20<|im_end|>\n<|im_start|>assistant\n"
        view = type("View", (), {"render_observation": lambda self, t: chat_observation(tok, t)})()
        render = observation_renderer(view, None)  # no env template: the text itself
        assert render("20") == chat_observation(tok, "20")
    finally:
        tok.chat_template, tok.eos_token = None, "<eos>"


def test_without_a_view_or_template_the_observation_is_its_text():
    assert observation_renderer(None, None)("higher") == "higher"
    env = type("Env", (), {"observation_template": " {observation} "})()
    assert observation_renderer(object(), env)("{x}") == " {x} "  # braces in the text are not fields
