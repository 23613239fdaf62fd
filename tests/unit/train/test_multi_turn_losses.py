"""SFT and DPO on conversations (issue 35 item 4): the loss covers policy tokens only, the forward attends
the observations; single-turn demonstrations give the loss they always gave. Checked by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from align_lab.algorithms.dpo import DPO
from align_lab.models.sequences import encode_prompts, encode_responses, response_logprobs
from align_lab.models.tokenizer import train_tokenizer
from align_lab.tasks.base import Pair
from align_lab.tasks.view import observation_renderer
from align_lab.train.backend import Backend
from align_lab.train.distributed import Group
from align_lab.train.learner import token_logprobs
from align_lab.train.pairwise import pair_loss, pair_rows, step_pairs
from align_lab.train.sft import nll_term

WORDS = "game 1 2 : guess four five six higher lower"


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tokenizer([WORDS], tmp_path_factory.mktemp("tok"))


def tiny_llama(tok, seed: int = 0):
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
    )
    return LlamaForCausalLM(config).eval()


def ids(tok, text: str) -> list[int]:
    return tok.convert_tokens_to_ids(text.split())


def test_sft_on_a_conversation_is_the_nll_of_its_policy_tokens_with_observations_attended(tok):
    model = tiny_llama(tok)
    prompt, eos = "game 1 2 :", tok.eos_token_id
    conversation = [("policy", "five"), ("env", "lower"), ("policy", "four")]
    term = nll_term(model, tok, [(prompt, conversation)], 8, 16, render_observation=lambda t: t)
    loss, _ = term.loss(term.forward(*term.rows), term.rows)
    # by hand: one forward over BOS prompt five EOS lower four EOS, every token attended; the NLL of the
    # four policy tokens (five, EOS, four, EOS) given what precedes each, averaged
    sequence = [tok.bos_token_id, *ids(tok, prompt), *ids(tok, "five"), eos, *ids(tok, "lower four"), eos]
    logits = model(input_ids=torch.tensor([sequence])).logits[0]  # (L, V)
    logp = torch.log_softmax(logits.double(), -1)
    P = 1 + len(ids(tok, prompt))
    policy_positions = [P, P + 1, P + 3, P + 4]  # five, EOS, (lower is P + 2), four, EOS
    expected = -sum(logp[i - 1, sequence[i]] for i in policy_positions) / 4
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    # the observation changes the loss through attention only: another word there, another loss
    other = nll_term(model, tok, [(prompt, [conversation[0], ("env", "higher"), conversation[2]])], 8, 16)
    assert other.loss(other.forward(*other.rows), other.rows)[0].item() != pytest.approx(loss.item())


def test_single_turn_sft_loss_is_bit_for_bit_what_it_was(tok):
    model = tiny_llama(tok)
    pairs = [("game 1 2 :", "five"), ("game 2 :", "four six"), ("game 1 :", "")]
    term = nll_term(model, tok, pairs, 8, 3)
    loss, _ = term.loss(term.forward(*term.rows), term.rows)
    # the code of before: encode_responses, the mask as attention and as the loss's tokens
    prompt_ids, prompt_attn = encode_prompts(tok, [p for p, _ in pairs], 8)
    response_ids, mask = encode_responses(tok, [r for _, r in pairs], [True] * 3, 3)
    before = (
        -(response_logprobs(model, prompt_ids, prompt_attn, response_ids, mask)[0] * mask).sum() / mask.sum()
    )
    assert torch.equal(loss, before)


def bigram_model(table: torch.Tensor):
    """A model whose next-token log-probs depend on the current token only: logits = table[ids]."""

    class Bigram(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep=0, **_):
            logits = table[input_ids]  # (B, L, V)
            return SimpleNamespace(logits=logits[:, -logits_to_keep:] if logits_to_keep else logits)

    return Bigram()


def test_dpo_on_a_two_turn_pair_sums_policy_tokens_only(tok):
    V = len(tok)
    torch.manual_seed(0)
    policy_table = torch.log_softmax(torch.randn(V, V, dtype=torch.float64), -1)
    ref_table = torch.log_softmax(torch.randn(V, V, dtype=torch.float64), -1)
    eos = tok.eos_token_id
    chosen = [("policy", "five"), ("env", "lower"), ("policy", "four")]
    rejected = [("policy", "five"), ("env", "lower"), ("policy", "six")]
    pair = Pair("game 1 2 :", chosen, rejected, 1.0, 0.0)
    algo = DPO(beta=0.5)
    render = observation_renderer(
        None, SimpleNamespace(observation_template="{observation}", multi_turn=True)
    )
    prompts, c, r, _ = step_pairs(algo, tok, 16, [pair], render)
    rows = pair_rows(tok, 8, prompts, c, r, slice(0, 1))
    assert rows.mask.tolist() == [[1, 1, 0, 1, 1]] * 2 and rows.attend.tolist() == [[1] * 5] * 2
    logprobs = token_logprobs(Backend(), bigram_model(policy_table), *rows.tensors())  # (2, T)
    ref = token_logprobs(Backend(), bigram_model(ref_table), *rows.tensors())
    loss, stats = pair_loss(algo, Group(), rows, ref, algo.routes(1), None, None, logprobs)

    # by hand: log pi(y|x) = sum over the policy tokens of table[previous token, token]; the prompt's
    # last token ":" precedes the first turn; "lower" is read (it precedes "four") but not summed
    colon, five, lower = ids(tok, ": five lower")

    def logp(table, answer):
        a = ids(tok, answer)[0]
        return table[colon, five] + table[five, eos] + table[lower, a] + table[a, eos]

    h = (logp(policy_table, "four") - logp(ref_table, "four")) - (
        logp(policy_table, "six") - logp(ref_table, "six")
    )
    expected = -math.log(1 / (1 + math.exp(-0.5 * h.item())))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats  # the usual DPO statistics are reported
