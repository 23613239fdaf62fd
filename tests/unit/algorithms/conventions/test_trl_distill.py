"""The distillation losses against their peers on identical inputs (docs/algorithms.md#distillation):
TRL 1.16.0's GKD loss (trl/experimental/gkd/gkd_trainer.py, GKDTrainer.generalized_jsd_loss) and its
DistillationTrainer loss (trl/trainer/distillation_trainer.py _chunked_divergence_loss, whose per-token
divergence is trl/kernels/chunked_divergence.py's), read in trl-1.16.0 from PyPI; and Thinking Machines'
on-policy distillation, tinker-cookbook at 53aaf8de3a681fd7930defcebda262918ff62edd
(tinker_cookbook/distillation/train_on_policy.py incorporate_kl_penalty). No test imports a peer: each
peer's formula is written out below as the expected computation, on fixed tensors; GKD's whole loss and
its gradient are held to TRL's own numbers, printed by `benchmarks/.venv-trl/bin/python
scripts/trl_gkd_loss.py` (TRL 1.16.0 GKDTrainer.generalized_jsd_loss on the tensors below)."""

import math

import pytest
import torch
import torch.nn.functional as F

from align_lab.algorithms.distill import GKD, OPD
from align_lab.rl import aggregate_loss, generalized_jsd, reverse_kl_advantages
from tests.unit.algorithms.test_algorithms_group import rollout

# (B=2, T=3, V=4) fixed logits; row 1's last token is padding (TRL: label -100)
STUDENT = torch.tensor(
    [
        [[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -0.5, 0.3], [-2.0, 0.1, 0.4, 1.5]],
        [[0.0, 0.0, 0.0, 3.0], [2.5, -0.3, 0.8, -1.2], [9.0, -9.0, 9.0, -9.0]],
    ],
    dtype=torch.float64,
)
TEACHER = torch.tensor(
    [
        [[1.5, -0.5, 1.0, 0.2], [0.0, 2.0, -1.0, 0.0], [-1.0, -1.0, 2.0, 1.0]],
        [[0.7, 0.1, -0.4, 2.0], [1.0, 1.0, 1.0, -2.0], [-9.0, 9.0, -9.0, 9.0]],
    ],
    dtype=torch.float64,
)
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)


def trl_generalized_jsd_loss(student_logits, teacher_logits, mask, beta, temperature=1.0):
    """TRL 1.16.0 GKDTrainer.generalized_jsd_loss, reduction "batchmean" with labels: log-softmax of
    logits / temperature; beta 0: F.kl_div(log S, log T) (KL(T || S)); beta 1: F.kl_div(log T, log S)
    (KL(S || T)); else log M = logsumexp(log S + log(1 - beta), log T + log beta) and beta *
    F.kl_div(log M, log T) + (1 - beta) * F.kl_div(log M, log S), each reduction "none", log_target
    True, summed over the vocabulary by the final sum; kept tokens' sum / their count (clamped to 1)."""
    s = F.log_softmax(student_logits / temperature, dim=-1)
    t = F.log_softmax(teacher_logits / temperature, dim=-1)
    if beta == 0:
        jsd = F.kl_div(s, t, reduction="none", log_target=True)
    elif beta == 1:
        jsd = F.kl_div(t, s, reduction="none", log_target=True)
    else:
        beta_t = torch.tensor(beta, dtype=s.dtype)
        m = torch.logsumexp(torch.stack([s + torch.log1p(-beta_t), t + torch.log(beta_t)]), dim=0)
        jsd = beta * F.kl_div(m, t, reduction="none", log_target=True) + (1 - beta) * F.kl_div(
            m, s, reduction="none", log_target=True
        )
    keep = mask.bool()
    return jsd[keep].sum() / keep.sum().clamp_min(1)


def trl_chunked_divergence(student_logits, teacher_logits, mask, beta, temperature=1.0):
    """TRL 1.16.0 DistillationTrainer: per position, log M = logaddexp(log S + log(1 - beta), log T +
    log beta), divergence beta * sum T (log T - log M) + (1 - beta) * sum S (log S - log M) (beta 0 and
    1: the forward and reverse KL); loss = the kept positions' sum / their count (num_items None)."""
    s = torch.log_softmax(student_logits / temperature, dim=-1)
    t = torch.log_softmax(teacher_logits / temperature, dim=-1)
    if beta == 0:
        per = (t.exp() * (t - s)).sum(-1)
    elif beta == 1:
        per = (s.exp() * (s - t)).sum(-1)
    else:
        m = torch.logaddexp(s + math.log(1 - beta), t + math.log(beta))
        per = beta * (t.exp() * (t - m)).sum(-1) + (1 - beta) * (s.exp() * (s - m)).sum(-1)
    return (per * mask).sum() / mask.sum().clamp_min(1)


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_generalized_jsd_token_mean_is_trls_gkd_and_distillation_trainer_loss(beta, temperature):
    ours = aggregate_loss(generalized_jsd(STUDENT, TEACHER, beta, temperature), MASK, "token_mean")
    torch.testing.assert_close(ours, trl_generalized_jsd_loss(STUDENT, TEACHER, MASK, beta, temperature))
    torch.testing.assert_close(ours, trl_chunked_divergence(STUDENT, TEACHER, MASK, beta, temperature))


