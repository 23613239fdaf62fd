"""Tiny causal LMs built from a local transformers config: no download, seconds to train."""

from __future__ import annotations

from dataclasses import dataclass

from align_lab.models.hf_io import HFLoading

ARCHS = ("llama", "qwen2")


@dataclass
class TinyLM(HFLoading):
    """A transformers Llama or Qwen2 model from a config; head_dim = hidden_size / heads (>= 32 for vLLM)."""

    arch: str = "llama"
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 128
    max_positions: int = 64
    # torch threads its runs use at most (hardware.num_threads unset); None: no cap
    max_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch={self.arch}: must be one of {', '.join(ARCHS)}")
        for name in (
            "hidden_size",
            "num_layers",
            "num_heads",
            "intermediate_size",
            "max_positions",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")
        if self.max_threads is not None and self.max_threads < 1:
            raise ValueError(f"max_threads={self.max_threads}: must be >= 1 or null (no cap)")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size}: must be divisible by num_heads={self.num_heads}"
            )

    def fingerprint(self) -> dict:
        return {"model": "tiny", **{k: v for k, v in vars(self).items() if k != "max_threads"}}

    def hf_config(self, tokenizer, num_labels: int | None = None):
        """The transformers config for this tokenizer (num_labels for reward/value heads)."""
        from transformers import AutoConfig

        # heads without dropout (transformers' token-classification head defaults to 0.1): a critic's
        # values must not be noisy, nor draw from the training RNG (RLHF practice: TRL, OpenRLHF)
        extra = {"num_labels": num_labels, "classifier_dropout": 0.0} if num_labels else {}
        return AutoConfig.for_model(
            self.arch,
            vocab_size=len(tokenizer),
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_positions,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=True,
            **extra,
        )

    def init_policy(self, tokenizer):
        """A freshly initialised causal LM (the SFT stage's starting point)."""
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_config(self.hf_config(tokenizer))
