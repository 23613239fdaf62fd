"""LoRA adapters on the policy through peft (Hu et al. 2021, "LoRA: Low-Rank Adaptation of LLMs")."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoRA:
    """Low-rank adapters W + (alpha / r) B A on `target_modules` of the policy; only they train. The
    reference stays the separate frozen SFT model (not the policy with its adapter disabled)."""

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

        config = LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, config)


def causal_lm(model):
    """The transformers model inside a peft wrapper of adapter layers (LoRA: its layers in place of the
    linears they wrap, so its forward is the wrapper's), or `model` itself; a wrapper that adds virtual
    tokens (prompt learning) stays whole, as only its own forward adds them."""
    if type(model).__module__.split(".")[0] != "peft":  # not a PeftModel (peft itself is not imported)
        return model
    return model if model.active_peft_config.is_prompt_learning else model.get_base_model()
