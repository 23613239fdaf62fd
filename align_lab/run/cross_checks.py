"""The checks of a run that no single component can make (an algorithm with a reward, a task with a
model, a backend with an algorithm, processes with a batch): one pass, before any compute."""

from __future__ import annotations

from pathlib import Path

import torch

from align_lab.algorithms.base import OnlineAlgorithm
from align_lab.algorithms.preference import PairwiseAlgorithm
from align_lab.config import ConfigError
from align_lab.envs.base import EnvError, check_environment
from align_lab.rewards import GoldReward, LearnedRM, Verifier
from align_lab.run.fit import check_fit, check_needs, check_sampled_pairs, check_threshold
from align_lab.run.placement import check_nodes, check_weight_push
from align_lab.run.reward_sources import check_sources
from align_lab.run.spec import RunSpec
from align_lab.run.teacher import check_teacher
from align_lab.train.checkpoint_io import checkpoint_step
from align_lab.train.launch import unsendable
from align_lab.train.online_setup import validate
from align_lab.train.roofline import check_env
from align_lab.user_code import importable


def check_run(spec: RunSpec, here: bool = True) -> None:
    """Cross-component checks that no single component can make; before any compute. `here`: also
    check_machine (align_lab/run/admission.py runs it where the job runs)."""
    if isinstance(spec.algo, OnlineAlgorithm):
        try:
            validate(spec.algo, spec.train)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        critic_init = spec.algo.critic_init if spec.algo.uses_critic else "sft"
        if critic_init == "reward_model" and not isinstance(spec.reward, LearnedRM):
            raise ConfigError(
                "algo.critic_init=reward_model: needs reward=learned_rm (a reward model to copy), "
                f"not reward={spec.names.get('reward', type(spec.reward).__name__)}; "
                "or set algo.critic_init=sft"
            )
        check_sources(spec)
    elif not isinstance(spec.algo, PairwiseAlgorithm):
        raise ConfigError(
            f"algo._target_: {type(spec.algo).__name__} is neither an online nor a pairwise algorithm"
        )
    try:  # a user's environment too: max_turns >= 1, a step timeout, a start(prompt) method
        check_environment(spec.env, spec.env_name)
    except EnvError as e:
        raise ConfigError(str(e)) from None
    check_fit(spec)  # the env plays the task; the reward scores what the env plays
    check_stop_at(spec)
    check_data(spec)
    check_warmup(spec)
    check_sampled_pairs(spec)
    check_teacher(spec)  # distillation: a teacher the loop can use, of the policy's vocabulary
    check_needs(spec)  # what the algorithm declares it needs: differing responses, demonstrations, ...
    if spec.lora.enabled and not getattr(spec.rollout, "samples_adapters", True):  # unsaid: let through
        raise ConfigError(
            f"lora.enabled=true: rollout={spec.names.get('rollout', type(spec.rollout).__name__)} "
            "cannot sample a LoRA policy yet (its adapters are not pushed to the engine); use rollout=hf"
        )
    check_weight_push(spec)  # said before "not installed here": it holds wherever vllm is
    own_check(spec.rollout, "check_installed")  # engines in other environments
    check_processes(spec)
    check_staleness(spec)
    check_backend(spec)
    check_nodes(spec)
    if here:
        check_machine(spec)


def check_stop_at(spec: RunSpec) -> None:
    """train.stop_at.metric is one every evaluation of this run logs (train/stop_at.py check_task)."""
    from align_lab.train.stop_at import check_task

    try:
        check_task(spec.train.stop_at, spec.task, spec.train.eval_samples)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def own_check(component, name: str) -> None:
    """A component's own check `name` where its class has one (a rollout engine's installed packages, a
    remote reward's server): its ValueError as one line."""
    check = getattr(component, name, None)
    if check is None:
        return
    try:
        check()
    except ValueError as e:
        raise ConfigError(str(e)) from None


def installed(setting: str, package: str, extra: str) -> None:
    """`setting` needs `package` (the project's optional extra `extra`): one line where it is missing."""
    if not importable(package):
        raise ConfigError(f"{setting}: the {package} package is not installed (pip install -e '.[{extra}]')")


def check_machine(spec: RunSpec) -> None:
    """What only the machine a run runs on can tell: its device, packages and ALIGN_LAB_MACHINE_LIMITS."""
    check_env()
    if spec.backend.uses_deepspeed:
        installed("hardware.backend=deepspeed", "deepspeed", "deepspeed")
    if spec.lora.enabled:
        installed("lora.enabled=true", "peft", "lora")
    if spec.hardware.device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("hardware.device=cuda: no CUDA device is visible here; use hardware=cpu")
        # across nodes each process is a Slurm task of its own, which may see its one GPU alone (gpu_of)
        if spec.hardware.nodes == 1 and spec.hardware.processes > torch.cuda.device_count():
            raise ConfigError(
                f"hardware.processes={spec.hardware.processes}: must be <= the {torch.cuda.device_count()} "
                "visible GPUs (one process per GPU)"
            )


