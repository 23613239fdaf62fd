"""Distillation to a teacher: on-policy (OPD: the student samples, the teacher scores every token of it) and
off-policy (SFT-distill: the teacher samples, the student imitates it). The teacher is a stage of its own
(run/stages.py build_teacher): the Teacher part's keys say which model it is.

Why OPD and GKD are not one algorithm with a switch: Thinking Machines' on-policy distillation reads the
teacher's log-prob of the student's sampled token only (a (B, T) forward, the reference's machinery),
and its reverse KL reaches the weights through the policy gradient; GKD (Agarwal et al. 2024) differentiates
a divergence summed over the whole vocabulary (a (B, T, V) forward of both models; rl.generalized_jsd),
with its own lmbda mixture of student and teacher sequences. OPD is GKD's beta = 1, lmbda = 1 estimated
from one sample per token; the two estimators cost and behave differently, so each is its own choice."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch import Tensor

from align_lab.algorithms import sources
from align_lab.algorithms.base import Rollout, check_online
from align_lab.algorithms.online import OnlineBase, part
from align_lab.algorithms.parts import Aggregation, ClipLoss, PPOClip, RatioClip
from align_lab.algorithms.signals import TEACHER, VOCABULARY_DIVERGENCE, TeacherLogprobs, VocabularyDivergence
from align_lab.algorithms.sources import Source
from align_lab.rl import (
    aggregate_loss,
    discounted_returns,
    generalized_jsd,
    jsd_row_copies,
    masked_mean,
    reverse_kl_advantages,
)
from align_lab.value_checks import check


@dataclass(frozen=True)
class Teacher:
    """Which model teaches. `teacher`: a folder (a checkpoint saved by save_pretrained, or a run folder: its
    checkpoint's policy) or a Hugging Face hub id, sharing the policy's tokenizer; None: the SFT stage's
    recipe trained `teacher_epochs` epochs instead of sft.epochs (no download: the toy world's default)."""

    teacher: str | None = None
    teacher_epochs: int = 24

    def __post_init__(self) -> None:
        check(
            self.teacher is None or bool(str(self.teacher).strip()),
            "teacher",
            self.teacher,
            "a path, a hub id or null",
        )
        check(self.teacher_epochs >= 1, "teacher_epochs", self.teacher_epochs, ">= 1")


def refuse_correction(algo, why: str) -> None:
    """A distillation loss with no ratio to correct keeps the rollout correction and its rejection rules
    off: one-line errors naming the key and `why`."""
    mode, rules = algo.correction.mode, algo.correction.reject
    check(mode == "none", "correction.mode", mode, f"none: {why}")
    check(not rules, "correction.reject", rules, f"[] (none: {why})")


@dataclass
class OPD(OnlineBase):
    """On-policy distillation (Thinking Machines 2025; Agarwal et al. 2024's GKD at beta = 1, lmbda = 1):
    the student samples, the teacher scores each sampled token, A_t = -teacher_kl_coef * (log pi(y_t) -
    log pi_teacher(y_t)) (rl.reverse_kl_advantages; with gamma > 0 its discounted return-to-go), PPO-clip.

    No reward enters the loss: the task's reward is logged only (train/reward), so OPD compares with RL
    on the same eval metrics. kl_coef > 0 adds the usual k3 KL to the reference (the SFT policy) in the loss.
    """

    lr: float = 1e-3
    epochs: int = 1
    group_size: int = 4
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    teacher_kl_coef: float = 1.0  # weight of the per-token reverse KL to the teacher in the advantage
    gamma: float = (
        0.0  # discount of the reverse-KL return-to-go (0: each token its own term, Tinker's default)
    )
    # Teacher's keys
    teacher: str | None = None
    teacher_epochs: int = 24
    # RatioClip's and Aggregation's keys
    clip: RatioClip = field(default_factory=RatioClip)  # algo.clip.{low, high, dual, log_ratio_clamp}
    loss_aggregation: str = "token_mean"
    max_len: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_online(self)
        check(self.teacher_kl_coef > 0, "teacher_kl_coef", self.teacher_kl_coef, "> 0")
        check(0 <= self.gamma <= 1, "gamma", self.gamma, "in [0, 1]")
        self.teaching = part(Teacher, self)
        self.clip_loss = ClipLoss(
            PPOClip(self.clip),
            self.kl_term,
            self.correction,
            part(Aggregation, self),
            kl_in_loss=self.kl_coef > 0,
        )

    @property
    def signals(self) -> tuple:
        return (*super().signals, TeacherLogprobs())

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        per_token = reverse_kl_advantages(
            rollout.logprobs, rollout.signals[TEACHER], rollout.mask, self.teacher_kl_coef
        )  # (B, T)
        return discounted_returns(per_token, rollout.mask, self.gamma), None

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        loss, stats = self.clip_loss(batch, logprobs, self.kl_coef)
        teacher = batch.signals[TEACHER]  # (B, T)
        stats["train/teacher_kl"] = masked_mean(batch.logprobs - teacher, batch.mask).item()
        return loss, stats


@dataclass
class SFTDistill(OnlineBase):
    """Off-policy distillation (sequence-level KD, Kim & Rush 2016): the teacher samples group_size
    responses to each of the step's prompts (its source: the teacher), the student minimises their
    token NLL. No reward, no ratio (the samples are the teacher's): the rollout correction stays off."""

    lr: float = 1e-3
    epochs: int = 1
    group_size: int = 1
    loss_aggregation: str = "token_mean"
    teacher: str | None = None
    teacher_epochs: int = 24
    source: ClassVar[Source] = Source(sources.TEACHER, on_policy=0.0)  # the teacher's samples, every step

    def __post_init__(self) -> None:
        super().__post_init__()
        check_online(self, ratio=False)
        refuse_correction(
            self, "the samples are the teacher's, there is no behaviour policy of the student to correct"
        )
        self.teaching = part(Teacher, self)

    @property
    def signals(self) -> tuple:
        return (*super().signals, TeacherLogprobs())

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        return rollout.logprobs.new_ones(()) * rollout.mask, None  # (B, T) each teacher token, weight 1

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        loss = aggregate_loss(-logprobs, batch.mask, self.loss_aggregation)
        return loss, {"train/clip_frac": 0.0}


@dataclass
class GKD(OnlineBase):
    """Generalized knowledge distillation (Agarwal et al. 2024, Algorithm 1; TRL's GKDTrainer): each step,
    with probability lmbda the student's own samples, else the teacher's (seq_kd) or, seq_kd false, the
    task's demonstrations of the step's prompts (TRL's default: the dataset's completions); the loss is
    the generalized JSD_beta between teacher and student over the whole vocabulary at every response
    token (rl.generalized_jsd; beta 0 forward KL, 1 reverse KL), token mean (TRL: kept tokens' sum over
    their count). No reward, no ratio, no advantage: the divergence is differentiated directly.

    The learner computes it inside its forward (the VocabularyDivergence signal), micro-batch by one, so
    the two (rows, T, V) logits exist for one micro-batch's rows at a time (train/learner.py outputs)."""

    lr: float = 1e-3
    epochs: int = 1
    group_size: int = 1
    lmbda: float = 0.5  # probability that a step trains on the student's own samples (TRL lmbda)
    beta: float = 0.5  # JSD interpolation: 0 forward KL(T || S), 1 reverse KL(S || T) (TRL beta)
    temperature: float = 1.0  # of both softmaxes in the divergence (TRL's compute_loss: 1, not sampling's)
    seq_kd: bool = True  # the other steps: the teacher's samples (TRL seq_kd); false: the data's
    loss_aggregation: str = "token_mean"
    max_len: int | None = None
    teacher: str | None = None
    teacher_epochs: int = 24

    def __post_init__(self) -> None:
        super().__post_init__()
        check_online(self, ratio=False)
        check(0 <= self.lmbda <= 1, "lmbda", self.lmbda, "in [0, 1]")
        check(0 <= self.beta <= 1, "beta", self.beta, "in [0, 1]")
        check(self.temperature > 0, "temperature", self.temperature, "> 0")
        refuse_correction(self, "the loss has no policy ratio (the divergence is differentiated directly)")
        self.teaching = part(Teacher, self)

    @property
    def signals(self) -> tuple:
        """The teacher's log-probs (train/teacher_kl) and the divergence over the vocabulary the loss is."""
        divergence = VocabularyDivergence(self.vocabulary_divergence, jsd_row_copies(self.beta))
        return (*super().signals, TeacherLogprobs(), divergence)

    @property
    def source(self) -> Source:
        """The student's samples with probability lmbda, else the teacher's (seq_kd; run/teacher.py checks
        the engine can sample it) or the task's demonstrations (run/teacher.py checks every training
        prompt has one)."""
        return Source(sources.TEACHER if self.seq_kd else sources.DATA, on_policy=self.lmbda)

    def vocabulary_divergence(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        """(b, T) JSD_beta per token at `temperature` (rl.generalized_jsd), from (b, T, V) logits."""
        return generalized_jsd(student_logits, teacher_logits, self.beta, self.temperature)

    def advantages(self, rollout: Rollout) -> tuple[Tensor, None]:
        return rollout.mask.clone(), None  # (B, T) unused by the loss: the divergence needs no advantage

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        jsd = batch.signals[VOCABULARY_DIVERGENCE]  # (B, T) with the policy's graph (train/learner.py)
        loss = aggregate_loss(jsd, batch.mask, self.loss_aggregation, self.max_len)
        stats = {"train/clip_frac": 0.0, "train/teacher_jsd": masked_mean(jsd.detach(), batch.mask).item()}
        teacher = batch.signals[TEACHER]  # (B, T)
        stats["train/teacher_kl"] = masked_mean(batch.logprobs - teacher, batch.mask).item()
        return loss, stats
