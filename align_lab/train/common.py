"""What both training loops share: the train config, prompt order, checkpoints."""

from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from align_lab.cache import disk_full_error
from align_lab.checks import ConfigError, check
from align_lab.rollout.base import RolloutEngine
from align_lab.train.backend import Backend
from align_lab.train.distributed import Group
from align_lab.train.preemption import Preemption


@dataclass
class TrainConfig:
    """Budget and batching of the policy-optimisation stage; batch sizes count samples, not processes."""

    steps: int = 150
    rollout_size: int = 64
    minibatch_size: int = 32
    max_grad_norm: float = 1.0
    warmup_steps: int = 0
    eval_every: int = 50
    eval_samples: int = 4
    checkpoint_every: int = 25
    # false: a completed run deletes checkpoints/ (SmolLM2's is 1.6 GB, 3.1 GB with a critic); its
    # results stay, but it can no longer be extended with more train.steps
    keep_checkpoint: bool = True
    # rows per forward/backward (gradient accumulation); None: whole; "auto": from the memory budget
    # (train/micro.py). The run resolves "auto" before a loop sees this config (study/run.py)
    micro_batch_size: int | str | None = "auto"
    # bounded staleness (docs/off_policy.md): the rollout step t trains on is sampled with the policy of
    # step t - k (the first k steps: the initial policy); 0 = on-policy
    max_staleness: int = 0
    # sample the next rollout on a thread, from a frozen copy of the weights, while this step updates;
    # the same numbers as the synchronous loop with the same max_staleness (which must be >= 1)
    async_rollouts: bool = False

    def __post_init__(self) -> None:
        check(self.steps >= 1, "steps", self.steps, ">= 1")
        check(self.rollout_size >= 1, "rollout_size", self.rollout_size, ">= 1")
        check(self.minibatch_size >= 1, "minibatch_size", self.minibatch_size, ">= 1")
        check(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "> 0")
        check(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, ">= 0")
        check(self.eval_every >= 0, "eval_every", self.eval_every, ">= 0 (0: only at the end)")
        check(self.eval_samples >= 1, "eval_samples", self.eval_samples, ">= 1")
        check(self.checkpoint_every >= 0, "checkpoint_every", self.checkpoint_every, ">= 0")
        micro = self.micro_batch_size
        check(
            micro in (None, "auto")
            or (isinstance(micro, int) and not isinstance(micro, bool) and micro >= 1),
            "micro_batch_size",
            micro,
            "auto (from the memory budget), an integer >= 1, or null (the whole minibatch at once)",
        )
        k = self.max_staleness
        integer = isinstance(k, int) and not isinstance(k, bool)
        check(integer and k >= 0, "max_staleness", k, "an integer >= 0")
        check(
            k < self.steps,
            "max_staleness",
            k,
            f"< train.steps={self.steps} (else every step trains on the initial policy's rollouts)",
        )
        check(
            not self.async_rollouts or k >= 1,
            "async_rollouts",
            str(self.async_rollouts).lower(),
            "false with train.max_staleness=0 (the next rollout needs this step's update: nothing to "
            "overlap); set train.max_staleness >= 1",
        )


class Shuffler:
    """Items in a fresh seeded order each epoch; its position is part of the checkpoint."""

    def __init__(self, items: list, seed: int) -> None:
        self.items, self.seed, self.epoch, self.position = items, seed, 0, 0
        self._order = self._shuffle()

    def _shuffle(self) -> list[int]:
        order = list(range(len(self.items)))
        random.Random(f"{self.seed}-{self.epoch}").shuffle(order)
        return order

    def take(self, n: int) -> list:
        out = []
        while len(out) < n:
            if self.position == len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._shuffle()
            out.append(self.items[self._order[self.position]])
            self.position += 1
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._shuffle()


def save_or_enospc(obj, path: Path) -> None:
    """torch.save, where a full disk is the OSError(ENOSPC) naming `path` that the rest of the code
    reports in one line: torch raises a RuntimeError for it ("PytorchStreamWriter failed writing
    file", "[enforce fail at inline_container.cc] unexpected pos"), told apart by the free space left."""
    try:
        torch.save(obj, path)
    except RuntimeError as e:
        full = disk_full_error(e, path)
        if full is not None:
            raise full from e
        raise