def optimiser_steps(spec: RunSpec) -> int:
    """Optimiser steps of the whole run: per step, algo.epochs passes of rollout / minibatch updates
    online; one per step for pairwise algorithms."""
    if isinstance(spec.algo, OnlineAlgorithm):
        return spec.train.steps * spec.algo.epochs * (spec.train.rollout_size // spec.train.minibatch_size)
    return spec.train.steps


def check_warmup(spec: RunSpec) -> None:
    """A warm-up as long as the run never reaches the learning rate it was given."""
    total = optimiser_steps(spec)
    if spec.train.warmup_steps >= total:
        raise ConfigError(
            f"train.warmup_steps={spec.train.warmup_steps}: must be < the run's {total} optimiser steps "
            "(else the learning rate never reaches algo.lr)"
        )


def check_processes(spec: RunSpec) -> None:
    """Data parallel splits each step's prompts (pairs) by process, with per-row sampling seeds."""
    n = spec.hardware.processes * spec.hardware.nodes
    if n == 1:
        return
    key = f"hardware.processes={n}" if spec.hardware.nodes == 1 else f"hardware.nodes x processes={n}"
    if not getattr(spec.rollout, "seed_per_sample", False):
        raise ConfigError(
            f"{key}: needs rollout.seed_per_sample=true, so that a response does not depend on which "
            "process samples it (a run started without it, on one process, resumes on one process only)"
        )
    if spec.hardware.nodes == 1 and (part := unsendable(vars(spec))) is not None:  # ranks spawned here
        raise ConfigError(
            f"{key}: the run's {part} cannot be sent to the other processes; use hardware.processes=1, or "
            "make what it holds when it runs (in start(), __post_init__), or give it __getstate__"
        )
    online = isinstance(spec.algo, OnlineAlgorithm)
    per_step = spec.train.rollout_size // spec.algo.group_size if online else spec.train.minibatch_size
    if n > per_step:
        what = "prompts per step (train.rollout_size / algo.group_size)" if online else "train.minibatch_size"
        raise ConfigError(f"{key}: must be <= the {per_step} {what}")
    if online and n > spec.train.minibatch_size:  # each process runs its share of every minibatch
        raise ConfigError(f"{key}: must be <= train.minibatch_size={spec.train.minibatch_size}")


def check_staleness(spec: RunSpec) -> None:
    """train.max_staleness / train.async_rollouts (train/staleness.py): the online loop's, on one process;
    a sampling thread needs an engine that leaves the trainer's RNG and threads alone, and a policy
    whose whole weights this process holds (its frozen copy)."""
    k, background = spec.train.max_staleness, spec.train.async_rollouts
    if k == 0:
        return
    if not isinstance(spec.algo, OnlineAlgorithm):
        raise ConfigError(
            f"train.max_staleness={k}: the pairwise loop samples on-policy (online DPO: algo.sync_every); "
            "set train.max_staleness=0"
        )
    processes = spec.hardware.processes * spec.hardware.nodes
    if processes > 1:
        raise ConfigError(
            f"train.max_staleness={k}: not supported with {processes} data-parallel processes yet (each "
            "would checkpoint its own pending rollouts); use hardware.processes=1 or train.max_staleness=0"
        )
    if background and not getattr(spec.rollout, "samples_in_background", False):
        engine = spec.names.get("rollout", type(spec.rollout).__name__)
        raise ConfigError(
            f"train.async_rollouts=true: rollout={engine} cannot sample on a thread without touching the "
            "trainer's RNG or threads; use rollout=hf with rollout.seed_per_sample=true"
        )
    if background and spec.backend.uses_deepspeed and spec.backend.zero_stage == 3:
        raise ConfigError(
            "train.async_rollouts=true: the frozen sampling copy of a ZeRO-3 partitioned policy is not "
            "supported; use hardware.zero_stage=2 or train.async_rollouts=false"
        )


def check_backend(spec: RunSpec) -> None:
    """What the DeepSpeed backend does not do yet."""
    if not spec.backend.uses_deepspeed:
        return
    if spec.train.micro_batch_size not in (None, "auto"):  # auto: whole minibatches (run/execute.py)
        raise ConfigError(
            f"train.micro_batch_size={spec.train.micro_batch_size}: not supported with "
            "hardware.backend=deepspeed yet (the engine would step per micro-batch); use auto, null or "
            "hardware.backend=torch"
        )
    pretrain = spec.algo.needs.critic_pretrain_steps if isinstance(spec.algo, OnlineAlgorithm) else 0
    if pretrain > 0:
        raise ConfigError(
            f"algo.critic_pretrain_steps={pretrain}: hardware.backend=deepspeed cannot hold the policy "
            "still while the critic trains; set it to 0 or use hardware.backend=torch"
        )
    frozen_copy = isinstance(spec.algo, PairwiseAlgorithm) and spec.algo.sync_every > 1
    if spec.backend.zero_stage == 3 and frozen_copy:
        raise ConfigError(
            f"algo.sync_every={spec.algo.sync_every}: a frozen sampling copy of a ZeRO-3 policy is not "
            "supported; use hardware.zero_stage=2 or algo.sync_every=1"
        )


def check_partitions(spec: RunSpec, ckpt: Path) -> None:
    """A DeepSpeed checkpoint holds one optimiser partition per process (ZeRO 1-3); it resumes with
    the process count that wrote it (DeepSpeed reshards only through its offline universal format)."""
    if not spec.backend.uses_deepspeed or checkpoint_step(ckpt) == 0:
        return
    saved = deepspeed_processes(ckpt / "deepspeed")
    if saved is not None and saved != spec.hardware.processes:
        raise ConfigError(
            f"hardware.processes={spec.hardware.processes}: {ckpt / 'deepspeed'} holds a DeepSpeed "
            f"checkpoint of {saved} processes, which resumes only with hardware.processes={saved}"
        )


def deepspeed_processes(folder: Path) -> int | None:
    """How many processes wrote the DeepSpeed checkpoints in `folder`: one optimiser partition file
    each (ZeRO 1-3); the most of any save (a save cut short by a kill holds fewer); None when there is
    none, or at ZeRO-0 (no partitions)."""
    counts = [len(list(tag.glob("*zero_pp_rank_*_optim_states.pt"))) for tag in folder.glob("step-*")]
    return max(counts, default=0) or None


MAX_TEMPERATURE = 100.0  # above it every logit gap of a language model (tens of nats) is < 1 nat


def check_temperature(temperature: float) -> None:
    """A sampling temperature so high that responses are drawn near uniformly from the vocabulary:
    every reward is noise and the policy gradient carries nothing of the model (measured: at 1e6
    the toy run completed with its gold reward exactly the SFT model's)."""
    if temperature > MAX_TEMPERATURE:
        raise ConfigError(
            f"rollout.temperature={temperature}: sampling is near uniform over the vocabulary, so nothing "
            f"can be learned; must be <= {MAX_TEMPERATURE:g} (1.0 samples the model as it is)"
        )


def check_positions(spec: RunSpec) -> None:
    """A model built from a config (model=tiny_*) holds the task's longest prompt plus response."""
    limit = getattr(spec.model, "max_positions", None)
    prompt = getattr(spec.task, "max_prompt_tokens", None)
    if limit is None or prompt is None:
        return
    need = prompt + spec.task.max_response_tokens
    if limit < need:
        raise ConfigError(
            f"model.max_positions={limit}: task={spec.names.get('task', 'task')} needs {need} positions "
            f"(prompts up to {prompt} tokens + task.max_response_tokens={spec.task.max_response_tokens}); "
            f"must be >= {need}"
        )


def check_data(spec: RunSpec) -> None:
    """A real-text task needs a pretrained model; pairs must exist where the run needs them; every
    prompt must fit the model's limit (which needs the model's tokenizer)."""
    task_name, model_name = spec.names.get("task", "task"), spec.names.get("model", "model")
    if isinstance(spec.reward, Verifier) and not spec.task.verifiable:
        raise ConfigError(
            f"reward=verifier: task={task_name} has no verifiable answers; "
            "use task=toy_arith, task=arith_word or task=verifiable_data"
        )
    own_check(spec.reward, "check_reachable")  # a reward served elsewhere
    if not spec.model.pretrained and not hasattr(spec.task, "max_prompt_tokens"):
        raise ConfigError(
            f"task={task_name}: real text needs model=hf (a pretrained tokenizer and its token limits), "
            f"not model={model_name}"
        )
    if not spec.task.has_gold_reward:
        reward = spec.names.get("reward", type(spec.reward).__name__)
        if isinstance(spec.reward, GoldReward | Verifier):
            raise ConfigError(f"reward={reward}: task={task_name} has no gold reward; use reward=hf_rm")
        threshold = spec.algo.desirable_threshold if isinstance(spec.algo, PairwiseAlgorithm) else None
        if threshold is not None:
            raise ConfigError(
                f"algo.desirable_threshold={threshold}: labels responses the SFT policy samples "
                f"(task.n_pairs x task.pair_samples); task={task_name} is a dataset task and samples none "
                "(null: KTO on its pairs)"
            )
        pairs_needed = isinstance(spec.reward, LearnedRM) or (
            isinstance(spec.algo, PairwiseAlgorithm) and spec.algo.uses_dataset_pairs
        )
        if pairs_needed and spec.task.preference_pairs() is None:
            need = (
                "reward=learned_rm"
                if isinstance(spec.reward, LearnedRM)
                else f"algo={spec.names.get('algo')}"
            )
            raise ConfigError(
                f"{need}: needs preference pairs; task={task_name} has none (use task=hf_prefs)"
            )
    if isinstance(spec.reward, LearnedRM):  # pairs the task makes: from data, or up to task.n_pairs
        pairs = spec.task.preference_pairs()
        n_pairs = len(pairs) if pairs is not None else getattr(spec.task, "n_pairs", None)
        try:
            if n_pairs is not None:
                spec.reward.split_sizes(n_pairs)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    check_threshold(spec)
    check_temperature(spec.rollout.temperature)
    check_positions(spec)
    if spec.model.pretrained:
        try:
            spec.model.check_task(spec.task)
        except ValueError as e:
            raise ConfigError(str(e)) from None
