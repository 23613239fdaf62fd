"""LoRA adapters on the policy through peft (Hu et al. 2021, "LoRA: Low-Rank Adaptation of LLMs")."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

import torch


@dataclass
class LoRA:
    """Low-rank adapters W + (alpha / r) B A on `target_modules` of the policy; only they train. The
    reference, where it is the model the adapters start from, is a model of its own on the policy's
    frozen weights (`frozen_base`: no second copy)."""

    enabled: bool = False
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"r={self.r}: must be >= 1")
        if self.alpha <= 0:
            raise ValueError(f"alpha={self.alpha}: must be > 0")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}: must be in [0, 1)")
        if not self.target_modules:
            raise ValueError("target_modules=[]: must name at least one module (e.g. q_proj)")

    def apply(self, model):
        """The model with fresh adapters (B = 0, so it starts as `model`), or `model` if disabled."""
        if not self.enabled:
            return model
        from peft import LoraConfig, get_peft_model

        check_targets(self.target_modules, model)
        config = LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
        )
        with warnings.catch_warnings():  # peft reads transformers' deprecated alias: two lines of noise
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
            return get_peft_model(model, config)


def check_targets(targets: list[str], model) -> None:
    """Each of lora.target_modules names a module of `model` (by its last name, or a dotted tail of its
    path, as peft matches them), or one line naming the policy's linear modules: peft's
    NoMatchingPeftModuleError was a 66-line traceback (sixth hunt of 2026-12-04)."""
    from align_lab.value_checks import ConfigError

    names = [name for name, _ in model.named_modules() if name]
    missing = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names)]
    if missing:
        linear = sorted(
            {n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        )
        raise ConfigError(
            f"lora.target_modules={list(targets)}: the policy has no module named {', '.join(missing)}; "
            f"its linear modules: {', '.join(linear)}"
        )


def causal_lm(model):
    """The transformers model inside a peft wrapper of adapter layers (LoRA: its layers in place of the
    linears they wrap, so its forward is the wrapper's), or `model` itself; a wrapper that adds virtual
    tokens (prompt learning) stays whole, as only its own forward adds them."""
    if type(model).__module__.split(".")[0] != "peft":  # not a PeftModel (peft itself is not imported)
        return model
    return model if model.active_peft_config.is_prompt_learning else model.get_base_model()


def frozen_base(policy):
    """The transformers model under a LoRA policy's adapters as a model of its own, built on the policy's
    own tensors (no copy): what the policy computes with its adapters off (peft's `disable_adapter`,
    how TRL takes a LoRA run's reference), bit for bit, but a separate module tree, so its eval mode,
    rollouts and forwards never touch the policy's. None where `policy` is not a LoRA model, where one
    of its base weights trains (it would move away from the reference), or where a weight of the model
    its config builds has no counterpart of that shape in the policy."""
    inner = causal_lm(policy)
    if inner is policy:
        return None
    named = [*inner.named_parameters(remove_duplicate=False), *inner.named_buffers(remove_duplicate=False)]
    tensors = {name.replace(".base_layer.", "."): t for name, t in named}  # LoRA layer -> what it wraps
    if any(t.requires_grad for name, t in named if "lora_" not in name):
        return None
    with torch.device("meta"):  # the module tree alone: every tensor is the policy's
        base = type(inner)(copy.deepcopy(inner.config))
    for prefix, module in base.named_modules(remove_duplicate=False):
        for slots in (module._parameters, module._buffers):
            for key, meta in slots.items():
                found = tensors.get(f"{prefix}.{key}" if prefix else key)
                if meta is not None and (found is None or found.shape != meta.shape):
                    return None
                slots[key] = found if meta is not None else None
    base.generation_config = copy.deepcopy(inner.generation_config)
    return base
