"""TRL 1.16.0's GKD loss (trl/experimental/gkd/gkd_trainer.py GKDTrainer.generalized_jsd_loss, labels
-100 on padding, its default reduction) and its gradient on fixed logits: the numbers
tests/unit/algorithms/conventions/test_trl_distill.py holds GKD's loss to. Run with TRL's python:
    benchmarks/.venv-trl/bin/python scripts/trl_gkd_loss.py
prints `beta temperature loss dloss/dS[0,0,2] dloss/dS[1,1,0]` per line. Not part of the test run."""

import torch
from trl.experimental.gkd.gkd_trainer import GKDTrainer

STUDENT = [
    [[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -0.5, 0.3], [-2.0, 0.1, 0.4, 1.5]],
    [[0.0, 0.0, 0.0, 3.0], [2.5, -0.3, 0.8, -1.2], [9.0, -9.0, 9.0, -9.0]],
]
TEACHER = [
    [[1.5, -0.5, 1.0, 0.2], [0.0, 2.0, -1.0, 0.0], [-1.0, -1.0, 2.0, 1.0]],
    [[0.7, 0.1, -0.4, 2.0], [1.0, 1.0, 1.0, -2.0], [-9.0, 9.0, -9.0, 9.0]],
]
LABELS = [[0, 1, 2], [3, 0, -100]]  # row 1's last token is padding

if __name__ == "__main__":
    teacher, labels = torch.tensor(TEACHER, dtype=torch.float64), torch.tensor(LABELS)
    for beta in (0.0, 0.5, 0.9, 1.0):
        for temperature in (1.0, 0.7):
            student = torch.tensor(STUDENT, dtype=torch.float64, requires_grad=True)
            loss = GKDTrainer.generalized_jsd_loss(
                student, teacher, labels=labels, beta=beta, temperature=temperature
            )
            loss.backward()
            grad = student.grad
            print(
                beta, temperature, repr(loss.item()), repr(grad[0, 0, 2].item()), repr(grad[1, 1, 0].item())
            )
