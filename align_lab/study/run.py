"""One run: config -> components -> shared stages (cached) -> training loop -> evaluation -> run folder."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import resource
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import torch

from align_lab.algorithms.base import OnlineAlgorithm
from align_lab.algorithms.preference import PairwiseAlgorithm
from align_lab.config import ConfigError
from align_lab.models.lora import LoRA
from align_lab.rewards import GoldReward, LearnedRM, Verifier
from align_lab.rollout.base import RolloutEngine
from align_lab.study.cache import StageCache
from align_lab.study.world import World
from align_lab.train.backend import Backend, forget_process_group
from align_lab.train.common import CheckpointError, Context, TrainConfig, checkpoint_file, checkpoint_step
from align_lab.train.distributed import Group, SlurmWorld, slurm_world
from align_lab.train.online import train_online, validate
from align_lab.train.pairwise import train_pairwise
from align_lab.train.preemption import Interrupted, Interruption, Preempted, Preemption

log = logging.getLogger("align_lab")


class RunStopped(Exception):
    """A run stopped for a reason the user can act on (a damaged checkpoint, a full disk, a signal):
    a one-line message, the exit code, and nothing already written lost."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class RunSpec:
    """The built components of a run; `names` are the chosen config files, for labels only."""

    algo: object
    model: object
    task: object
    reward: object
    train: TrainConfig
    sft: object
    rollout: RolloutEngine
    tracker: dict
    seed: int
    cache_dir: Path
    device: str
    num_threads: int
    names: dict
    config: dict  # the resolved config, for the tracker
    judge: object = None  # judges evaluation win rates (conf/judge/); None: the run's reward
    processes: int = 1  # data-parallel processes on this node (train/distributed.py)
    nodes: int = 1  # Slurm nodes; >1: each of nodes x processes ranks is a Slurm task
    backend: Backend = field(default_factory=Backend)  # torch or DeepSpeed, dtype, checkpointing
    lora: LoRA = field(default_factory=LoRA)  # adapters on the policy (off by default)


