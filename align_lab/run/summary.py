"""A run's summary.json and last words: what it found, where it is, and how a stop can be resumed."""

from __future__ import annotations

import contextlib
import errno
import logging
import resource
import signal
import time
from pathlib import Path

import torch
import yaml

from align_lab import malloc
from align_lab.cache import size_limit
from align_lab.config import ConfigError
from align_lab.folder import changed_inputs_said
from align_lab.rerun import as_printed, shell_command
from align_lab.run.frames import exited_where, users_frame
from align_lab.run.resumable import (
    DIGESTED_BEFORE,
    KEPT_BEFORE,
    KEPT_ON_RESUME,
    changed_key,
    config_digest,
    may_change_said,
    resumable_part,
    without_default_env,
)
from align_lab.run.run_folder import RESOLVED_CONFIG, RunFolder
from align_lab.train.checkpoint_io import CheckpointError, checkpoint_step
from align_lab.train.preemption import Interrupted
from align_lab.train.stop_at import describe
from align_lab.user_code import working_folder, working_folder_removed
from align_lab.value_checks import written

log = logging.getLogger("align_lab")


class RunStopped(Exception):
    """A run stopped for a reason the user can act on (a damaged checkpoint, a full disk, a signal):
    a one-line message, the exit code, and nothing already written lost."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


FIXED = " resume_changed_inputs=true"  # a resume after the user's code was fixed (run/inputs.py)


def resume_hint(ckpt: Path, also: str = "") -> str:
    """`resume from step N with: <the exact command>` (`also`: overrides it ends with): a plain rerun
    would start over in a new timestamped folder."""
    from align_lab.rerun import resume_command
    from align_lab.user_environ import read_whole
    from align_lab.user_reads import set_env_read

    read = tuple(set_env_read())  # as a checkpoint records them: a resume checks each
    whole = (  # the variables it read through a copy are not named (forty-second hunt, case 36)
        " (in a shell whose variables are as the run's: your code read the whole environment, as "
        "dict(os.environ) does, or started a command)"
        if read_whole()
        else ""
    )
    return f"resume from step {checkpoint_step(ckpt)} with: {resume_command(ckpt.parent, read)}{also}{whole}"


def stopped(e: BaseException, ckpt: Path) -> RunStopped | None:
    """The one-line stop of an exception a user can act on; None for anything else (a bug: traceback)."""
    resume = resume_hint(ckpt)
    # the user's code ended the run: its fix changes a file a resume checks (run/inputs.py), as for a raise
    # (twenty-third hunt, case 42: the hint's command was refused once the exit was taken out)
    fixed = resume_hint(ckpt, FIXED)
    if getattr(e, "raised_by_code", False):  # a KeyboardInterrupt raised by code, with no SIGINT sent
        return RunStopped(
            f"error: {exited_where(e)} raised KeyboardInterrupt (no SIGINT came) during the run; {fixed}", 1
        )
    if isinstance(e, Interrupted | KeyboardInterrupt):
        name = e.signal_name if isinstance(e, Interrupted) else "SIGINT"
        where = users_frame(e)  # a call that never returned (33rd hunt, case 67: the line did not say)
        where = f" in a call of your code, at {where}" if where else ""
        return RunStopped(f"interrupted by {name}{where}; {resume}", 128 + getattr(signal, name))
    if isinstance(e, CheckpointError):
        return RunStopped(f"error: {e}")
    if isinstance(e, FileNotFoundError) and not ckpt.parent.is_dir():  # eighteenth hunt: 58-122 lines
        return folder_removed(e, ckpt.parent)
    if isinstance(e, FileNotFoundError) and working_folder_removed():  # a library's os.getcwd(): 121 lines
        here = working_folder()  # (hunt of 2026-12-04)
        said = f"the folder the command runs in ({here}) was removed while it ran; make it again (mkdir -p"
        return RunStopped(f"error: {said} {here}), then {resume}")
    if isinstance(e, SystemExit):  # not a requeue (failure() read Preempted): code the run called exited
        called = getattr(e, "call", None) or f"{getattr(e, 'called', 'sys.exit')}({e.code!r})"  # ExitCalled
        if getattr(e, "thread", False):  # user_threads.py: the process ends as the thread asked
            called = f"(a thread of your code) called {called} during the run, ending it unfinished"
            return RunStopped(f"error: {exited_where(e)} {called}; {fixed}", 1)
        return RunStopped(f"error: {exited_where(e)} called {called} during the run; {fixed}", 1)
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        # a copy's error (shutil.copyfile) names its source first and the file it was writing second
        what = e.filename2 or e.filename or unnamed_write(ckpt.parent)
        if e.errno == errno.EFBIG:  # ulimit -f
            return RunStopped(
                f"error: writing {what} met {size_limit()}; raise it (ulimit -f), then {resume}"
            )
        return RunStopped(f"error: no space left on the device writing {what}; free space, then {resume}")
    if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return RunStopped(f"error: cannot write {e.filename or 'a file'} ({e.strerror})")
    return None


def unnamed_write(run_dir: Path) -> str:
    """A write whose error names no file (a flush): the run folder, else the temp folder (wandb's tables),
    where its device is (nearly) full (twentieth hunt, case 10; hunt of 2026-12-04, c35: "a file")."""
    import shutil
    import tempfile

    for folder, what in ((run_dir, str(run_dir)), (tempfile.gettempdir(), "the temp folder {} (TMPDIR)")):
        with contextlib.suppress(OSError):
            if (free := shutil.disk_usage(folder).free) < 2**20:
                return f"a file in {what.format(folder)} ({free // 1024} KiB free there)"
    return "a file"


def folder_removed(e: OSError, run_dir: Path) -> RunStopped:
    """The run's folder removed while the run went on (`rm -rf`, a cleanup script): one line; the logging
    that wrote its app.log let go, so that the lines that follow are said (they failed in turn)."""
    from align_lab.run.refused import let_go_of

    let_go_of(run_dir / "app.log")
    return RunStopped(
        f"error: the run folder {run_dir} was removed while the run went on ({e.filename or 'a file'} could "
        "not be written): nothing of the run is left; rerun the command to train it again"
    )


def base_exception_line(e: BaseException, run_dir) -> str:
    """The one line of a BaseException that is no error class (raised by a reward, verifier or env of the
    user's): where it was raised and how to resume; the run's summary.json keeps its traceback."""
    from align_lab.value_checks import one_line

    said = f"raised {one_line(e)} (a BaseException, past every handler of errors) during the run"
    return f"{exited_where(e)} {said}; {resume_hint(Path(run_dir) / 'checkpoints', FIXED)}"


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
        if isinstance(summary.get(key), int | float):  # a KL below 0: its sampled estimate's noise
            noise = " (a sampled estimate: below 0 is its noise)" * (key == "eval/kl" and summary[key] < 0)
            parts.append(f"{name} {summary[key]:.3f}{noise}")
    took = f" in {s:.0f} s" if isinstance(s := summary.get("time/total_s"), int | float) else ""
    how = f"completed, {describe(summary['stopped'])}," if summary.get("stopped") else "completed"
    changed = changed_inputs_said(summary)
    return [
        f"align_lab: {summary.get('algo')} seed {summary.get('seed')} {how}{took}: {', '.join(parts)}",
        *([f"  warning:    {changed} (resume_changed_inputs=true)"] if changed else []),
        f"  run folder: {as_printed(str(run_dir))}",
        f"  compare:    {compare_command(compare_folder(run_dir), summary.get('pythonpath'))}",
    ]


def compare_command(folder: Path, pythonpath: str | None = None) -> str:
    """`<python> -m align_lab.compare <folder>` as the shell must read it from any folder (shell_command),
    with the PYTHONPATH the run started with (the checkout it ran from: ninth hunt)."""
    env = {"PYTHONPATH": pythonpath} if isinstance(pythonpath, str) and pythonpath else None
    return shell_command("align_lab.compare", Path(folder), env=env)


def compare_folder(run_dir: Path) -> Path:
    """The folder whose runs are comparable with this one: its sweep's folder (the nearest one above it
    holding Hydra's multirun.yaml) for a run of a multirun, else the run folder itself: the folder above a
    single run (outputs/<date>) pools whatever else ran that day, another task or model included."""
    return next((p for p in run_dir.parents if (p / "multirun.yaml").is_file()), run_dir)


def check_same_config(run_dir: Path, config: dict) -> dict:
    """run_dir's summary; a completed run of another config there is refused, so its results (and its
    .hydra/ config, which compare reads) are never overwritten; one asked with only what a resume may
    change changed is the same run (run/completed.py)."""
    from align_lab.run.completed import another_config, completed_as_asked

    previous = RunFolder(run_dir).read_summary()
    other = previous.get("status") == "completed" and previous.get("config_digest") != config_digest(config)
    if other and not completed_as_asked(config, run_dir, previous):
        raise another_config(config, run_dir, previous)
    return previous


def run_identity(spec) -> dict:
    """A run's identity, kept inside each of its checkpoints and checked on resume (admission.py): the
    digest of its config (less what may change on resume), its seed, the digest of the training code
    (run/code_digest.py) and those of the user's inputs it reads (run/inputs.py: data, verifier, reward
    and environment modules, a teacher run, a remote reward's URL)."""
    from align_lab.run.code_digest import training_code_digest
    from align_lab.run.inputs import run_inputs

    config = config_digest(resumable_part(spec.config))
    inputs = run_inputs(resumable_part(spec.config))
    before = {  # as checkpoints before KEPT_ON_RESUME digested it, each with what it digested of the rest
        config_digest(resumable_part(spec.config, digested=d, kept=kept))
        for d in ((), *DIGESTED_BEFORE)
        for kept in (KEPT_BEFORE, KEPT_ON_RESUME)
    } - {config}
    return {"config": config, "seed": spec.seed, "code": training_code_digest(), "inputs": inputs} | (
        {"config_before": sorted(before)} if before else {}  # an older checkpoint's digest of this config
    )


RECORDED = ("algo", "model", "task", "train", "seed")  # in every run's config.resolved.yaml


def check_resume_config(run_dir: Path, config: dict, trained: str | None = None) -> None:
    """A run folder with a checkpoint resumes only the run that made it: its config.resolved.yaml
    against this one, key by key (MAY_CHANGE_ON_RESUME aside); one line naming the first difference.
    `trained`: the config digest inside the checkpoint (run_identity's), which tells an edited file."""
    path = run_dir / RESOLVED_CONFIG
    if not (run_dir / "checkpoints").is_dir() or not path.is_file():
        return
    try:
        previous = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return  # unreadable: the checkpoint's own hyperparameter check still runs
    from align_lab.aliases import nest_config

    lacking = [k for k in RECORDED if k in config]
    if isinstance(previous, dict):
        previous = nest_config(previous)[0]  # a run recorded before a rename: its old flat keys (aliases.py)
        lacking = [k for k in lacking if k not in previous]
    if lacking:  # cut short or damaged (seventh hunt: "algo={...}: the run to resume has algo=None")
        raise ConfigError(
            f"{path}: damaged (it records no {', '.join(lacking)}, which every run's does); move it away to "
            "resume on the checkpoint's own record of the config, or choose another hydra.run.dir"
        )
    found = changed_key(without_default_env(previous), without_default_env(config))
    if found is not None:
        key, old, new = found
        old, new = written(old), written(new)  # as the command line writes them: true, null
        if trained is not None and trained == config_digest(resumable_part(config)):  # eleventh hunt
            raise ConfigError(
                f"{path}: says {key}={old}, but the checkpoint beside it was trained with {key}={new}, as "
                "this command runs it: the file was edited since; put it back, or move it away to resume on "
                "the checkpoint's own record"
            )
        if key == "rollout.seed_per_sample" and old in ("false", "null"):  # 11th hunt: sent to and fro
            raise ConfigError(
                f"{key}={new}: the run in {run_dir} to resume sampled with {key}={old}, as one process does; "
                "it goes on as it started, on hardware.processes=1 (data parallel needs the per-row seeds "
                "from step 1), or choose another hydra.run.dir"
            )
        raise ConfigError(
            f"{key}={new}: the run in {run_dir} to resume has {key}={old}; resume it with the same config "
            f"(only {may_change_said()} may change) or choose another hydra.run.dir"
        )


def completed_before(run_dir: Path, previous: dict) -> dict:
    """The summary of this very run, which run_dir already holds completed (admission checked its config:
    run/folder_checks.py), reported as it is."""
    done = f" ({describe(previous['stopped'])})" if previous.get("stopped") else ""
    for line in [
        f"align_lab: this run was already completed{done}; nothing to do",
        *result_lines(previous, run_dir)[1:],
    ]:
        log.info(line)
    if not (run_dir / "metrics.jsonl").is_file():  # seventeenth hunt: deleted, and nothing said
        log.warning(
            f"warning: {run_dir / 'metrics.jsonl'}: missing: the run's curves are gone (summary.json keeps "
            "its final figures; compare draws no curve and counts no compute for it)"
        )
    return previous


def outcome(
    stages, final: dict, start: float, device: str, before: list[float], rollout_threads: dict
) -> dict:
    """What a completed run adds to its summary: final evaluation, stages used (run/stages.py's
    Stages), numerics, time and memory. `before`: the wall seconds of the run's earlier segments (a
    resumed run), counted in time/total_s. `rollout_threads`: rollout/busy.py threads_record's."""
    used = {
        s: {"key": r.key, "hit": r.hit, "seconds": round(r.seconds, 3)} for s, r in stages.results.items()
    }
    for s, size in stages.micro_batch_sizes.items():
        if s in used:  # rows per micro-batch the stage was built with (None: whole batches)
            used[s]["micro_batch_size"] = size
    gpu = {"memory/gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20} if device == "cuda" else {}
    return {
        "status": "completed",
        **final,
        "stages": used,
        # the device, CPU capability, math libraries and torch threads behind the numbers (issue 59: a
        # matmul's last bits can depend on the threads): training's (this segment's), the stages' (in
        # their keys too) and the rollouts'
        "numerics": {k: stages.numerics[k] for k in ("device", "math") if k in stages.numerics}
        | {"threads": torch.get_num_threads(), "stage_threads": stages.numerics.get("threads")}
        | rollout_threads,
        **stages.rm_metrics,
        "time/total_s": sum(before) + time.perf_counter() - start,
        "time/segments": len(before) + 1,
        "memory/peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "malloc": malloc.loaded(),  # the C allocator behind that peak and the times (align_lab/malloc.py)
        **gpu,
    }