def save_checkpoint(folder: Path, state: dict) -> None:
    """Writes `state-<step>.pt`, then atomically points `last` at it: a kill at any moment leaves a
    complete checkpoint whose step and contents agree."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"state-{state['step']:08d}.pt"
    try:
        save_or_enospc(state, folder / (name + ".tmp"))
        os.replace(folder / (name + ".tmp"), folder / name)
        (folder / "last.tmp").write_text(name)
        os.replace(folder / "last.tmp", folder / "last")
    except BaseException:  # a full disk or a signal: no half-written file stays behind
        for tmp in (folder / (name + ".tmp"), folder / "last.tmp"):
            tmp.unlink(missing_ok=True)
        raise
    for old in folder.glob("state-*.pt"):
        if old.name != name:
            old.unlink()


def rng_state() -> dict:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return {"torch": torch.get_rng_state(), "cuda": cuda, "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])


class Counters(dict):
    """Cumulative compute counters (generated tokens, reward queries, trained tokens); resumable."""

    def __init__(self) -> None:
        super().__init__(generated_tokens=0, reward_queries=0, trained_tokens=0)

    def state_dict(self) -> dict:
        return dict(self)

    def load_state_dict(self, state: dict) -> None:
        self.update(state)


def checkpoint_step(folder: Path) -> int:
    """The step of the last checkpoint in `folder` (0 if none), read from its pointer."""
    pointer = folder / "last"
    return int(pointer.read_text().split("-")[1].split(".")[0]) if pointer.exists() else 0


class CheckpointError(Exception):
    """A checkpoint that cannot be read: one line naming it and what to do."""


def checkpoint_file(folder: Path) -> Path | None:
    """The file `last` points at, checked readable without loading it (its zip records and CRCs);
    None if there is no checkpoint; CheckpointError if it is missing or damaged."""
    import zipfile

    pointer = folder / "last"
    if not pointer.exists():
        return None
    path = folder / pointer.read_text().strip()
    advice = f"delete {folder} to start the run again from step 0"
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} (named by {pointer}) is missing; {advice}")
    if path.is_dir():  # a DeepSpeed checkpoint folder: its engine checks it
        return path
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({e}); {advice}") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {path} is damaged ({bad} fails its CRC); {advice}")
    return path


def load_checkpoint(folder: Path) -> dict | None:
    path = checkpoint_file(folder)
    if path is None:
        return None
    try:
        return torch.load(path, weights_only=False)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e})") from None


@dataclass
class Context:
    """Everything a loop needs, built by the run (study/run.py)."""

    task: object
    tokenizer: object
    policy: torch.nn.Module
    reference: torch.nn.Module
    critic: torch.nn.Module | None
    scorer: object  # (prompts, responses, finished) -> (B,) tensor
    engine: RolloutEngine  # .sample(...) and .sync(model): rollout/base.py
    train: TrainConfig
    tracker: object
    checkpoint_dir: Path
    seed: int
    progress: object  # tqdm-like factory
    preferences: list | None = None  # pairs, for the pairwise loop
    preemption: Preemption = field(default_factory=Preemption)  # USR2 -> checkpoint -> requeue
    judge: object = None  # evaluation win rates (rewards/judge.py); None: the run's reward
    group: Group = field(default_factory=Group)  # data-parallel rank and size (train/distributed.py)
    backend: Backend = field(default_factory=Backend)  # torch or DeepSpeed, dtype (train/backend.py)
    eval_micro_batch_size: int | None = None  # rows per no-grad forward of evaluation (train/micro.py)
    # the cache keys of the shared stages (SFT, reward model, ...) the run trains on: each checkpoint
    # records them, and a resume on other stages is refused (study/summary.py check_resume_stages)
    stage_keys: dict[str, str] = field(default_factory=dict)


def hyperparameters(algo) -> dict:
    """The algorithm's dataclass fields: its configuration, which training never changes."""
    return dataclasses.asdict(algo) if dataclasses.is_dataclass(algo) else {}


def _algorithm_in(algo, state: dict) -> tuple[dict, dict]:
    """(the algorithm's saved state, its saved hyperparameters) in a checkpoint. A checkpoint written
    before algorithms had state_dict() holds vars(algo): its state keys are taken, the rest compared."""
    if "algo_state" in state:
        return state["algo_state"], state["algo_hyperparameters"]
    names = algo.state_dict().keys()
    return {k: v for k, v in state["algo"].items() if k in names}, {
        k: v for k, v in state["algo"].items() if k not in names
    }


def refuse_changed_hyperparameters(algo, state: dict, folder: Path) -> None:
    """One line for a hyperparameter that differs from the checkpoint's: the optimiser, the scheduler and
    the algorithm's state were made with the old value, so a new one would be half-applied."""
    current = hyperparameters(algo)
    for key, old in _algorithm_in(algo, state)[1].items():
        if key in current and current[key] != old:
            raise ConfigError(
                f"algo.{key}={current[key]}: the checkpoint in {folder} was trained with algo.{key}={old}; "
                f"resume with that value, or delete {folder} to start again"
            )


