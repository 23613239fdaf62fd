"""Pretrained Hugging Face checkpoints (model=hf): policy, reference and critic from a hub id or a
local directory, the checkpoint's tokenizer and chat template, dtype and token limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import torch

from align_lab.models.chat import chat_observation, chat_prompt
from align_lab.models.hf_io import parameter_count
from align_lab.models.saved import (
    check_loaded,
    directory_fingerprint,
    let_out,
    load_report_held,
    off_disk,
    resolve_checkpoint,
)
from align_lab.value_checks import canonical_dtype, saved_folder

DTYPES = ("float32", "bfloat16", "float16")


def saved_tokenizer(folder: str):
    """AutoTokenizer.from_pretrained(folder), read from disk once a process while its files are unchanged
    (a run loads it at admission, at its stage and for a teacher's check: SmolLM2's 0.25 s each); each
    call gets its own copy (a caller sets its padding side)."""
    import copy

    try:
        stamp = tuple(
            sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(folder).iterdir())
        )
    except OSError:  # no folder (from_pretrained says why), or one changing as it is read
        return _tokenizer.__wrapped__(folder, ())
    return copy.deepcopy(_tokenizer(str(Path(folder).resolve()), stamp))


@lru_cache(maxsize=8)
def _tokenizer(folder: str, stamp: tuple):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def torch_dtype(name: str):
    import torch

    return getattr(torch, name)


# a trained model's fp32 weights, gradients and AdamW moments (16 bytes) plus its activations: SmolLM2-135M
# gives 2.5 GB, measured 1.8-2.6 GB per model held in docs/real_model_study.md's runs
BYTES_PER_PARAMETER = 20
ALGO_DEFAULTS = ("lr", "critic_lr", "kl_coef")  # what a model preset may set for every algorithm


@dataclass
class HFModel:
    """model=hf: policy (and SFT start) from name_or_path; reference and critic bodies from it or from
    their own checkpoints (same tokenizer)."""

    name_or_path: str | None = None
    gguf_file: str | None = None
    cache_dir: str | None = None
    reference: str | None = None
    critic: str | None = None
    tokenizer: str | None = None
    dtype: str = "float32"
    chat_template: bool = True
    system_prompt: str | None = None
    max_prompt_tokens: int = 256
    max_response_tokens: int = 128
    # the optimiser scale that suits this model (lr, critic_lr, kl_coef): every algorithm takes these
    # values unless the user sets the key (run/defaults.py apply_model_defaults); the run records where
    # they came from
    algo_defaults: dict[str, float] = field(default_factory=dict)
    # GB one of its models takes in a run; a run's request to Slurm or a local sweep is this times the
    # models it holds, unless hardware.resources.mem_gb_per_model is set (run/resources.py)
    mem_gb_per_model: float | None = None

    pretrained = True

    def __post_init__(self) -> None:
        if bool(self.name_or_path) == bool(self.gguf_file):
            raise ValueError(
                f"name_or_path={self.name_or_path}, gguf_file={self.gguf_file}: exactly one must be set "
                "(a hub id or local checkpoint directory, or a GGUF file)"
            )
        self.dtype = canonical_dtype(self.dtype)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype}: must be one of {', '.join(DTYPES)} (or fp32, bf16, fp16)")
        for key in ("max_prompt_tokens", "max_response_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be >= 1")
        mem = self.mem_gb_per_model
        if mem is not None and not (math.isfinite(mem) and mem > 0):
            raise ValueError(
                f"mem_gb_per_model={mem}: must be a finite number > 0 (or null: hardware's, else 1 GB)"
            )
        for key, value in self.algo_defaults.items():
            if key not in ALGO_DEFAULTS:
                raise ValueError(f"algo_defaults.{key}: unknown key; allowed: {', '.join(ALGO_DEFAULTS)}")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"algo_defaults.{key}={value}: must be a finite number >= 0")
        self._dirs = {
            key: resolve_checkpoint(getattr(self, key), key, key != "tokenizer" and not self.gguf_file)
            for key in ("name_or_path", "reference", "critic", "tokenizer")
            if getattr(self, key)
        }
        if self.gguf_file:
            from align_lab.models.gguf import locate

            self._gguf = locate(self.gguf_file, "gguf_file")  # said as model.gguf_file (config.build)

    def memory_per_model_gb(self) -> float | None:
        """GB one of its models takes in a run: the preset's `mem_gb_per_model`, else the policy
        checkpoint's parameters x BYTES_PER_PARAMETER; None where neither is known."""
        if self.mem_gb_per_model:
            return self.mem_gb_per_model
        folder = self._dirs.get("name_or_path")
        params = parameter_count(folder) if folder else None
        return round(params * BYTES_PER_PARAMETER / 2**30, 3) if params else None

    def positions(self) -> int | None:
        """The positions the policy was built for (its config.json's max_position_embeddings); None where
        it is not known before the model is loaded (a GGUF file not yet converted)."""
        from align_lab.models.hf_io import saved_positions

        folder = self._dirs.get("name_or_path")
        return saved_positions(folder) if folder else None

    def context_warning(self) -> str | None:
        """Where the longest prompt and response pass the positions the policy was built for: it samples
        and trains past them (RoPE extrapolates, with no word; thirty-third hunt, case 72)."""
        positions, total = self.positions(), self.max_prompt_tokens + self.max_response_tokens
        if not positions or total <= positions:
            return None
        return (
            f"model.max_prompt_tokens={self.max_prompt_tokens} + model.max_response_tokens="
            f"{self.max_response_tokens} = {total} tokens pass the {positions} positions the model was built "
            "for (max_position_embeddings in its config.json): a long prompt's response is sampled and "
            f"trained past them; lower them to {positions} together"
        )

    def path(self, key: str) -> str:
        """The local directory of a checkpoint key (reference, critic, tokenizer fall back to the policy)."""
        return self._dirs.get(key) or self._dirs.get("name_or_path") or str(self._converted)

    @cached_property
    def _gguf_sha256(self) -> str:
        from align_lab.models.gguf import sha256

        return sha256(self._gguf)

    @cached_property
    def _converted(self) -> Path:
        """gguf_file as a plain checkpoint, converted once into the stage cache (key: its sha256)."""
        from align_lab.cache import default_cache_dir
        from align_lab.models.gguf import converted_checkpoint

        root = Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
        return converted_checkpoint(self._gguf, self._gguf_sha256, root)

    @cached_property
    def _content(self) -> dict:
        content = {key: directory_fingerprint(d) for key, d in self._dirs.items()}
        if self.gguf_file:
            content["gguf_file"] = self._gguf_sha256
        return content

    def fingerprint(self) -> dict:
        # where the cache is, or where the GGUF file lies, does not change the model: its content does
        skip = ("cache_dir", "gguf_file")
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in skip}
        return {"model": "hf", **fields, "content": self._content}

    def load_tokenizer(self):
        tok = saved_tokenizer(self.path("tokenizer"))
        if tok.eos_token_id is None:
            raise ValueError(f"model.tokenizer={self.path('tokenizer')}: the tokenizer has no eos_token")
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        return tok

    def render(self, tokenizer, prompt: str) -> str:
        if self.chat_template and tokenizer.chat_template:
            return chat_prompt(tokenizer, prompt, self.system_prompt)
        return prompt

    def view(self, task, tokenizer):
        """The task as this policy sees it (chat template, token limits); long prompts are errors."""
        from align_lab.tasks.view import PolicyView

        chat = self.chat_template and tokenizer.chat_template
        return PolicyView(
            task,
            lambda p: self.render(tokenizer, p),
            lambda texts: [len(ids) for ids in tokenizer(texts)["input_ids"]],
            self.max_prompt_tokens,
            self.max_response_tokens,
            render_observation=(lambda text: chat_observation(tokenizer, text)) if chat else None,
        )

    def check_task(self, task) -> None:
        """Before any compute: every prompt fits max_prompt_tokens (or is skipped, task.skip_invalid)."""
        self.view(task, self.load_tokenizer())

    def _load(self, auto_class, path, whole: bool = False, **kw):
        """Loads with dropout off, as RLHF trainers do (TRL's disable_dropout): log-probs and values
        of the same tokens must agree between rollout and update, and draw nothing from the RNG.
        `whole`: every weight of the model must be in the checkpoint (a causal LM: none starts random)."""
        with load_report_held(whole) as held:  # shown once the model passed check_loaded
            model, info = auto_class.from_pretrained(
                saved_folder(path), dtype=torch_dtype(self.dtype), output_loading_info=True, **kw
            )
        off_disk(model)  # its weights out of the mapped file (models/saved.py)
        if whole:
            check_loaded(model, info, path)
        let_out(held)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        return model

    def hf_config(self, tokenizer=None):
        """The policy checkpoint's transformers config (its widths size the micro-batches)."""
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(self.path("name_or_path"))

    def init_policy(self, tokenizer):
        from transformers import AutoModelForCausalLM

        return self._load(AutoModelForCausalLM, self.path("name_or_path"), whole=True)

    def load_causal_lm(self, path):
        from transformers import AutoModelForCausalLM

        return self._load(AutoModelForCausalLM, path, whole=True)

    def reference_path(self, sft_path):
        return self._dirs.get("reference", sft_path)

    def critic_path(self, sft_path):
        return self._dirs.get("critic", sft_path)

    def init_reward_model(self, tokenizer, init_from):
        """A 1-label sequence-classification model on the causal LM's body (new scalar head)."""
        from transformers import AutoModelForSequenceClassification

        rm = self._load(AutoModelForSequenceClassification, init_from, num_labels=1)
        rm.config.pad_token_id = tokenizer.pad_token_id
        return rm

    def load_reward_model(self, path):
        from transformers import AutoModelForSequenceClassification

        return self._load(AutoModelForSequenceClassification, path).eval()

    def init_critic(self, tokenizer, init_from):
        """A 1-label token-classification model (per-token values) on init_from's body."""
        from transformers import AutoModelForTokenClassification

        critic = self._load(AutoModelForTokenClassification, init_from, num_labels=1)
        critic.config.pad_token_id = tokenizer.pad_token_id
        return critic
