"""KTO's reference point z_0 on TRL's mismatched KL batch (algo.kl_reference_point=mismatched, the
default): the pairwise loop's rotated rows and KTO's loss against TRL's KTOTrainer re-derived on two tiny
float64 Llamas, loss and every policy gradient to 1e-6 (align_lab's log-probs are float32: rl/logprobs.py).

Peer: huggingface/trl@f2cd57710ae345ea6428ae95363267fcf38a3dc8 trl/trainer/kto_trainer.py L1096-1111
(KL_completion_ids: the completions rotated by one within the batch, (x_1, y_n), (x_2, y_1), ...),
L1280-1330 (_compute_kl_logps: the KL rows' summed completion log-probs, no gradient), L1478-1590
(_compute_loss: kl = mean(KL_logps - ref_KL_logps) detached, clamped at 0; desirable
1 - sigmoid(beta (r - kl)), undesirable 1 - sigmoid(beta (kl - r)), weighted, concatenated), L1657
(losses.nanmean()). TRL's paired data unpaired (trl/data_utils.py unpair_preference_dataset) is the
chosen rows then the rejected rows of the same prompts, as the loop's rows.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from align_lab.algorithms.kto import KTO
from align_lab.algorithms.preference import Pairs
from align_lab.train.backend import Backend
from align_lab.train.context import Models
from align_lab.train.distributed import Group
from align_lab.train.learner import Learner, token_logprobs
from align_lab.train.micro import Rows
from align_lab.train.pairwise import pair_loss, reference_forward

PROMPTS = [[5, 6, 7], [9, 8], [4, 4, 4, 3]]  # m = 3 pairs
CHOSEN = [[11, 12, 13], [14], [15, 16]]
REJECTED = [[21, 22], [23, 24, 25, 26], [27]]


def models():
    """(policy, reference): the reference's LM head 4 times sharper, so a random token is less likely
    under it and z_0 = mean log pi / pi_ref is positive (not clamped to 0)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=40,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        max_position_embeddings=32,
        pad_token_id=0,
    )
    policy = LlamaForCausalLM(config).double().eval()
    reference = copy.deepcopy(policy)
    with torch.no_grad():
        reference.lm_head.weight.mul_(4.0)
    return policy, reference.requires_grad_(False)


def loop_learner(algo, policy, reference) -> Learner:
    """The loop's Learner of `algo` over these models, forwards whole (no micro-batches), no optimiser."""
    train = SimpleNamespace(micro_batch_size=None)
    return Learner(algo, Models(policy, reference), None, Backend(), Group(), train, None, None, None)


def loop_rows() -> Rows:
    """The loop's 2m rows, chosen first: left-padded prompts, right-padded responses."""
    prompts, responses = PROMPTS * 2, CHOSEN + REJECTED
    P, T = max(map(len, prompts)), max(map(len, responses))
    prompt_ids = torch.tensor([[0] * (P - len(p)) + p for p in prompts])  # (2m, P)
    ids = torch.tensor([r + [0] * (T - len(r)) for r in responses])  # (2m, T)
    mask = torch.tensor([[1.0] * len(r) + [0.0] * (T - len(r)) for r in responses], dtype=torch.float64)
    return Rows(prompt_ids, (prompt_ids != 0).long(), ids, mask, mask)  # attend = mask: single turn


def trl_logps(model, prompt, completion):
    """A row's summed completion log-probs from one unpadded forward (selective_log_softmax)."""
    ids = torch.tensor([prompt + completion])
    logps = F.log_softmax(model(ids).logits[0, :-1], -1).gather(-1, ids[0, 1:, None])[:, 0]
    return logps[len(prompt) - 1 :].sum()


def trl_kto_loss(policy, reference, beta=0.1, desirable_weight=1.0, undesirable_weight=1.0):
    prompts, completions = PROMPTS * 2, CHOSEN + REJECTED
    labels = [True] * len(CHOSEN) + [False] * len(REJECTED)
    kl_completions = [completions[-1], *completions[:-1]]
    logps = torch.stack([trl_logps(policy, p, c) for p, c in zip(prompts, completions, strict=True)])
    with torch.no_grad():
        ref = torch.stack([trl_logps(reference, p, c) for p, c in zip(prompts, completions, strict=True)])
        kl_logps = torch.stack(
            [trl_logps(policy, p, c) for p, c in zip(prompts, kl_completions, strict=True)]
        )
        ref_kl = torch.stack(
            [trl_logps(reference, p, c) for p, c in zip(prompts, kl_completions, strict=True)]
        )
    kl = (kl_logps - ref_kl).mean().detach().clamp(min=0)
    label = torch.tensor(labels)
    chosen, rejected = (logps - ref)[label], (logps - ref)[~label]
    chosen_losses = 1 - torch.sigmoid(beta * (chosen - kl))
    rejected_losses = 1 - torch.sigmoid(beta * (kl - rejected))
    losses = torch.cat((desirable_weight * chosen_losses, undesirable_weight * rejected_losses), 0)
    return losses.nanmean(), kl


@pytest.mark.parametrize("weights", [(1.0, 1.0), (1.5, 0.5)])
def test_the_mismatched_reference_point_is_trls_kto_kl_batch(weights):
    policy, reference = models()
    theirs = copy.deepcopy(policy)
    algo = KTO(desirable_weight=weights[0], undesirable_weight=weights[1])
    assert algo.mismatched_kl
    rows = loop_rows()
    ref_logprobs, kl_logratios = reference_forward(loop_learner(algo, policy, reference), rows)  # (2m,·)
    logprobs = token_logprobs(Backend(), policy, *rows.tensors())  # (2m, T) with a graph
    routes = algo.routes(len(PROMPTS))
    loss, stats = pair_loss(algo, Group(), rows, ref_logprobs, routes, kl_logratios, None, logprobs)
    peer, kl = trl_kto_loss(theirs, reference, 0.1, *weights)
    loss.backward()
    peer.backward()
    assert kl > 0 and stats["train/kto_kl"] == pytest.approx(kl.item(), rel=1e-6)  # z_0 active
    torch.testing.assert_close(loss, peer, rtol=1e-6, atol=1e-7, check_dtype=False)
    for (name, ours), mine in zip(policy.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(ours.grad, mine.grad, rtol=1e-6, atol=1e-7, msg=name)


def test_the_batch_reference_point_differs_and_needs_no_extra_forward():
    policy, reference = models()
    algo = KTO(kl_reference_point="batch")
    ref_logprobs, kl_logratios = reference_forward(loop_learner(algo, policy, reference), loop_rows())
    assert kl_logratios is None and ref_logprobs.shape == loop_rows().response_ids.shape
    with pytest.raises(
        ValueError, match=r"^kl_reference_point=matched: must be one of \('mismatched', 'batch'\)$"
    ):
        KTO(kl_reference_point="matched")
    with pytest.raises(ValueError, match="needs the mismatched rows' kl_logratios"):
        KTO().loss(Pairs(*torch.zeros(4, 2), algo.routes(2)))
