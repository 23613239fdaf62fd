"""The shared stages of a run: tokenizer -> SFT policy -> preference pairs -> reward model.

Each stage is built once per content key (cache.py) and shared by every run and seed that
uses the same upstream configuration; the run's seed is not part of any key.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import random
from functools import cached_property
from pathlib import Path

import torch

from align_lab.cache import StageCache, StageResult
from align_lab.tasks.base import Pair
from align_lab.train.micro import Dims, choose, describe, forward_row_bytes, machine_memory, row_bytes

log = logging.getLogger("align_lab")

# Bump a stage's version whenever its code changes what it produces.
VERSIONS = {"tokenizer": 1, "sft": 2, "preferences": 1, "reward_model": 2}

# The package's code that builds the stages. Its hash is in every stage key, so an artifact built by
# other code (another clone, an older checkout sharing ~/.cache/align_lab) is never served; a
# forgotten VERSIONS bump can no longer serve one.
PACKAGE = Path(__file__).resolve().parent.parent
STAGE_CODE = ("models", "tasks", "rollout", "rl", "train", "study/world.py", "cache.py")


@functools.cache
def code_fingerprint(root: Path = PACKAGE, entries: tuple[str, ...] = STAGE_CODE) -> str:
    """sha256 (16 hex) over the path and bytes of every .py file of `entries` under `root`."""
    digest = hashlib.sha256()
    for entry in entries:
        path = root / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(f"{file.relative_to(root).as_posix()}\0".encode() + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; platform's processor elsewhere): two CPUs with one
    instruction set can still round differently (the default run gave gold 0.509 on one 2-core
    machine and 0.249 on an AMD EPYC with the same code, 2026-11-22/23)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or "unknown"


# what selects the kernels a CPU run's numbers come from, when the user sets it (issue 25 item 8;
# docs/reproducibility.md measures each)
MATH_FLAGS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def math_libraries() -> dict:
    """The BLAS and oneDNN builds torch calls (from torch.__config__.show()) and the flags above that
    are set: with the CPU's capability (numerics' "device") they decide a CPU run's bits."""
    found = {}
    for line in torch.__config__.show().splitlines():
        line = line.strip(" -")
        if "Math Kernel Library Version" in line:
            found["blas"] = "MKL " + line.split("Version", 1)[1].split()[0].split("-")[0]
        elif line.startswith(("Intel(R) MKL-DNN", "oneDNN")):
            found["onednn"] = line.split()[2] if line.startswith("Intel") else line.split()[1]
        elif line.startswith("Build settings:") and "blas" not in found:
            blas = [part.split("=", 1)[1] for part in line.split(", ") if part.startswith("BLAS_INFO=")]
            found["blas"] = blas[0] if blas else "unknown"
    found["flags"] = {k: os.environ[k] for k in MATH_FLAGS if k in os.environ}
    return found