class LogProgress:
    """Progress as a log line at every tenth of the work: what a run shows when stderr is not a
    terminal (a log file, a scheduler's output), instead of thousands of progress-bar redraws."""

    def __init__(self, total: int | None = None, initial: int = 0, desc: str = "", **_) -> None:
        self.total, self.n, self.desc, self.postfix = total, initial, desc, ""
        self.every = max(1, (total or 0) // 10)
        self.next = initial - initial % self.every + self.every

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total and self.n >= self.next:
            self.next = self.n - self.n % self.every + self.every
            log.info(f"{self.desc}: {self.n}/{self.total} {self.postfix}".rstrip())

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        pass

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_factory(enabled: bool = True):
    """tqdm bars on a terminal, one per stage with live reward and KL; elsewhere a log line at every
    tenth of each stage (LogProgress)."""
    from tqdm.auto import tqdm
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight loading/saving bars of tiny models are noise
    if enabled and not sys.stderr.isatty():
        return LogProgress
    return lambda **kw: tqdm(dynamic_ncols=True, mininterval=0.5, disable=not enabled, **kw)


def check_combination(spec: RunSpec, here: bool = True) -> None:
    """Cross-component checks that no single component can make; before any compute. `here`: also
    check that this machine has the device (not when a launcher checks runs for another machine)."""
    if isinstance(spec.algo, OnlineAlgorithm):
        try:
            validate(spec.algo, spec.train)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        critic_init = getattr(spec.algo, "critic_init", "sft") if spec.algo.uses_critic else "sft"
        if critic_init == "reward_model" and not isinstance(spec.reward, LearnedRM):
            raise ConfigError(
                "algo.critic_init=reward_model: needs reward=learned_rm (a reward model to copy), "
                f"not reward={spec.names.get('reward', type(spec.reward).__name__)}; "
                "or set algo.critic_init=sft"
            )
    elif not isinstance(spec.algo, PairwiseAlgorithm):
        raise ConfigError(
            f"algo._target_: {type(spec.algo).__name__} is neither an online nor a pairwise algorithm"
        )
    check_data(spec)
    check_installed = getattr(spec.rollout, "check_installed", None)  # engines in other environments
    if check_installed is not None:
        try:
            check_installed()
        except ValueError as e:
            raise ConfigError(str(e)) from None
    check_processes(spec)
    check_backend(spec, here)
    check_nodes(spec)
    if spec.device not in ("cpu", "cuda"):
        raise ConfigError(f"hardware.device={spec.device}: must be cpu or cuda")
    if here and spec.device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("hardware.device=cuda: no CUDA device is visible here; use hardware=cpu")
        if spec.processes > torch.cuda.device_count():
            raise ConfigError(
                f"hardware.processes={spec.processes}: must be <= the {torch.cuda.device_count()} "
                "visible GPUs (one process per GPU)"
            )


def check_processes(spec: RunSpec) -> None:
    """Data parallel splits each step's prompts (pairs) by process, with per-row sampling seeds."""
    if spec.processes < 1:
        raise ConfigError(f"hardware.processes={spec.processes}: must be >= 1")
    n = spec.processes * spec.nodes
    if n == 1:
        return
    key = f"hardware.processes={n}" if spec.nodes == 1 else f"hardware.nodes x processes={n}"
    if not getattr(spec.rollout, "seed_per_sample", False):
        raise ConfigError(
            f"{key}: needs rollout.seed_per_sample=true, so that a response does not "
            "depend on which process samples it"
        )
    from align_lab.rollout.vllm import VLLMEngine

    if isinstance(spec.rollout, VLLMEngine):
        raise ConfigError(
            f"{key}: rollout=vllm runs one process for now (a second process's engine "
            "stalls on CPU); use rollout=hf or hardware.processes=1"
        )
    online = isinstance(spec.algo, OnlineAlgorithm)
    per_step = spec.train.rollout_size // spec.algo.group_size if online else spec.train.minibatch_size
    if n > per_step:
        what = "prompts per step (train.rollout_size / algo.group_size)" if online else "train.minibatch_size"
        raise ConfigError(f"{key}: must be <= the {per_step} {what}")


def check_nodes(spec: RunSpec) -> None:
    """What a run across nodes does not do yet."""
    if spec.nodes > 1 and spec.backend.uses_deepspeed:
        raise ConfigError(
            f"hardware.nodes={spec.nodes}: hardware.backend=deepspeed runs on one node for now; "
            "use hardware.backend=torch or hardware.nodes=1"
        )


def slurm_rank(spec: RunSpec) -> SlurmWorld | None:
    """This process's Slurm task in a run across nodes (hardware.nodes > 1); None on one node."""
    if spec.nodes == 1:
        return None
    world = slurm_world(os.environ)
    ranks = spec.nodes * spec.processes
    if world is None or world.size != ranks:
        found = "not in a Slurm task" if world is None else f"in a Slurm step of {world.size} tasks"
        raise ConfigError(
            f"hardware.nodes={spec.nodes}: a run across nodes is {ranks} Slurm tasks ({spec.processes} "
            f"per node, started by srun), but this process is {found}; use hardware=slurm_multinode "
            "or hardware.nodes=1"
        )
    return world


def check_backend(spec: RunSpec, here: bool = True) -> None:
    """What the DeepSpeed backend does not do yet, and whether it is installed here."""
    if not spec.backend.uses_deepspeed:
        return
    if spec.train.micro_batch_size is not None:
        raise ConfigError(
            f"train.micro_batch_size={spec.train.micro_batch_size}: not supported with "
            "hardware.backend=deepspeed yet (the engine would step per micro-batch); use null or "
            "hardware.backend=torch"
        )
    pretrain = getattr(spec.algo, "critic_pretrain_steps", 0) if isinstance(spec.algo, OnlineAlgorithm) else 0
    if pretrain > 0:
        raise ConfigError(
            f"algo.critic_pretrain_steps={pretrain}: hardware.backend=deepspeed cannot hold the policy "
            "still while the critic trains; set it to 0 or use hardware.backend=torch"
        )
    if spec.backend.zero_stage == 3 and getattr(spec.algo, "sync_every", 1) > 1:
        raise ConfigError(
            f"algo.sync_every={spec.algo.sync_every}: a frozen sampling copy of a ZeRO-3 policy is not "
            "supported; use hardware.zero_stage=2 or algo.sync_every=1"
        )
    if here:
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError(
                "hardware.backend=deepspeed: the deepspeed package is not installed "
                "(pip install -e '.[deepspeed]')"
            )


def check_partitions(spec: RunSpec, ckpt: Path) -> None:
    """A DeepSpeed checkpoint holds one optimiser partition per process (ZeRO 1-3); it resumes with
    the process count that wrote it (DeepSpeed reshards only through its offline universal format)."""
    if not spec.backend.uses_deepspeed or checkpoint_step(ckpt) == 0:
        return
    saved = deepspeed_processes(ckpt / "deepspeed")
    if saved is not None and saved != spec.processes:
        raise ConfigError(
            f"hardware.processes={spec.processes}: {ckpt / 'deepspeed'} holds a DeepSpeed checkpoint of "
            f"{saved} processes, which resumes only with hardware.processes={saved}"
        )


def deepspeed_processes(folder: Path) -> int | None:
    """How many processes wrote the DeepSpeed checkpoints in `folder`: one optimiser partition file
    each (ZeRO 1-3); the most of any save (a save cut short by a kill holds fewer); None when there is
    none, or at ZeRO-0 (no partitions)."""
    counts = [len(list(tag.glob("*zero_pp_rank_*_optim_states.pt"))) for tag in folder.glob("step-*")]
    return max(counts, default=0) or None


def build_context(spec: RunSpec, world: World, ckpt: Path, tracker, progress, preemption) -> Context:
    """Models and reward of a run from its (cached) shared stages: what a training loop needs."""
    tok = world.tokenizer
    scorer = spec.reward.scorer(world)  # may build the reward model: the stages come first
    judge = spec.judge.judge(world, scorer) if spec.judge is not None else None
    pairwise = isinstance(spec.algo, PairwiseAlgorithm) and spec.algo.uses_dataset_pairs
    preferences = world.preferences if pairwise else None
    # seeded after the stages, so a run that builds them and one that finds them cached start alike
    torch.manual_seed(spec.seed)
    reference = world.load_reference().eval().requires_grad_(False)
    policy = spec.lora.apply(world.load_policy()).train()
    critic = None
    if isinstance(spec.algo, OnlineAlgorithm) and spec.algo.uses_critic:
        init = world.critic_start if spec.algo.critic_init == "sft" else world.stages["reward_model"].path
        critic = spec.model.init_critic(tok, init).train()  # a fresh value head: drawn from the seed
    return Context(
        world.policy_task,
        tok,
        policy,
        reference,
        critic,
        scorer,
        spec.rollout,
        spec.train,
        tracker,
        ckpt,
        spec.seed,
        progress,
        preferences,
        preemption=preemption,
        judge=judge,
        backend=spec.backend,
    )


def use_device(spec: RunSpec, rank: int) -> None:
    """Makes new tensors and models default to the run's device (one GPU per process)."""
    if spec.device == "cuda":
        torch.cuda.set_device(rank)
        torch.set_default_device(f"cuda:{rank}")


def _init_process_group(rank: int, size: int, port: int, device: str = "cpu") -> None:
    import torch.distributed as dist

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one node: talk over loopback
    if device == "cpu":  # DeepSpeed, if something imports it, then says nothing about GPUs
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    dist.init_process_group(
        "nccl" if device == "cuda" else "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=size,
        timeout=timedelta(minutes=15),
    )


# a run across nodes: the other ranks wait this long for rank 0 to build the shared stages
STAGES_WAIT = timedelta(days=7)


def _join_slurm_group(world: SlurmWorld, device: str = "cpu") -> None:
    """Process group of a run across nodes, at rank 0's host: rank 0 opens it once it has built the
    shared stages (a first run builds them, the others then find them in the shared cache_dir); the
    other ranks wait for it up to STAGES_WAIT. Collectives then time out as on one node."""
    import torch.distributed as dist

    if device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    wait = timedelta(minutes=15) if world.rank == 0 else STAGES_WAIT
    node = os.environ.get("SLURMD_NODENAME", "?")
    log.info(f"rank {world.rank} of {world.size} on node {node}: meeting at {world.master_addr}:{world.port}")
    store = dist.TCPStore(world.master_addr, world.port, world.size, world.rank == 0, timeout=wait)
    dist.init_process_group(
        "nccl" if device == "cuda" else "gloo",
        store=store,
        rank=world.rank,
        world_size=world.size,
        timeout=timedelta(minutes=15),
    )


def _follow(spec: RunSpec, run_dir: Path, group: Group) -> None:
    """A data-parallel rank other than 0, in its process group: the same loop on its rows; rank 0
    logs and checkpoints."""
    import torch.distributed as dist

    from align_lab.tracking import MultiTracker

    quiet = progress_factory(enabled=False)
    world = World(
        spec.task, spec.model, spec.sft, StageCache(spec.cache_dir), quiet, spec.train.micro_batch_size
    )
    ctx = build_context(spec, world, run_dir / "checkpoints", MultiTracker([]), quiet, Preemption())
    ctx.group = group
    loop = train_online if isinstance(spec.algo, OnlineAlgorithm) else train_pairwise
    loop(spec.algo, ctx)
    dist.barrier()  # rank 0 has finished too: no collective is in flight
    dist.destroy_process_group()


def _worker(index: int, spec: RunSpec, run_dir: Path, port: int) -> None:
    """Data-parallel rank index + 1 on this node, spawned by rank 0."""
    if spec.num_threads:
        torch.set_num_threads(spec.num_threads)
    use_device(spec, index + 1)
    _init_process_group(index + 1, spec.processes, port, spec.device)
    _follow(spec, run_dir, Group(index + 1, spec.processes))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: a late gloo thread must not abort a finished worker


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def data_parallel(spec: RunSpec, run_dir: Path):
    """Starts processes 1..N-1 of a data-parallel run (this process is rank 0) and yields rank 0's
    Group; waits for them at the end, and stops them if rank 0 fails. Across nodes, the other ranks
    are Slurm tasks of their own: rank 0 only meets them."""
    slurm = slurm_rank(spec)
    if slurm is not None:
        import torch.distributed as dist

        _join_slurm_group(slurm, spec.device)
        try:
            yield Group(0, slurm.size)
            dist.barrier()  # every rank has finished its loop
        finally:
            dist.destroy_process_group()
        return
    if spec.processes == 1:
        if not spec.backend.uses_deepspeed:
            yield Group()
            return
        # DeepSpeed needs a process group even for one process
        import torch.distributed as dist

        _init_process_group(0, 1, _free_port(), spec.device)
        try:
            yield Group()
        finally:
            forget_process_group()
            dist.destroy_process_group()
        return
    import torch.distributed as dist
    import torch.multiprocessing as mp

    port = _free_port()
    workers = mp.start_processes(
        _worker, args=(spec, run_dir, port), nprocs=spec.processes - 1, join=False, start_method="spawn"
    )
    try:
        _init_process_group(0, spec.processes, port, spec.device)
        yield Group(0, spec.processes)
        dist.barrier()  # every worker has finished its loop
        while not workers.join():
            pass
    except RuntimeError as e:  # a collective failed: a worker's own error says why
        try:
            workers.join(timeout=10)
        except mp.ProcessRaisedException as worker:
            raise worker from e
        raise
    finally:
        for process in workers.processes:
            if process.is_alive():
                process.terminate()
        forget_process_group()
        if dist.is_initialized():
            dist.destroy_process_group()


def check_data(spec: RunSpec) -> None:
    """A real-text task needs a pretrained model; pairs must exist where the run needs them; every
    prompt must fit the model's limit (which needs the model's tokenizer)."""
    task_name, model_name = spec.names.get("task", "task"), spec.names.get("model", "model")
    if isinstance(spec.reward, Verifier) and not spec.task.verifiable:
        raise ConfigError(
            f"reward=verifier: task={task_name} has no verifiable answers; "
            "use task=toy_arith or task=arith_word"
        )
    check_reachable = getattr(spec.reward, "check_reachable", None)  # a reward served elsewhere
    if check_reachable is not None:
        try:
            check_reachable()
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if not spec.model.pretrained and not hasattr(spec.task, "max_prompt_tokens"):
        raise ConfigError(
            f"task={task_name}: real text needs model=hf (a pretrained tokenizer and its token limits), "
            f"not model={model_name}"
        )
    if not spec.task.has_gold_reward:
        reward = spec.names.get("reward", type(spec.reward).__name__)
        if isinstance(spec.reward, GoldReward | Verifier):
            raise ConfigError(f"reward={reward}: task={task_name} has no gold reward; use reward=hf_rm")
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
    if spec.model.pretrained:
        try:
            spec.model.check_task(spec.task)
        except ValueError as e:
            raise ConfigError(str(e)) from None


def write_summary(run_dir: Path, summary: dict) -> None:
    tmp = run_dir / "summary.json.tmp"
    try:
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True, default=str))
        tmp.replace(run_dir / "summary.json")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_summary(run_dir: Path) -> dict:
    """The run folder's summary.json, or {} when there is none (or it is unreadable)."""
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def config_digest(config: dict) -> str:
    """sha256 of the resolved config (canonical JSON), 16 hex chars: the identity of a run's settings."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def result_lines(summary: dict, run_dir: Path) -> list[str]:
    """What a finished run found, where it is, and how to compare it: the run's last words."""
    parts = []
    for key, name in (("eval/gold_reward", "gold reward"), ("eval/rm_score", "reward-model score")):
        if isinstance(summary.get(key), int | float):
            sft = summary.get(f"{key}_sft")
            parts.append(
                f"{name} {summary[key]:.3f}" + (f" (SFT {sft:.3f})" if isinstance(sft, float) else "")
            )
            break
    for key, name in (("eval/kl", "KL to SFT"), ("eval/win_rate_vs_sft", "win rate vs SFT")):
        if isinstance(summary.get(key), int | float):
            parts.append(f"{name} {summary[key]:.3f}")
    seconds = summary.get("time/total_s")
    took = f" in {seconds:.0f} s" if isinstance(seconds, int | float) else ""
    return [
        f"align_lab: {summary.get('algo')} seed {summary.get('seed')} completed{took}: {', '.join(parts)}",
        f"  run folder: {run_dir}",
        f"  compare:    python -m align_lab.compare {run_dir.parent}",
    ]


