"""SDPO's self-distillation against TRL 1.16.0's SDPOTrainer on identical inputs (docs/algorithms.md,
"Self-distillation"): its sampled_token loss (trl/experimental/sdpo/loss_utils.py
compute_sampled_token_self_distillation_loss and apply_importance_sampling_clipping, aggregated as
trl/experimental/sdpo/sdpo_trainer.py _compute_self_distillation_loss does) and its teacher prompts
(SuccessfulRolloutTeacherContextBuilder.build: the first other successful response of the group, TRL's
templates). No test imports TRL: the loss and its gradient are held to TRL's own numbers, printed by
`benchmarks/.venv-trl/bin/python scripts/trl_sdpo_loss.py` on the tensors below."""

import pytest
import torch

from align_lab.algorithms.self_distill import SDPO, teacher_prompts
from align_lab.rl import follow
from tests.unit.algorithms.flat_keys import algo_of
from tests.unit.algorithms.test_algorithms_group import rollout

F64 = torch.float64
STUDENT = torch.tensor(
    [
        [[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -0.5, 0.3], [-2.0, 0.1, 0.4, 1.5]],
        [[0.0, 0.0, 0.0, 3.0], [2.5, -0.3, 0.8, -1.2], [9.0, -9.0, 9.0, -9.0]],
        [[0.2, 0.2, 0.2, 0.2], [1.0, -1.0, 0.5, 0.0], [0.3, 0.3, -0.3, 0.0]],
    ],
    dtype=F64,
)
TEACHER = torch.tensor(
    [
        [[1.5, -0.5, 1.0, 0.2], [0.0, 2.0, -1.0, 0.0], [-1.0, -1.0, 2.0, 1.0]],
        [[0.7, 0.1, -0.4, 2.0], [1.0, 1.0, 1.0, -2.0], [-9.0, 9.0, -9.0, 9.0]],
        [[0.0, 1.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5], [2.0, -2.0, 0.0, 0.0]],
    ],
    dtype=F64,
)
IDS = torch.tensor([[0, 1, 2], [3, 0, 0], [1, 2, 3]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=F64)
TAUGHT = torch.tensor([True, True, False])  # row 2 has no successful sibling
OLD_SHIFT = torch.tensor([[0.3, -0.2, 1.5], [-0.4, 0.0, 0.0], [0.1, 0.1, 0.1]], dtype=F64)

# benchmarks/.venv-trl/bin/python scripts/trl_sdpo_loss.py (TRL 1.16.0), 2026-11-28:
# is_clip, loss, dloss/dS[0,0,2], dloss/dS[1,1,0]


def logps(logits):
    """(B, T) log-softmax at IDS in float64 (TRL's selective_log_softmax; ours casts to fp32)."""
    return torch.log_softmax(logits, -1).gather(-1, IDS.unsqueeze(-1)).squeeze(-1)


TRL_SDPO = [
    (None, 0.4818042486140657, 0.09010610372055708, 0.030929208600881997),
    (2.0, 0.7599583533730373, 0.12163051772355085, 0.030929208600881997),
    (1.1, 0.5136056561472884, 0.09911671409261281, 0.030929208600881997),
]


@pytest.mark.parametrize("is_clip,loss,grad_002,grad_110", TRL_SDPO)
def test_sdpo_loss_and_its_gradient_are_trls_sdpotrainer_on_identical_logits(
    is_clip, loss, grad_002, grad_110
):
    student = STUDENT.clone().requires_grad_()
    logprobs = logps(student)  # (B, T) with the graph, as the update's forward
    # TRL applies its clip only with old log-probs: without one (is_clip None) pi_old = pi, a weight of 1
    old = (logprobs - (0 if is_clip is None else OLD_SHIFT)).detach()
    batch = rollout([1.0, 1.0, 0.0], MASK, 3, logprobs=old)
    batch.signals["teacher"] = logps(TEACHER)
    batch.signals["teacher_informed"] = TAUGHT
    ours, stats = SDPO(group_size=3, is_clip=is_clip).loss(batch, logprobs, None)
    ours.backward()
    assert ours.item() == pytest.approx(loss, rel=1e-12)
    assert student.grad[0, 0, 2].item() == pytest.approx(grad_002, rel=1e-10)
    assert student.grad[1, 1, 0].item() == pytest.approx(grad_110, rel=1e-10)
    assert stats["train/taught_rows"] == pytest.approx(2 / 3)


def test_a_row_is_taught_by_the_first_other_success_of_its_group_with_trls_templates():
    prompts = ["1+1=", "1+1=", "1+1=", "2+2=", "2+2=", "2+2="]
    responses = ["2", "3", "two", "5", "4", "4"]
    scores = [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    algo = SDPO(group_size=3)
    texts, informed = algo.teacher_prompts(prompts, responses, scores)
    assert informed == [True, True, True, False, False, False]
    # row 0's own success is no demonstration (dont_reprompt_on_self_success): its sibling 2 is
    assert texts[0] == "1+1=\nCorrect solution:\n\ntwo\n\n\n\nCorrectly solve the original question.\n"
    assert texts[1] == texts[2] == texts[0].replace("two", "2")
    assert texts[3:] == prompts[3:]  # no success in the group: the row's own prompt, untaught
    _, informed = teacher_prompts(prompts, responses, [1.0, 0, 0, 0, 0, 0], 3, 1.0, False, "{prompt}", "")
    assert informed == [False, True, True, False, False, False]  # a lone success teaches only its siblings
    texts, informed = teacher_prompts(
        prompts, responses, [1.0, 0, 0, 0, 0, 0], 3, 1.0, True, "{solution}", "{successful_previous_attempt}"
    )
    assert informed[0] and texts[0] == "2"  # self_success: its own response
    _, informed = teacher_prompts(prompts, responses, [0.5, 0.7, 0, 0, 0, 0], 3, 0.6, False, "{prompt}", "")
    assert informed == [True, False, True, False, False, False]  # the threshold is >= success_threshold


def test_the_ema_teacher_moves_its_rate_toward_the_policy():
    teacher, policy = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        teacher.weight.fill_(1.0), teacher.bias.fill_(0.0), policy.weight.fill_(3.0), policy.bias.fill_(-2.0)
    follow(teacher, policy, 0.05)
    assert teacher.weight.tolist() == [[pytest.approx(1.1)] * 2]  # 0.95 * 1 + 0.05 * 3
    assert teacher.bias.item() == pytest.approx(-0.1)


@pytest.mark.parametrize(
    "keys,named",
    [
        ({"distillation_weight": 1.5}, "distillation_weight"),
        ({"teacher_kind": "frozen"}, "teacher_kind"),
        ({"teacher_update_rate": 0.0}, "teacher_update_rate"),
        ({"is_clip": 0.0}, "is_clip"),
        ({"reprompt_template": "{prompt}{answer}"}, "reprompt_template"),
        ({"solution_template": "{solution"}, "solution_template"),
        ({"kl_coef": 0.05}, "kl_coef"),  # at distillation_weight 1 the KL would be dropped in silence
        ({"rollout_correction": "tis"}, "correction.mode"),  # the old flat key, nested by algo_of
    ],
)
def test_a_key_that_cannot_work_is_one_line_naming_it(keys, named):
    with pytest.raises(ValueError, match=named) as e:
        algo_of(SDPO, **keys)
    assert "\n" not in str(e.value)


def test_a_blend_is_grpos_loss_and_the_distillation_in_proportion():
    student = STUDENT.clone().requires_grad_()
    logprobs = logps(student)
    batch = rollout([1.0, 1.0, 0.0], MASK, 3, logprobs=logprobs.detach())
    batch.signals["teacher"] = logps(TEACHER)
    batch.signals["teacher_informed"] = TAUGHT
    algo = SDPO(group_size=3, distillation_weight=0.25)
    batch.advantages, _ = algo.advantages(batch)
    blend, _ = algo.loss(batch, logprobs, None)
    pure, _ = SDPO(group_size=3).loss(batch, logprobs, None)
    policy, _ = algo.clip_loss(batch, logprobs, 0.0)
    assert blend.item() == pytest.approx(0.75 * policy.item() + 0.25 * pure.item(), rel=1e-12)
