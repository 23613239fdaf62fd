"""reward=hf_rm: a trained sequence-classification reward model from a hub id or a local directory,
with its own tokenizer and chat template (it sees the task's prompt, not the policy's rendering)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from align_lab.models.hf import DTYPES, torch_dtype
from align_lab.models.saved import off_disk, resolve_checkpoint


def rm_texts(tokenizer, prompts: list[str], responses: list[str], chat_template: bool, separator: str):
    """(text, add_special_tokens) per pair: a user/assistant conversation in the RM's chat template
    (which holds its own special tokens), else prompt + separator + response."""
    if chat_template and tokenizer.chat_template:
        return [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False
            )
            for p, r in zip(prompts, responses, strict=True)
        ], False
    return [p + separator + r for p, r in zip(prompts, responses, strict=True)], True


@dataclass
class HFRewardModel:
    """A 1-label AutoModelForSequenceClassification; scores are its logit at the last token."""

    name_or_path: str | None = None
    tokenizer: str | None = None
    chat_template: bool = True
    separator: str = " "
    batch_size: int = 16
    max_tokens: int = 1024
    dtype: str = "float32"

    holds_model = True  # a run keeps the reward model in memory (resources.py)

    def __post_init__(self) -> None:
        if not self.name_or_path:
            raise ValueError("name_or_path=None: must be a reward model's hub id or local directory")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: must be >= 1")
        if self.max_tokens < 2:
            raise ValueError(f"max_tokens={self.max_tokens}: must be >= 2")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype}: must be one of {', '.join(DTYPES)}")
        self._dir = resolve_checkpoint(self.name_or_path, "name_or_path")
        self._tok_dir = resolve_checkpoint(self.tokenizer, "tokenizer") if self.tokenizer else self._dir

    def load(self):
        """(model, tokenizer); a model with more than one label is an error."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(self._dir, dtype=torch_dtype(self.dtype))
        off_disk(model)  # its weights out of the mapped file (models/saved.py)
        if model.config.num_labels != 1:
            raise ValueError(
                f"reward.name_or_path={self.name_or_path}: num_labels={model.config.num_labels}; "
                "a reward model has 1"
            )
        tok = AutoTokenizer.from_pretrained(self._tok_dir)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        tok.padding_side, tok.truncation_side = "right", "left"  # keep the response when truncating
        model.config.pad_token_id = tok.pad_token_id
        return model.eval().requires_grad_(False), tok

    def scorer(self, stages):
        model, tok = self.load()
        raw = stages.raw_prompt

        @torch.no_grad()
        def score(prompts, responses, finished):
            texts, special = rm_texts(
                tok, [raw(p) for p in prompts], responses, self.chat_template, self.separator
            )
            out = []
            for i in range(0, len(texts), self.batch_size):
                enc = tok(
                    texts[i : i + self.batch_size],
                    add_special_tokens=special,
                    padding=True,
                    truncation=True,
                    max_length=self.max_tokens,
                    return_tensors="pt",
                )
                out.append(model(**enc).logits[:, 0].float())  # (b,)
            return torch.cat(out)  # (B,)

        return score
