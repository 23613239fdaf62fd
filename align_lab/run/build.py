"""A run's parts, built in their fixed order: the shared stages (cached), then the models and reward the
loop needs (its Context, complete: its memory planned, train/memory/), then the loop itself; the same
on every rank (run/execute.py)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch

from align_lab.algorithms.base import OnlineAlgorithm
from align_lab.algorithms.preference import PairwiseAlgorithm
from align_lab.algorithms.signals import Reference, SelfTeacher, TeacherLogprobs, VocabularyDivergence, reads
from align_lab.cache import StageCache, default_cache_dir
from align_lab.envs.base import probe_key
from align_lab.models.lora import frozen_base
from align_lab.rewards import reward_models
from align_lab.rollout.turns import TurnEngine
from align_lab.rollout.vllm_launch import choose_share
from align_lab.run.gpu_memory import say_shared_gpu
from align_lab.run.reference_offload import reference_offload
from align_lab.run.resume_stages import resume_stage_check
from align_lab.run.spec import RunSpec
from align_lab.run.stages import StageBuild, Stages, build_stages, no_check
from align_lab.run.teacher import with_teacher
from align_lab.tasks.tuning_split import with_tuning_split
from align_lab.tasks.view import observation_renderer
from align_lab.train.context import Context, Models, Sizing
from align_lab.train.distributed import Group
from align_lab.train.memory import default_budget, held_modules, trainer_floor
from align_lab.train.online import train_online
from align_lab.train.pairwise import train_pairwise
from align_lab.train.roofline import prime


def stages_of(spec: RunSpec, cache: StageCache, progress, memory: int, rank=0, check=no_check) -> Stages:
    """The run's shared stages, built (or loaded) in their fixed order: the preference pairs when the
    algorithm trains on them, a reward model for each learned one its reward scores with. Rank 0 builds
    them before the other ranks start; those only load them. `check`: StageBuild.check. A distillation's
    teacher comes last (run/teacher.py)."""
    pairwise = isinstance(spec.algo, PairwiseAlgorithm) and spec.algo.uses_dataset_pairs
    threshold = spec.algo.desirable_threshold if pairwise else None  # unpaired samples (KTO)
    stages = build_stages(
        spec.task,
        spec.model,
        spec.sft,
        cache,
        progress,
        spec.train.micro_batch_size,
        memory,
        preferences=pairwise and threshold is None,
        reward_models=reward_models(spec.reward),
        may_build=rank == 0,
        env=spec.env,
        desirable_threshold=threshold,
        reward=spec.reward,
        check=check,
    )
    if reads(spec.algo, TeacherLogprobs) is None:
        return stages
    how = (spec.train.micro_batch_size, memory, dict(stages.numerics), rank == 0, check)
    return with_teacher(stages, spec.algo.teaching, StageBuild(cache, progress, *how), spec.sft, spec.env)


def teacher_of(algo, stages: Stages, policy) -> torch.nn.Module | None:
    """The teacher the run holds for the signals `algo` reads: a distillation's (the teacher stage, frozen);
    SDPO's self-teacher, a frozen copy of the starting policy, which follows the policy (teacher_kind=ema)
    or stays (base), none for live (the policy itself); None otherwise. A resumed run's EMA copy comes
    back from its checkpoint (train/online_setup.py)."""
    if reads(algo, TeacherLogprobs) is not None:
        return frozen_teacher(stages)
    taught = reads(algo, SelfTeacher)
    if taught is None or taught.kind == "live":
        return None
    return copy.deepcopy(policy).eval().requires_grad_(False)


def vocabulary_copies(algo) -> float:
    """fp32 (T, V) copies a row's divergence over the vocabulary adds to an update (the signal's own
    figure, algorithms/signals.py VocabularyDivergence); 0 when the loss reads none."""
    divergence = reads(algo, VocabularyDivergence)
    return 0.0 if divergence is None else divergence.row_copies


def holds_reference(algo) -> bool:
    """The loop reads the reference: an online algorithm's Reference signal, a pair loss's uses_reference."""
    if isinstance(algo, OnlineAlgorithm):
        return reads(algo, Reference) is not None
    return algo.uses_reference


def frozen_teacher(stages: Stages) -> torch.nn.Module:
    """A distillation's teacher (the teacher stage, run/teacher.py), frozen, in eval mode."""
    return stages.model.load_causal_lm(stages.results["teacher"].path).eval().requires_grad_(False)


def frozen_reference(stages: Stages, base: torch.nn.Module | None = None) -> torch.nn.Module:
    """The frozen reference policy (the SFT policy, or model.reference's checkpoint), in eval mode:
    `base` (a LoRA policy's frozen base weights, `shared_base`) where given, else loaded."""
    return (stages.load_reference() if base is None else base).eval().requires_grad_(False)


def shared_base(spec: RunSpec, stages: Stages, policy) -> torch.nn.Module | None:
    """The LoRA policy's frozen base as a model of its own (models/lora.py `frozen_base`), where it is
    the reference: the adapters start from the SFT policy and model.reference names no other checkpoint.
    Not under DeepSpeed, whose engine casts and partitions the policy's weights in place."""
    sft = Path(stages.sft_path)
    if Path(stages.model.reference_path(sft)) != sft or spec.backend.uses_deepspeed:
        return None
    return frozen_base(policy)


