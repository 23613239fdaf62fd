"""Self-distillation: SDPO (Hübotter et al. 2026, "Reinforcement Learning via Self-Distillation"; TRL's
SDPOTrainer, its default sampled_token mode). No teacher of its own: the policy, shown a successful
sibling of a response in its prompt, is the teacher of that response.

Each step GRPO's G samples per prompt are scored; for each response, the first other response of its group
whose reward reaches success_threshold is put into the teacher's prompt (reprompt_template around
solution_template); the teacher (teacher_kind: an EMA of the policy, the starting policy or the live one)
scores every token of the response under that prompt, and the policy follows the per-token reverse KL to
it (rl.self_distillation_loss). A response with no successful sibling has no teacher: it adds 0 to the
loss but counts in its mean (TRL's). distillation_weight < 1 blends in GRPO's own loss on its group
advantages, as TRL's convex combination does."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from align_lab.algorithms.base import Rollout
from align_lab.algorithms.distill import refuse_correction
from align_lab.algorithms.grpo import GRPO
from align_lab.algorithms.signals import TEACHER, TEACHER_INFORMED, SelfTeacher
from align_lab.rl import aggregate_loss, masked_mean, self_distillation_loss
from align_lab.value_checks import check

TEACHER_KINDS = ("ema", "base", "live")


def teacher_prompts(
    prompts: list[str],
    responses: list[str],
    scores: list[float],
    group_size: int,
    threshold: float,
    self_success: bool,
    reprompt: str,
    solution: str,
) -> tuple[list[str], list[bool]]:
    """Each row's teacher prompt and whether it shows a demonstration (TRL's successful-rollout teacher
    context): the first response of the row's group (rows i // G * G ...) scoring >= `threshold`, the row
    itself only when `self_success`, formatted as `solution` into `reprompt`; a row without one keeps its
    own prompt (and teaches nothing). `prompts`: the task's raw prompt texts, (B,) each."""
    texts, informed = [], []
    for i, prompt in enumerate(prompts):
        start = i - i % group_size
        shown = [
            j for j in range(start, start + group_size) if (self_success or j != i) and scores[j] >= threshold
        ]
        if not shown:
            texts.append(prompt)
            informed.append(False)
            continue
        demo = solution.format(successful_previous_attempt=responses[shown[0]])
        texts.append(reprompt.format(prompt=prompt, solution=demo, feedback=""))
        informed.append(True)
    return texts, informed


def check_template(template: str, key: str, names: tuple[str, ...]) -> None:
    """One line naming `key` when `template` is not a str.format template of exactly the fields `names`."""
    import string

    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:
        fields = {f"<{e}>"}
    braces = ", ".join("{" + n + "}" for n in names)
    check(fields <= set(names), key, template, f"a template whose fields are among {braces}")


@dataclass
class SDPO(GRPO):
    """Self-distillation policy optimisation (module docstring). GRPO's keys set its policy term, which
    counts only at distillation_weight < 1; kl_coef 0 (TRL's beta 0), token_mean (TRL's loss_type dapo)."""

    kl_coef: float = 0.0
    loss_aggregation: str = "token_mean"
    distillation_weight: float = 1.0  # loss = (1 - w) * GRPO's + w * self-distillation (TRL 1.0: pure)
    is_clip: float | None = 2.0  # the distillation's truncated importance weight min(pi/pi_old, c) (TRL 2.0)
    success_threshold: float = 1.0  # a sibling whose reward is >= this is a demonstration (TRL 1.0)
    self_success: bool = False  # True: a success may teach itself (TRL dont_reprompt_on_self_success=false)
    teacher_kind: str = "ema"  # ema | base | live (TRL teacher_model_kind, default ema)
    teacher_update_rate: float = (
        0.05  # the EMA teacher's step toward the policy per optimiser step (TRL 0.05)
    )
    reprompt_template: str = "{prompt}{solution}{feedback}\n\nCorrectly solve the original question.\n"
    solution_template: str = "\nCorrect solution:\n\n{successful_previous_attempt}\n\n"

    def __post_init__(self) -> None:
        super().__post_init__()
        w = self.distillation_weight
        check(0 <= w <= 1, "distillation_weight", w, "in [0, 1]")
        check(self.is_clip is None or self.is_clip > 0, "is_clip", self.is_clip, "> 0 or null")
        check(
            self.teacher_kind in TEACHER_KINDS, "teacher_kind", self.teacher_kind, f"one of {TEACHER_KINDS}"
        )
        rate = self.teacher_update_rate
        check(0 < rate <= 1, "teacher_update_rate", rate, "in (0, 1]")
        check_template(self.reprompt_template, "reprompt_template", ("prompt", "solution", "feedback"))
        check_template(self.solution_template, "solution_template", ("successful_previous_attempt",))
        if w == 1:  # the policy term is off: its KL and its rollout correction would be ignored in silence
            why = "distillation_weight=1 leaves out GRPO's term, which holds the KL"
            check(self.kl_coef == 0, "kl_coef", self.kl_coef, f"0 ({why}; set distillation_weight < 1)")
            refuse_correction(self, "distillation_weight=1: the loss has no policy ratio to correct")

    @property
    def signals(self) -> tuple:
        """GRPO's, and the self-teacher's log-probs (the EMA's rate only for teacher_kind=ema)."""
        rate = self.teacher_update_rate if self.teacher_kind == "ema" else 0.0
        return (*super().signals, SelfTeacher(self.teacher_kind, rate))

    def teacher_prompts(
        self, prompts: list[str], responses: list[str], scores: list[float]
    ) -> tuple[list[str], list[bool]]:
        """The teacher's prompt of each row and whether it shows a demonstration (`teacher_prompts`)."""
        how = (self.success_threshold, self.self_success, self.reprompt_template, self.solution_template)
        return teacher_prompts(prompts, responses, scores, self.group_size, *how)

    def loss(self, batch: Rollout, logprobs: Tensor, values: Tensor | None) -> tuple[Tensor, dict]:
        teacher = batch.signals[TEACHER]  # (B, T)
        informed = batch.signals[TEACHER_INFORMED].to(batch.mask.dtype)  # (B,)
        mask = batch.mask * informed[:, None]  # (B, T) the taught rows' tokens
        terms = self_distillation_loss(logprobs, teacher, batch.logprobs, self.is_clip)
        distill = aggregate_loss(terms, mask, "seq_mean_token_mean")  # TRL: per sequence, then every row
        stats = {
            "train/self_distillation_loss": distill.item(),
            "train/teacher_kl": masked_mean(batch.logprobs - teacher, mask).item(),
            "train/taught_rows": informed.mean().item(),
        }
        w = self.distillation_weight
        if w == 1:
            return distill, stats | {"train/clip_frac": 0.0}
        policy, policy_stats = super().loss(batch, logprobs, values)
        return (1 - w) * policy + w * distill, policy_stats | stats
