"""TRL 1.16.0's SDPO self-distillation loss in its default sampled_token mode and its gradient, on fixed
logits: trl/experimental/sdpo/loss_utils.py compute_sampled_token_self_distillation_loss and
apply_importance_sampling_clipping, aggregated as trl/experimental/sdpo/sdpo_trainer.py
SDPOTrainer._compute_self_distillation_loss does (the loss mask is the completion mask times the
self-distillation mask; a per-sequence mean, then the mean over rows). The numbers
tests/unit/algorithms/conventions/test_trl_sdpo.py holds SDPO's loss to. Run with TRL's python:
    benchmarks/.venv-trl/bin/python scripts/trl_sdpo_loss.py
prints `is_clip loss dloss/dS[0,0,2] dloss/dS[1,1,0]` per line. Not part of the test run."""

import torch
from trl.experimental.sdpo.loss_utils import (
    apply_importance_sampling_clipping,
    compute_sampled_token_self_distillation_loss,
)
from trl.trainer.utils import selective_log_softmax

STUDENT = [
    [[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -0.5, 0.3], [-2.0, 0.1, 0.4, 1.5]],
    [[0.0, 0.0, 0.0, 3.0], [2.5, -0.3, 0.8, -1.2], [9.0, -9.0, 9.0, -9.0]],
    [[0.2, 0.2, 0.2, 0.2], [1.0, -1.0, 0.5, 0.0], [0.3, 0.3, -0.3, 0.0]],
]
TEACHER = [
    [[1.5, -0.5, 1.0, 0.2], [0.0, 2.0, -1.0, 0.0], [-1.0, -1.0, 2.0, 1.0]],
    [[0.7, 0.1, -0.4, 2.0], [1.0, 1.0, 1.0, -2.0], [-9.0, 9.0, -9.0, 9.0]],
    [[0.0, 1.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5], [2.0, -2.0, 0.0, 0.0]],
]
IDS = [[0, 1, 2], [3, 0, 0], [1, 2, 3]]
COMPLETION_MASK = [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]  # row 1's last token is padding
TAUGHT = [1.0, 1.0, 0.0]  # row 2 has no successful sibling
OLD_SHIFT = [[0.3, -0.2, 1.5], [-0.4, 0.0, 0.0], [0.1, 0.1, 0.1]]  # log pi_old = log pi - shift

if __name__ == "__main__":
    teacher, ids = torch.tensor(TEACHER, dtype=torch.float64), torch.tensor(IDS)
    mask = (
        torch.tensor(COMPLETION_MASK, dtype=torch.float64)
        * torch.tensor(TAUGHT, dtype=torch.float64)[:, None]
    )
    for is_clip in (None, 2.0, 1.1):
        student = torch.tensor(STUDENT, dtype=torch.float64, requires_grad=True)
        per_token = compute_sampled_token_self_distillation_loss(
            student, teacher, ids, distillation_alpha=1.0
        )
        if is_clip is not None:
            logps = selective_log_softmax(student, ids)
            old = (logps - torch.tensor(OLD_SHIFT, dtype=torch.float64)).detach()
            per_token = apply_importance_sampling_clipping(per_token, logps, old, is_clip)
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
        loss.backward()
        grad = student.grad
        print(is_clip, repr(loss.item()), repr(grad[0, 0, 2].item()), repr(grad[1, 1, 0].item()))
