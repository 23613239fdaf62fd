"""Pure tensor math for RLHF: KL estimators, advantages and baselines, normalisation, losses.

Shapes: B rollouts, G samples per prompt (contiguous), T response tokens, N preference pairs.
`mask` is always the response-token mask (1 = keep; float or bool). Imports only torch.
"""

from .advantages import (
    STD_SCOPES,
    best_of_group,
    broadcast_to_tokens,
    clip_reward,
    decoupled_group_normalize,
    discounted_returns,
    gae,
    group_normalize,
    leave_one_out,
    shape_sequence_rewards,
    shape_token_rewards,
    standardize,
)
from .distill import (
    follow,
    generalized_jsd,
    jsd_row_copies,
    on_policy_step,
    reverse_kl_advantages,
    self_distillation_loss,
)
from .kl import KL_CONTROLLER_INPUTS, KL_ESTIMATORS, adaptive_kl_coef, kl_penalty, observed_kl
from .logprobs import (
    entropy_from_logits,
    logprobs_from_logits,
    selective_entropy,
    selective_logprobs,
    sequence_logprobs,
)
from .losses import (
    AGGREGATIONS,
    DPO_LOSS_TYPES,
    aggregate_loss,
    clipped_surrogate,
    clipped_value_loss,
    dpo_loss,
    importance_ratio,
)
from .mismatch import rollout_mismatch
from .preference import (
    SAIL_EXTRA_GRAD_MODES,
    SF_BASELINES,
    dpo_log_likelihood,
    first_is_chosen,
    policy_swap_probability,
    sail_label_term,
    sail_response_term,
    sample_routes,
)
from .stats import (
    masked_mean,
    masked_sum,
    masked_var,
    masked_whiten,
    pass_ks,
    running_moments,
    running_std,
)

__all__ = [
    "STD_SCOPES",
    "clip_reward",
    "decoupled_group_normalize",
    "standardize",
    "AGGREGATIONS",
    "DPO_LOSS_TYPES",
    "KL_CONTROLLER_INPUTS",
    "KL_ESTIMATORS",
    "adaptive_kl_coef",
    "best_of_group",
    "broadcast_to_tokens",
    "aggregate_loss",
    "clipped_surrogate",
    "clipped_value_loss",
    "discounted_returns",
    "dpo_loss",
    "entropy_from_logits",
    "gae",
    "generalized_jsd",
    "jsd_row_copies",
    "on_policy_step",
    "reverse_kl_advantages",
    "self_distillation_loss",
    "follow",
    "importance_ratio",
    "group_normalize",
    "kl_penalty",
    "leave_one_out",
    "logprobs_from_logits",
    "selective_entropy",
    "selective_logprobs",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "observed_kl",
    "running_moments",
    "running_std",
    "pass_ks",
    "rollout_mismatch",
    "sequence_logprobs",
    "shape_sequence_rewards",
    "shape_token_rewards",
    # preference.py
    "SAIL_EXTRA_GRAD_MODES",
    "SF_BASELINES",
    "dpo_log_likelihood",
    "first_is_chosen",
    "policy_swap_probability",
    "sail_label_term",
    "sail_response_term",
    "sample_routes",
]