def numerics(micro_batch_size: int | None) -> dict:
    """What gives the same stage inputs other bits: the stage code, library versions, the device
    (GPU model, or the CPU's vector instruction set), torch's thread count and the stage's rows per
    micro-batch (resolved: an int, or None for whole batches)."""
    import tokenizers
    import transformers

    device = torch.get_default_device()
    return {
        "code": code_fingerprint(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu-{torch.backends.cpu.get_cpu_capability()} {cpu_model()}",
        "math": math_libraries() if device.type == "cpu" else {},
        "threads": torch.get_num_threads(),
        "micro_batch_size": micro_batch_size,
    }


def _fields(obj) -> dict:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else dict(vars(obj))


class World:
    """Lazily builds (or loads from the cache) the artifacts a run depends on."""

    def __init__(
        self, task, model, sft, cache: StageCache, progress, micro_batch_size="auto", memory=None
    ) -> None:
        self.task, self.model, self.sft_config = task, model, sft
        # train.micro_batch_size, as set ("auto", rows, or None), and the memory budget in bytes that
        # "auto" divides (hardware.memory_bytes()); each stage resolves it for its own rows
        self.micro_batch_size, self.memory = micro_batch_size, memory or machine_memory()
        self.cache, self.progress = cache, progress
        self.stages: dict[str, StageResult] = {}
        self.micro_batch_sizes: dict[str, int | None] = {}  # resolved, by stage (and "train")
        # taken now: the run has set its device and thread count before it makes its World
        self.numerics = numerics(None)

    def stage_numerics(self, stage: str) -> dict:
        """numerics() with the stage's rows per micro-batch: float rounding only, but rounding grows
        through training, so it is in the key like the thread count (None where a stage has none)."""
        return {**self.numerics, "micro_batch_size": self.micro_batch_sizes.get(stage)}

    def _get(self, stage: str, inputs: dict, build) -> Path:
        inputs = {**inputs, "numerics": self.stage_numerics(stage)}
        result = self.cache.get(stage, VERSIONS[stage], inputs, build)
        self.stages[stage] = result
        return result.path

    # rows per micro-batch (train/micro.py): train.micro_batch_size, "auto" resolved from the policy's
    # widths, the task's token lengths and the memory budget
    @cached_property
    def dims(self) -> Dims:
        return Dims.of(self.model.hf_config(self.tokenizer))

    def sequence_bytes(self, logits: bool = True, graph: bool = True) -> int:
        """Activation bytes of one prompt + response sequence through the policy's body (train/micro.py):
        kept for a backward pass (`graph`), or a forward's working set without one."""
        task = self.policy_task
        prompt = getattr(task, "longest_prompt_tokens", task.max_prompt_tokens)
        if not graph:
            return forward_row_bytes(self.dims, prompt, task.max_response_tokens)
        return row_bytes(self.dims, prompt, task.max_response_tokens, logits)

    def resolve(
        self, key: str, setting, rows: int, bytes_per_row: int, memory: int | None = None
    ) -> int | None:
        """`setting` ("auto", rows or None) resolved for forwards of up to `rows` rows of `bytes_per_row`
        activation bytes each; recorded under `key` and logged once."""
        memory = memory or self.memory
        chosen = choose(setting, rows, bytes_per_row, memory)
        if key not in self.micro_batch_sizes:
            where = {"train": "training", "eval": "evaluation"}.get(key, f"{key} stage")
            log.info(describe(where, setting, chosen, rows, bytes_per_row, memory))
        self.micro_batch_sizes[key] = chosen
        return chosen

    # 1. tokenizer
    @cached_property
    def tokenizer_inputs(self) -> dict:
        return {"task": self.task.fingerprint()}

    @cached_property
    def tokenizer(self):
        from align_lab.models.tokenizer import load_tokenizer, train_tokenizer

        if self.model.pretrained:  # the checkpoint's own tokenizer: no stage
            tok = self.model.load_tokenizer()
            tok.padding_side = "left"
            return tok
        path = self._get(
            "tokenizer", self.tokenizer_inputs, lambda out: train_tokenizer(self.task.corpus(), out)
        )
        tok = load_tokenizer(path)
        tok.padding_side = "left"
        return tok

    @cached_property
    def policy_task(self):
        """The task as the policy sees it (a pretrained model's chat template and token limits)."""
        return self.model.view(self.task, self.tokenizer)

    def raw_prompt(self, prompt: str) -> str:
        """The task's prompt text behind a policy prompt, for rewards with their own tokenizer."""
        return getattr(self.policy_task, "raw", lambda p: p)(prompt)

    # 2. SFT policy (also the reference policy); a pretrained checkpoint is its own unless task.sft
    @cached_property
    def needs_sft(self) -> bool:
        return not self.model.pretrained or self.task.sft

    @cached_property
    def policy_key(self) -> str | dict:
        """What identifies the SFT policy: its stage key, or the checkpoint when the stage is skipped."""
        return self.stages_key("sft") if self.needs_sft else self.model.fingerprint()

    @cached_property
    def sft_inputs(self) -> dict:
        return {
            "tokenizer": None if self.model.pretrained else self.stages_key("tokenizer"),
            "model": self.model.fingerprint(),
            "sft": _fields(self.sft_config),
            "task": self.task.fingerprint(),
        }

    def stages_key(self, stage: str) -> str:
        getattr(self, {"tokenizer": "tokenizer", "sft": "sft_path", "preferences": "preferences"}[stage])
        return self.stages[stage].key

    @cached_property
    def sft_path(self) -> Path:
        from align_lab.train.sft import train_sft

        if not self.needs_sft:
            return Path(self.model.path("name_or_path"))
        task = self.policy_task
        micro = self.resolve("sft", self.micro_batch_size, self.sft_config.batch_size, self.sequence_bytes())

        def build(out: Path) -> None:
            torch.manual_seed(self.sft_config.seed)
            policy = self.model.init_policy(self.tokenizer)
            demos = task.demonstrations()
            steps = self.sft_config.epochs * -(-len(demos) // self.sft_config.batch_size)
            with self.progress(total=steps, desc="sft") as bar:
                loss = train_sft(
                    policy,
                    self.tokenizer,
                    demos,
                    self.sft_config,
                    task.max_prompt_tokens,
                    task.max_response_tokens,
                    bar,
                    micro,
                )
            policy.save_pretrained(str(out))
            self.tokenizer.save_pretrained(str(out))
            (out / "metrics.json").write_text(json.dumps({"sft/final_loss": loss}))

        return self._get("sft", self.sft_inputs, build)

    def load_policy(self):
        """A fresh copy of the SFT policy (the starting point and the frozen reference)."""
        return self.model.load_causal_lm(self.sft_path)

    def load_reference(self):
        """The frozen reference: the SFT policy, or model.reference's checkpoint."""
        return self.model.load_causal_lm(self.model.reference_path(self.sft_path))

    @property
    def critic_start(self) -> Path:
        """The critic's body when algo.critic_init=sft: the SFT policy, or model.critic's checkpoint."""
        return self.model.critic_path(self.sft_path)

    # 3. preference pairs: from the task's data, or two SFT samples per prompt labelled by its annotator
    @cached_property
    def preferences_key(self) -> str | dict:
        _ = self.preferences  # builds (or loads) the stage when it has one
        return self.stages["preferences"].key if "preferences" in self.stages else self.task.fingerprint()

    @cached_property
    def preferences(self) -> list[Pair]:
        from align_lab.rollout.hf import HFGenerate

        task = self.policy_task
        pairs = task.preference_pairs()
        if pairs is not None:
            return pairs

        def build(out: Path) -> None:
            policy = self.load_policy()
            seed = task.world_seed + 2 + self.sft_config.seed  # per run with stages.seed=per_run
            rng = random.Random(seed)
            torch.manual_seed(seed)
            train_prompts = task.prompts("train")
            prompts = [rng.choice(train_prompts) for _ in range(task.n_pairs)]
            k = task.pair_samples  # responses per prompt, labelled together by the task
            chunk = max(1, 512 // k)  # prompts per sampling call: 512 responses at most
            rows, engine = [], HFGenerate(temperature=1.0)
            with self.progress(total=len(prompts), desc="preferences") as bar:
                for i in range(0, len(prompts), chunk):
                    s = engine.sample(
                        policy,
                        self.tokenizer,
                        prompts[i : i + chunk],
                        k,
                        task.max_response_tokens,
                        task.max_prompt_tokens,
                    )
                    gold = task.gold_reward(s.prompts, s.responses, s.finished)
                    for j in range(0, len(s.prompts), k):
                        rows += task.label_samples(s.prompts[j], s.responses[j : j + k], gold[j : j + k], rng)
                    bar.update(len(s.prompts) // k)
            if not rows:
                raise ValueError(
                    f"preferences: none of {len(prompts)} prompts x {k} samples gave a pair "
                    "(task.n_pairs, task.pair_samples)"
                )
            with open(out / "pairs.jsonl", "w") as f:
                for row in rows:
                    f.write(json.dumps(dataclasses.asdict(row)) + "\n")

        inputs = {"sft": self.policy_key, "task": self.task.fingerprint()}
        if self.model.pretrained:  # the chat template changes the prompts
            inputs["model"] = self.model.fingerprint()
        path = self._get("preferences", inputs, build)
        with open(path / "pairs.jsonl") as f:
            return [Pair(**json.loads(line)) for line in f]

    # 4. reward model, initialised from the SFT backbone
    def reward_model(self, config):
        from align_lab.train.reward_model import train_reward_model

        pairs, task = self.preferences, self.policy_task
        heldout = max(1, int(len(pairs) * config.heldout_fraction))
        pair_bytes = 2 * self.sequence_bytes(logits=False)  # a scalar head: no vocabulary logits
        micro = self.resolve(
            "reward_model", self.micro_batch_size, max(config.batch_size, heldout), pair_bytes
        )
        inputs = {
            "preferences": self.preferences_key,
            "sft": self.policy_key,
            "model": self.model.fingerprint(),
            "rm": _fields(config),
        }

        def build(out: Path) -> None:
            torch.manual_seed(config.seed)  # the new head's draw must not depend on what ran before
            rm = self.model.init_reward_model(self.tokenizer, init_from=self.sft_path)
            n = len(pairs) - max(1, int(len(pairs) * config.heldout_fraction))
            steps = config.epochs * -(-n // config.batch_size)
            with self.progress(total=steps, desc="reward model") as bar:
                stats = train_reward_model(
                    rm,
                    self.tokenizer,
                    pairs,
                    config,
                    task.max_prompt_tokens,
                    task.max_response_tokens,
                    bar,
                    micro,
                )
            rm.save_pretrained(str(out))
            (out / "metrics.json").write_text(json.dumps(stats))

        path = self._get("reward_model", inputs, build)
        self.rm_metrics = json.loads((path / "metrics.json").read_text())
        return self.model.load_reward_model(path)