def models_of(spec: RunSpec, stages: Stages, scorer) -> tuple[Models, torch.nn.Module | None]:
    """The run's models (the Learner's to run, train/learner.py), drawn from the seed set just before
    (the critic's fresh value head, the LoRA adapters), and the LoRA policy's frozen base where it is the
    reference (`shared_base`) or None. On a GPU, vLLM's share of it is chosen here, by the policy's size
    when null."""
    critic = None
    if isinstance(spec.algo, OnlineAlgorithm) and spec.algo.uses_critic:
        init = stages.critic_start if spec.algo.critic_init == "sft" else stages.results["reward_model"].path
        # a fresh value head: drawn from the seed
        critic = spec.model.init_critic(stages.tokenizer, init).train()
    policy = spec.lora.apply(stages.load_policy()).train()
    base = shared_base(spec, stages, policy)
    load_reference = partial(frozen_reference, stages, base)
    # held for training only when its loss reads it; evaluation loads it otherwise (Models)
    reference = load_reference() if holds_reference(spec.algo) else None
    if spec.hardware.device == "cuda":
        gpu, held = default_budget("cuda"), (policy, reference, critic, *held_modules(scorer))
        size = sum(p.numel() for p in policy.parameters())
        choose_share(spec.rollout, size, gpu, trainer_floor(held, (policy, critic), gpu))
    teacher = teacher_of(spec.algo, stages, policy)
    return Models(policy, reference, critic, teacher, load_reference), base


def build_context(
    spec: RunSpec, stages: Stages, ckpt: Path, tracker, progress, preemption, rank=0, identity=None
) -> Context:
    """Models and reward of a run from its built stages: what a training loop needs, complete (its
    memory planned: train/memory/planner.py). The run's seed is set here, after every stage is built (or
    loaded), so a run that builds them and one that finds them cached draw the same critic head and
    LoRA adapters."""
    scorer = spec.reward.scorer(stages)
    pairwise = isinstance(spec.algo, PairwiseAlgorithm) and spec.algo.uses_dataset_pairs
    preferences = (stages.preferences if stages.samples is None else stages.samples) if pairwise else None
    judge = spec.judge.judge(stages, scorer) if spec.judge is not None else None
    torch.manual_seed(spec.seed)
    models, base = models_of(spec, stages, scorer)
    sizing = Sizing(
        pairwise=not isinstance(spec.algo, OnlineAlgorithm),
        budget=spec.hardware.trainer_bytes(getattr(spec.rollout, "gpu_share", 0.0)),  # vLLM's GPU share
        reference_loads=base is None,  # a LoRA policy's frozen base is the reference: nothing loads
        divergence_copies=vocabulary_copies(spec.algo),
    )
    # the reference out of memory between its forwards: a file of the run folder (hardware.offload_reference)
    models = dataclasses.replace(models, offload=reference_offload(spec.hardware, models, ckpt.parent))
    with closed_on_failure(models):  # the offloaded reference's file and thread, not left to the GC
        ctx = Context.build(
            plan=sizing,
            # a tuned study's trial
            task=with_tuning_split(stages.policy_task, spec.config.get("tuning_split")),
            tokenizer=stages.tokenizer,
            models=models,
            scorer=scorer,
            engine=engine_of(spec, stages),
            train=spec.train,
            tracker=tracker,
            checkpoint_dir=ckpt,
            seed=spec.seed,
            progress=progress,
            preferences=preferences,
            preemption=preemption,
            judge=judge,
            backend=spec.backend,
            env=spec.env,
            stage_keys={name: stage.key for name, stage in stages.results.items()},
            group=Group(rank, spec.hardware.ranks),
            identity=identity or {},
        )
    say_shared_gpu(spec.hardware, ctx.memory)  # a peak past what others leave of the GPU, said before step 1
    if rank == 0:  # the machine's limits measured beside the weights alone (train/roofline.py prime)
        prime(ctx.ledger.perf, models.policy, default_cache_dir())
    return ctx


@contextmanager
def closed_on_failure(models: Models) -> Iterator[None]:
    """A block that builds on `models`: where it fails, they let go of what they hold outside memory (an
    offloaded reference's file and writing thread) before the error goes on."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            models.discard()
        raise


def engine_of(spec: RunSpec, stages: Stages):
    """The run's rollout engine: the configured one, played turn by turn (rollout/turns.py) when the
    environment is multi-turn."""
    if not spec.env.multi_turn:
        return spec.rollout
    view = stages.policy_task
    render = observation_renderer(view, spec.env)  # as the SFT and preference stages render them
    raw = getattr(view, "raw", lambda p: p)
    return TurnEngine(spec.rollout, spec.env, spec.env_name, render, raw, probe_key(spec.env_name))


def build_run(spec: RunSpec, run_dir: Path, tracker, progress, preemption, identity=None, rank: int = 0):
    """(stages, context, loop) of a run, the same on every rank; `identity` (run/summary.py
    run_identity) goes inside every checkpoint."""
    # the stages run in the main process alone: the node's whole memory
    memory = spec.hardware.memory_bytes(whole_node=True)
    # rank 0 resumes on the stages its checkpoint was trained on, or stops before building any
    check = resume_stage_check(run_dir / "checkpoints", spec.cache_dir) if rank == 0 else no_check
    stages = stages_of(spec, StageCache(spec.cache_dir), progress, memory, rank, check)
    ctx = build_context(spec, stages, run_dir / "checkpoints", tracker, progress, preemption, rank, identity)
    return stages, ctx, train_online if isinstance(spec.algo, OnlineAlgorithm) else train_pairwise
