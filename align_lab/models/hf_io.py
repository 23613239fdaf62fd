"""Loading and initialising transformers models: policy, reward model (scalar head), critic (token head)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from align_lab.models.saved import off_disk
from align_lab.value_checks import saved_folder


def _copy_backbone(target, source_dir: Path) -> None:
    """Initialises target's transformer body from the causal LM saved in source_dir."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    # only the body is wanted: a head in the checkpoint (the reward model's score) is expected to be
    # left out, so transformers' report of "unexpected" keys would only alarm the user
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        body = AutoModel.from_pretrained(saved_folder(source_dir))
    finally:
        hf_logging.set_verbosity(previous)
    getattr(target, target.base_model_prefix).load_state_dict(body.state_dict())


def parameter_count(directory: str | Path) -> int | None:
    """Parameters saved in a checkpoint folder's safetensors files, read from their headers (no weights
    loaded); None where it holds none (a .bin checkpoint, a GGUF file not yet converted)."""
    from safetensors import safe_open

    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        return None
    count = 0
    for f in files:
        with safe_open(str(f), "pt") as weights:
            count += sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys())
    return count


def saved_positions(directory: str | Path) -> int | None:
    """The positions a saved model was built for (its config.json's max_position_embeddings, or
    n_positions); None where it does not say."""
    try:
        config = json.loads((Path(directory) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    found = (
        [config.get(k) for k in ("max_position_embeddings", "n_positions")]
        if isinstance(config, dict)
        else []
    )
    return next((v for v in found if isinstance(v, int) and not isinstance(v, bool)), None)


class HFLoading:
    """Mixin for model specs that define `hf_config(tokenizer, num_labels=None)`: models built from a
    config, trained from scratch by the SFT stage on a tokenizer trained on the task's corpus."""

    pretrained = False  # no checkpoint: the tokenizer and SFT stages always run

    def memory_per_model_gb(self) -> float | None:
        """A toy model says nothing: a run asks for hardware.resources' figure, else 1 GB a model."""
        return None

    def view(self, task, tokenizer):
        """The task as the policy sees it: unchanged (its own prompts and token limits)."""
        return task

    def reference_path(self, sft_path: Path) -> Path:
        return sft_path

    def critic_path(self, sft_path: Path) -> Path:
        return sft_path

    def load_causal_lm(self, path: Path):
        from transformers import AutoModelForCausalLM

        return off_disk(AutoModelForCausalLM.from_pretrained(saved_folder(path)))

    def init_reward_model(self, tokenizer, init_from: Path):
        """A sequence-classification model (1 label) whose body is copied from a causal LM."""
        from transformers import AutoModelForSequenceClassification

        rm = AutoModelForSequenceClassification.from_config(self.hf_config(tokenizer, num_labels=1))
        _copy_backbone(rm, init_from)
        return rm

    def load_reward_model(self, path: Path):
        from transformers import AutoModelForSequenceClassification

        return off_disk(AutoModelForSequenceClassification.from_pretrained(saved_folder(path))).eval()

    def init_critic(self, tokenizer, init_from: Path):
        """A token-classification model (1 label): per-token values, body copied from init_from."""
        from transformers import AutoModelForTokenClassification

        critic = AutoModelForTokenClassification.from_config(self.hf_config(tokenizer, num_labels=1))
        _copy_backbone(critic, init_from)
        return critic