def _stopped(e: BaseException, ckpt: Path) -> RunStopped | None:
    """The one-line stop of an exception a user can act on; None for anything else (a bug: traceback)."""
    resume = f"rerun the same command to resume from step {checkpoint_step(ckpt)}"
    if isinstance(e, Interrupted | KeyboardInterrupt):
        name = e.signal_name if isinstance(e, Interrupted) else "SIGINT"
        return RunStopped(f"interrupted by {name}; {resume}", 128 + getattr(signal, name))
    if isinstance(e, CheckpointError):
        return RunStopped(f"error: {e}")
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return RunStopped(
            f"error: no space left on the device writing {e.filename or 'a file'}; free space, then {resume}"
        )
    if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return RunStopped(f"error: cannot write {e.filename or 'a file'} ({e.strerror})")
    return None


def run(spec: RunSpec, run_dir: Path) -> dict:
    """Runs (or resumes, when run_dir holds a checkpoint) one alignment run; returns summary.json.

    A folder that already holds this run, completed, is reported as it is (its checkpoint is not even
    read); a completed run of another config there is refused, so its results are never overwritten.
    A damaged checkpoint, a full disk, SIGTERM or Ctrl-C end the run with RunStopped: one line, the
    summary says failed or interrupted, and everything written before stays.
    """
    from align_lab.tracking import make_tracker

    check_combination(spec)
    digest = config_digest(spec.config)
    previous = read_summary(run_dir)
    if previous.get("status") == "completed":
        if previous.get("config_digest") != digest:
            raise ConfigError(
                f"hydra.run.dir={run_dir}: holds a completed run of another config; choose another folder "
                f"(or delete {run_dir / 'summary.json'} to run there again)"
            )
        for line in [
            "align_lab: this run was already completed; nothing to do",
            *result_lines(previous, run_dir)[1:],
        ]:
            log.info(line)
        return previous
    ckpt = run_dir / "checkpoints"
    try:
        checkpoint_file(ckpt)  # before any compute: a damaged checkpoint is one line, not a traceback
    except CheckpointError as e:
        raise RunStopped(f"error: {e}") from None
    check_partitions(spec, ckpt)
    start = time.perf_counter()
    if spec.num_threads:
        torch.set_num_threads(spec.num_threads)
    slurm = slurm_rank(spec)
    use_device(spec, slurm.local_rank if slurm else 0)
    if slurm is not None and slurm.rank != 0:  # a run across nodes: rank 0 writes the run folder
        _join_slurm_group(slurm, spec.device)
        _follow(spec, run_dir, Group(slurm.rank, slurm.size))
        return {"status": "completed", "rank": slurm.rank}
    summary = {
        "status": "running",
        "algo": spec.names.get("algo"),
        "seed": spec.seed,
        "names": spec.names,
        "config_digest": digest,
    }
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_summary(run_dir, summary)
    except OSError as e:
        raise _stopped(e, ckpt) or e from None
    # logged `step` = completed steps, so lines up to the checkpoint's step survive a resume
    tracker = make_tracker(
        spec.tracker["kind"],
        run_dir,
        project=spec.tracker["project"],
        group=spec.tracker["group"],
        job_type=spec.names.get("algo", "run"),
        tags=[spec.names.get(k, "") for k in ("task", "model", "reward")],
        config=spec.config,
        start_step=checkpoint_step(ckpt) + 1,
        mode=spec.tracker["mode"],
    )
    progress = progress_factory()
    try:
        with Interruption():
            world = World(
                spec.task,
                spec.model,
                spec.sft,
                StageCache(spec.cache_dir),
                progress,
                spec.train.micro_batch_size,
            )
            ctx = build_context(spec, world, ckpt, tracker, progress, Preemption().install())
            loop = train_online if isinstance(spec.algo, OnlineAlgorithm) else train_pairwise
            with data_parallel(spec, run_dir) as ctx.group:  # the shared stages exist before workers start
                final = loop(spec.algo, ctx)
        summary |= {
            "status": "completed",
            **final,
            "stages": {
                s: {"key": r.key, "hit": r.hit, "seconds": round(r.seconds, 3)}
                for s, r in world.stages.items()
            },
            **getattr(world, "rm_metrics", {}),
            "time/total_s": time.perf_counter() - start,
            "memory/peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            **(
                {"memory/gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20}
                if spec.device == "cuda"
                else {}
            ),
        }
        tracker.summary({k: v for k, v in final.items()})
        for line in result_lines(summary, run_dir):
            log.info(line)
        return summary
    except Preempted:
        summary |= {"status": "preempted"}  # requeued by the scheduler, or resumed by a rerun
        raise
    except BaseException as e:
        stopped = _stopped(e, ckpt)
        interrupted = isinstance(e, Interrupted | KeyboardInterrupt)
        summary |= {
            "status": "interrupted" if interrupted else "failed",
            "error": str(stopped) if stopped else f"{type(e).__name__}: {e}",
            **({} if stopped else {"traceback": traceback.format_exc()}),
        }
        if stopped:
            raise stopped from None
        raise
    finally:
        spec.rollout.close()
        try:
            write_summary(run_dir, summary)
        finally:
            tracker.close()
