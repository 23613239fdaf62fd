"""On-policy distillation (OPD), SFT on teacher samples (SFT-distill) and GKD's generalized JSD, on
hand-derived numbers; the teacher's keys and vocabulary check (algorithms/distill.py, rl/distill.py,
run/teacher.py)."""

import math

import pytest
import torch

from align_lab.algorithms.distill import GKD, OPD, SFTDistill
from align_lab.algorithms.parts import RolloutCorrection
from align_lab.algorithms.signals import TeacherLogprobs
from align_lab.rl import generalized_jsd, on_policy_step, reverse_kl_advantages
from align_lab.rl.distill import MIXTURE_COPIES
from align_lab.run.teacher import vocabulary_problem
from tests.unit.algorithms.test_algorithms_group import close, lengths_mask, rollout, t

STUDENT = t([[-1.0, -2.0, 0.0]])  # (1, 3) log pi of the student's own tokens; the third is padding
TEACHER = t([[-1.5, -1.0, -9.0]])  # (1, 3) log pi_teacher of the same tokens
MASK = lengths_mask([2], 3)


def test_reverse_kl_advantage_is_minus_the_sampled_log_ratio_and_zero_on_padding():
    # A = -(log pi - log pi_T): -(-1 + 1.5) = -0.5; -(-2 + 1) = 1.0; padding 0. coef 2 doubles them
    close(reverse_kl_advantages(STUDENT, TEACHER, MASK), [[-0.5, 1.0, 0.0]])
    close(reverse_kl_advantages(STUDENT, TEACHER, MASK, 2.0), [[-1.0, 2.0, 0.0]])


def distill_rollout():
    batch = rollout([0.0], MASK, 1)
    batch.logprobs, batch.signals["teacher"] = STUDENT.clone(), TEACHER.clone()
    return batch


def test_opd_advantage_is_per_token_by_default_and_a_discounted_return_with_gamma():
    batch = distill_rollout()
    close(OPD(group_size=1).advantages(batch)[0], [[-0.5, 1.0, 0.0]])  # gamma 0: each token its own term
    # gamma 0.5: A_1 = 1.0; A_0 = -0.5 + 0.5 * 1.0 = 0.0
    close(OPD(group_size=1, gamma=0.5).advantages(batch)[0], [[0.0, 1.0, 0.0]])


def test_opd_loss_at_ratio_one_is_the_mean_sampled_reverse_kl():
    # ratio 1: per-token loss -A = [0.5, -1.0]; token mean -0.25 = mean(log pi - log pi_T) = (0.5 - 1) / 2
    batch = distill_rollout()
    algo = OPD(group_size=1)
    batch.advantages, _ = algo.advantages(batch)
    loss, stats = algo.loss(batch, batch.logprobs.clone().requires_grad_(), None)
    close(loss, -0.25)
    assert stats["train/teacher_kl"] == pytest.approx(-0.25)
    assert algo.signals == (TeacherLogprobs(),)  # kl_coef 0: no reference forward


def test_sft_distill_is_the_token_nll_of_the_teachers_samples():
    # NLL token mean over the two kept tokens: (1 + 2) / 2 = 1.5; the advantage is the mask
    batch = distill_rollout()
    algo = SFTDistill()
    batch.advantages, _ = algo.advantages(batch)
    close(batch.advantages, [[1.0, 1.0, 0.0]])
    close(algo.loss(batch, batch.logprobs, None)[0], 1.5)
    assert algo.source.kinds == ("teacher",) and algo.signals == (TeacherLogprobs(),)


# student logits [0, 0] -> S = [1/2, 1/2]; teacher logits [ln 3, 0] -> T = [3/4, 1/4]
# beta 0, KL(T||S) = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.304099 - 0.173287 = 0.130812
# beta 1, KL(S||T) = 1/2 ln(2/3) + 1/2 ln 2 = -0.202733 + 0.346574 = 0.143841
# beta 1/2, M = [5/8, 3/8]: KL(T||M) = 3/4 ln(6/5) + 1/4 ln(2/3) = 0.136741 - 0.101366 = 0.035375,
#   KL(S||M) = 1/2 ln(4/5) + 1/2 ln(4/3) = -0.111572 + 0.143841 = 0.032269; JSD = (0.035375 + 0.032269) / 2
@pytest.mark.parametrize("beta,value", [(0.0, 0.130812), (1.0, 0.143841), (0.5, 0.033822)])
def test_generalized_jsd_on_a_two_token_vocabulary(beta, value):
    student = t([[[0.0, 0.0]]])  # (1, 1, 2)
    teacher = t([[[math.log(3.0), 0.0]]])
    assert generalized_jsd(student, teacher, beta).item() == pytest.approx(value, abs=1e-6)


def test_generalized_jsd_temperature_divides_both_logits():
    # temperature 2 on logits [2 ln 3, 0] and [0, 0] is the case above at temperature 1
    student, teacher = t([[[0.0, 0.0]]]), t([[[2 * math.log(3.0), 0.0]]])
    assert generalized_jsd(student, teacher, 1.0, temperature=2.0).item() == pytest.approx(0.143841, abs=1e-6)