def check_resumable(algo, folder: Path) -> None:
    """Before any compute: the last checkpoint in `folder` (if any) was trained with algo's
    hyperparameters (the file is memory-mapped, not read whole)."""
    path = checkpoint_file(folder)
    if path is not None and path.is_file():
        refuse_changed_hyperparameters(algo, torch.load(path, mmap=True, weights_only=False), folder)


def restore_algorithm(algo, state: dict, folder: Path) -> None:
    """Loads the algorithm's state (algo.load_state_dict) from a checkpoint, after refusing any
    changed hyperparameter."""
    refuse_changed_hyperparameters(algo, state, folder)
    algo.load_state_dict(_algorithm_in(algo, state)[0])


def restore(ctx: Context, named: dict, algo) -> int:
    """Loads the last checkpoint into models/optimisers/algorithm/RNG; returns the step to start at."""
    state = load_checkpoint(ctx.checkpoint_dir)
    if state is None:
        return 0
    restore_algorithm(algo, state, ctx.checkpoint_dir)
    for name, obj in named.items():
        obj.load_state_dict(state["objects"][name])
    set_rng_state(state["rng"])
    return state["step"]


def checkpoint(ctx: Context, named: dict, algo, step: int) -> None:
    """Saves everything resume needs: weights, optimisers, schedulers, data position, RNG, the
    algorithm's state (algo.state_dict()) and its hyperparameters (to refuse a changed one on resume).
    The main process writes the file; a DeepSpeed engine's state_dict() saves its partitions on
    every process that calls it (Backend.every_rank_saves)."""
    objects = {name: obj.state_dict() for name, obj in named.items()}
    if ctx.group.is_main:
        save_checkpoint(
            ctx.checkpoint_dir,
            {
                "step": step,
                "objects": objects,
                "algo_state": algo.state_dict(),
                "algo_hyperparameters": hyperparameters(algo),
                "stage_keys": ctx.stage_keys,
                "rng": rng_state(),
            },
        )


def due(step: int, every: int, last: int) -> bool:
    """True on every `every`-th completed step (never when every == 0), excluding the last."""
    return every > 0 and step % every == 0 and step != last


def evaluate_now(ctx: Context) -> dict:
    """Held-out evaluation of the current policy (seeded; the training RNG is untouched)."""
    from align_lab.train.evaluate import evaluate

    return evaluate(
        ctx.policy,
        ctx.reference,
        ctx.tokenizer,
        ctx.task,
        ctx.scorer,
        ctx.engine,
        ctx.train.eval_samples,
        ctx.seed,
        judge=ctx.judge,
        micro_batch_size=ctx.eval_micro_batch_size,
    )


def end_of_step(ctx: Context, named: dict, algo, done: int, metrics: dict) -> dict | None:
    """What both loops do after a step: evaluate when due (always at the last step), log, checkpoint
    when due, and honour a preemption signal. Returns the evaluation if one ran. With data parallel,
    only rank 0 does these (every rank holds the same weights), except what needs every process:
    a ZeRO-3 policy's forwards (evaluation) and a DeepSpeed engine's checkpoint."""
    main, backend = ctx.group.is_main, ctx.backend
    evaluation = None
    if done == ctx.train.steps or due(done, ctx.train.eval_every, ctx.train.steps):
        if main or backend.every_rank_forwards(ctx.group):
            evaluation = evaluate_now(ctx)
            metrics |= evaluation
    if main:
        ctx.tracker.log(metrics, step=done)
    saves = main or backend.every_rank_saves(ctx.group)
    if saves and due(done, ctx.train.checkpoint_every, ctx.train.steps):
        checkpoint(ctx, named, algo, done)
    save = lambda: checkpoint(ctx, named, algo, done)  # noqa: E731
    if backend.every_rank_saves(ctx.group):  # the scheduler's signal reaches the main process only
        if ctx.group.from_main(ctx.preemption.requested is not None) and not main:
            save()  # with the main process, which then stops the run
            return evaluation
    if main:
        # a USR2 during the step: checkpoint now, then let submitit requeue the job
        ctx.preemption.after_step(save)
    return evaluation


def finish(ctx: Context, named: dict, algo, final: dict | None) -> dict:
    """The last checkpoint, and the final evaluation (re-run, seeded, if the run was already done)."""
    main, backend = ctx.group.is_main, ctx.backend
    if main or backend.every_rank_saves(ctx.group):
        checkpoint(ctx, named, algo, ctx.train.steps)
    if final is None and (main or backend.every_rank_forwards(ctx.group)):
        final = evaluate_now(ctx)
    return final if main else {}
