"""Pure tensor math for RLHF: KL estimators, advantages and baselines, normalisation, losses.

Shapes: B rollouts, G samples per prompt (contiguous), T response tokens, N preference pairs.
`mask` is always the response-token mask (1 = keep; float or bool). Imports only torch.
"""

from .advantages import (
    discounted_returns,
    gae,
    group_normalize,
    leave_one_out,
    shape_token_rewards,
)
from .kl import KL_ESTIMATORS, adaptive_kl_coef, kl_penalty
from .logprobs import entropy_from_logits, logprobs_from_logits, sequence_logprobs
from .losses import (
    AGGREGATIONS,
    DPO_LOSS_TYPES,
    aggregate_loss,
    clipped_surrogate,
    clipped_value_loss,
    dpo_loss,
)
from .stats import masked_mean, masked_sum, masked_var, masked_whiten

__all__ = [
    "AGGREGATIONS",
    "DPO_LOSS_TYPES",
    "KL_ESTIMATORS",
    "adaptive_kl_coef",
    "aggregate_loss",
    "clipped_surrogate",
    "clipped_value_loss",
    "discounted_returns",
    "dpo_loss",
    "entropy_from_logits",
    "gae",
    "group_normalize",
    "kl_penalty",
    "leave_one_out",
    "logprobs_from_logits",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "sequence_logprobs",
    "shape_token_rewards",
]