@pytest.mark.parametrize(
    "cls,key,value",
    [
        (OPD, "teacher_kl_coef", 0.0),
        (OPD, "gamma", 1.5),
        (OPD, "teacher_epochs", 0),
        (OPD, "teacher", " "),
        (SFTDistill, "teacher_epochs", 0),
        (SFTDistill, "correction.mode", "tis"),
        (SFTDistill, "correction.reject", ["token_log_ratio"]),
        (GKD, "lmbda", 1.5),
        (GKD, "beta", -0.1),
        (GKD, "temperature", 0.0),
        (GKD, "correction.mode", "tis"),
        (GKD, "correction.reject", ["token_log_ratio"]),
        (GKD, "teacher_epochs", 0),
    ],
)
def test_each_distillation_key_is_refused_out_of_range_in_one_line(cls, key, value):
    with pytest.raises(ValueError, match=f"^{key}=") as info:
        node, _, field = key.rpartition(".")  # a key of the correction's node: that part's argument
        cls(**({node: RolloutCorrection(**{field: value})} if node else {key: value}))
    assert "\n" not in str(info.value)


def test_a_teacher_of_another_vocabulary_is_named_by_what_differs():
    vocab = {"a": 0, "b": 1}
    assert vocabulary_problem(None, 2, vocab, 2) is None  # no tokenizer saved: the size agrees
    assert vocabulary_problem({"a": 0, "b": 1}, 2, vocab, 2) is None
    assert vocabulary_problem(None, 3, vocab, 2) == "its vocabulary has 3 entries, the policy's 2"
    assert (
        vocabulary_problem({"a": 1, "b": 0}, 2, vocab, 2)
        == "token 'a': id 1 in its tokenizer, 0 in the policy's"
    )


def test_gkd_loss_is_the_token_mean_of_the_divergence_over_the_vocabulary():
    # two tokens of the two-token vocabulary above, both S = [1/2, 1/2] against T = [3/4, 1/4]; then the
    # second is padding. beta 1/2: each token's JSD 0.033822 (above), token mean 0.033822
    algo = GKD(beta=0.5)
    student = t([[[0.0, 0.0], [0.0, 0.0]]]).requires_grad_()  # (1, 2, 2)
    teacher = t([[[math.log(3.0), 0.0], [math.log(3.0), 0.0]]])
    batch = rollout([0.0], lengths_mask([2], 2), 1)
    batch.signals["teacher"] = batch.logprobs  # the teacher's log-probs (train/teacher_kl): 0 here
    batch.signals["vocabulary_divergence"] = algo.vocabulary_divergence(student, teacher)  # (1, 2)
    loss, stats = algo.loss(batch, batch.logprobs, None)
    assert loss.item() == pytest.approx(0.033822, abs=1e-6)
    assert stats["train/teacher_jsd"] == pytest.approx(0.033822, abs=1e-6)
    loss.backward()  # the divergence itself is the loss: the student's logits get its gradient
    assert student.grad is not None and student.grad.abs().sum() > 0
    # padding: only the first token counts; with beta 0 its KL(T||S) 0.130812 is the mean
    batch = rollout([0.0], lengths_mask([1], 2), 1)
    batch.signals["teacher"] = batch.logprobs
    batch.signals["vocabulary_divergence"] = GKD(beta=0.0).vocabulary_divergence(student.detach(), teacher)
    assert GKD(beta=0.0).loss(batch, batch.logprobs, None)[0].item() == pytest.approx(0.130812, abs=1e-6)


def test_gkd_lmbda_draws_whose_samples_a_step_trains_on():
    # lmbda 1: every step the student's (TRL: random() <= 1 always); lmbda 0: every step the teacher's
    assert all(on_policy_step(1.0, 0, s) for s in range(50))
    assert not any(on_policy_step(0.0, 0, s) for s in range(50))
    assert GKD(lmbda=1.0).source.kinds == ("policy",) and GKD(lmbda=0.5).source.kinds == ("policy", "teacher")
    assert GKD(lmbda=0.5, seq_kd=False).source.kinds == ("policy", "data")  # the task's demonstrations
    # the draw is a function of (seed, step) alone: the same on a resume, another for another seed
    draws = [GKD(lmbda=0.5).source.at(3, s) == "teacher" for s in range(400)]
    assert draws == [GKD(lmbda=0.5).source.at(3, s) == "teacher" for s in range(400)]
    assert 0.4 < sum(draws) / 400 < 0.6  # about 1 - lmbda of the steps (binomial sd 0.025)
    teacher, divergence = GKD().signals  # no reference (kl_coef 0): the teacher, the JSD over the vocabulary
    assert teacher == TeacherLogprobs() and divergence.row_copies == MIXTURE_COPIES  # beta 0.5


def test_gkd_draw_is_made_on_the_cpu_whatever_the_default_device():
    # on a GPU run/hardware.py sets torch's default device to cuda, and a CPU generator's draw then failed
    # ("Expected a 'cuda' device type for generator": gkd's smoke run on the H200, 2026-12-04); a meta
    # default device stands in for cuda here
    expected = [on_policy_step(0.5, 3, s) for s in range(20)]
    with torch.device("meta"):
        assert [on_policy_step(0.5, 3, s) for s in range(20)] == expected


def test_a_teacher_of_another_vocabulary_is_named_with_its_path():
    """Hunt of 2026-12-04, t6: the line said `algo.teacher: ...`, not which teacher."""
    from types import SimpleNamespace

    from align_lab.run.teacher import check_vocabulary
    from align_lab.value_checks import ConfigError

    policy = SimpleNamespace(get_vocab=lambda: {"a": 0, "b": 1})
    with pytest.raises(ConfigError) as e:
        check_vocabulary("/m/teacher", {"a": 0, "b": 1, "c": 2}, 3, policy, 2)
    assert str(e.value) == (
        "algo.teacher=/m/teacher: the teacher does not share the policy's tokenizer (its vocabulary has 3 "
        "entries, the policy's 2); pick one that does"
    )