def tinker_kl_advantages(sampled_logprobs, teacher_logprobs, mask, kl_penalty_coef, kl_discount_factor):
    """tinker-cookbook incorporate_kl_penalty: reverse_kl = (sampled - teacher) * mask; advantages
    -kl_penalty_coef * mask * reverse_kl, then (discount > 0) the discounted future sum
    A_t = sum_{k >= t} discount^(k - t) x_k, added to the task's advantages (0 without a reward)."""
    x = -kl_penalty_coef * mask * (sampled_logprobs - teacher_logprobs) * mask
    if kl_discount_factor == 0:
        return x
    out = torch.zeros_like(x)
    running = torch.zeros(x.shape[0], dtype=x.dtype)
    for k in reversed(range(x.shape[1])):
        running = x[:, k] + kl_discount_factor * running
        out[:, k] = running
    return out


@pytest.mark.parametrize("coef,gamma", [(1.0, 0.0), (0.5, 0.0), (1.0, 0.9), (2.0, 1.0)])
def test_opd_advantages_are_tinker_cookbooks_kl_penalty_advantages(coef, gamma):
    student = torch.log_softmax(STUDENT, -1)[..., 0]  # (B, T) log-probs of token 0, as if sampled
    teacher = torch.log_softmax(TEACHER, -1)[..., 0]
    batch = rollout([0.0, 0.0], MASK, 1)
    batch.logprobs, batch.signals["teacher"] = student, teacher
    ours, _ = OPD(group_size=1, teacher_kl_coef=coef, gamma=gamma).advantages(batch)
    torch.testing.assert_close(ours, tinker_kl_advantages(student, teacher, MASK, coef, gamma))


def test_opds_sampled_reverse_kl_averages_to_trls_beta_one_divergence():
    # E_{y ~ S}[log S(y) - log T(y)] = KL(S || T): the minus advantage of every vocabulary entry as the
    # sampled token, weighted by its student probability, is TRL's per-token loss at beta = 1
    s, t = torch.log_softmax(STUDENT, -1), torch.log_softmax(TEACHER, -1)  # (B, T, V)
    per_entry = -reverse_kl_advantages(s, t, MASK[..., None])  # (B, T, V)
    expected = (s.exp() * per_entry).sum(-1)  # (B, T)
    ours = aggregate_loss(expected, MASK, "token_mean")
    torch.testing.assert_close(ours, trl_generalized_jsd_loss(STUDENT, TEACHER, MASK, 1.0))


# scripts/trl_gkd_loss.py's output (TRL 1.16.0): beta, temperature, loss, dloss/dS[0,0,2], dloss/dS[1,1,0]
TRL_GKD = [
    (0.0, 1.0, 0.41311222295338723, 0.08180043122109722, 0.09212335541349424),
    (0.0, 0.7, 0.746663181239787, 0.1582693928386084, 0.1622400902161837),
    (0.5, 1.0, 0.09351273521694661, 0.017358698026708624, 0.01640020917373579),
    (0.5, 0.7, 0.15513247676640918, 0.025473897824369374, 0.01959233383842777),
    (0.9, 1.0, 0.03373546016924075, 0.00614384756913879, 0.005563225731983547),
    (0.9, 0.7, 0.05693330774944412, 0.008414630115029523, 0.006151387637155734),
    (1.0, 1.0, 0.3790304305868276, 0.06891406109650036, 0.061942860885416125),
    (1.0, 0.7, 0.6512601950569425, 0.09367881760040435, 0.06762546806117532),
]


@pytest.mark.parametrize("beta,temperature,loss,grad_002,grad_110", TRL_GKD)
def test_gkd_loss_and_its_gradient_are_trls_gkdtrainer_on_identical_logits(
    beta, temperature, loss, grad_002, grad_110
):
    algo = GKD(beta=beta, temperature=temperature)
    student = STUDENT.clone().requires_grad_()
    batch = rollout([0.0, 0.0], MASK, 1)
    batch.signals["teacher"] = batch.logprobs
    batch.signals["vocabulary_divergence"] = algo.vocabulary_divergence(
        student, TEACHER
    )  # (B, T), as the learner's forward gives it
    ours, _ = algo.loss(batch, batch.logprobs, None)
    ours.backward()
    assert ours.item() == pytest.approx(loss, rel=1e-12)
    assert student.grad[0, 0, 2].item() == pytest.approx(grad_002, rel=1e-10)
    assert student.grad[1, 1, 0].item() == pytest.approx(grad_110, rel=1e-10)
