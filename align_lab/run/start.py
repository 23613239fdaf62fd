"""A run folder as a run starts (its first summary.json and resolved config), and as a resume refused
before anything was built leaves it (run/execute.py); every write through RunFolder (run/run_folder.py)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

import torch

from align_lab.folder import PROBES_FILE
from align_lab.rerun import PYTHONPATH, absolute_paths, resume_command
from align_lab.run.completed import SAME_RUN, TRAIN_ENDS, same_run_digest, train_ends
from align_lab.run.run_folder import SEGMENTS, RunFolder, write_atomic
from align_lab.run.spec import Job, RunSpec
from align_lab.run.summary import config_digest, stopped
from align_lab.run.sweep_inputs import check_afresh
from align_lab.train.checkpoint_io import checkpoint_step
from align_lab.train.rank_env import forget_env
from align_lab.user_probes import forget_scored, probes
from align_lab.user_pulse import pulsing
from align_lab.user_reads import as_opened, beside_from_here, used_by_user_code, watch
from align_lab.user_timeouts import for_the_run

log = logging.getLogger("align_lab")


def segment_threads(previous: dict, earlier: int) -> list:
    """The torch threads of each of a run's `earlier` segments (its summary's segment_threads; one
    written before they were recorded: its `threads` for each), then this segment's."""
    recorded = previous.get("segment_threads")
    recorded = recorded[:earlier] if isinstance(recorded, list) else []
    return [*recorded, *[previous.get("threads")] * (earlier - len(recorded)), torch.get_num_threads()]


def threads_changed(previous: dict, step: int) -> str | None:
    """One line when a resumed run trains on other torch threads than its last segment did: where the
    CPU's matmuls round by thread count (issue 59) its numbers then leave an uninterrupted run's."""
    old, now = previous.get("threads"), torch.get_num_threads()
    if not isinstance(old, int) or old == now:
        return None
    return (
        f"torch threads: this run trained on {old} until its checkpoint at step {step} and goes on with "
        f"{now} (hardware.num_threads, or the cores given); on a CPU whose matmuls round by thread count "
        "its numbers from here may differ from an uninterrupted run's (docs/reproducibility.md)"
    )


def sampling_threads(previous: dict, resumed: bool) -> int:
    """The torch threads `rollout.threads=auto` samples on for the whole run: those its first segment was
    given (the cores, never the load: busy.py's `load` is the opt-in that follows it), recorded in
    summary.json `sampling_threads`; a resume keeps the recorded count (one written before it was
    recorded: its last segment's `threads`, which the rollouts then sampled on), so that the rollouts'
    last bits do not depend on where or beside what each segment ran (issue 72)."""
    for key in ("sampling_threads", "threads") if resumed else ():
        value = previous.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    return torch.get_num_threads()


def first_summary(
    spec: RunSpec, digest: str, before: list[float], stage_threads: int, previous: dict | None = None
) -> dict:
    """summary.json as a run starts: what runs, the threads it has (and its stages were built with, and
    each segment ran on), the keys its model preset chose."""
    summary = {"status": "running", "algo": spec.names.get("algo"), "seed": spec.seed}
    # the default is the cores given: part of the numbers
    summary |= {"threads": torch.get_num_threads(), "stage_threads": stage_threads}
    summary |= {"segment_threads": segment_threads(previous or {}, len(before))}
    summary |= {"sampling_threads": sampling_threads(previous or {}, bool(before))}
    if spec.defaults_from:  # values the model preset chose (the user did not set these keys)
        summary |= {"defaults_from": spec.defaults_from}
        for source in dict.fromkeys(spec.defaults_from.values()):  # model=..., algo_on_model=...
            keys = [k for k, v in spec.defaults_from.items() if v == source]
            chosen = ", ".join(f"{k}={spec.config['algo'][k.split('.', 1)[1]]}" for k in keys)
            log.info(f"{chosen} from {source} (set the key to override)")
    summary |= {PYTHONPATH: absolute_paths(os.environ["PYTHONPATH"])} if os.environ.get("PYTHONPATH") else {}
    summary |= {"names": spec.names, "config_digest": digest, SAME_RUN: same_run_digest(spec.config)}
    summary |= {TRAIN_ENDS: train_ends(spec.config)}
    if getattr(spec.task, "skipped", 0):  # task.skip_invalid's dropped rows (docs/tasks.md: counted here)
        summary |= {"task/skipped_rows": spec.task.skipped}
    return summary | {"started": time.time(), SEGMENTS: before}


def start_folder(spec: RunSpec, folder: RunFolder, summary: dict) -> None:
    """The run folder with its first summary.json and resolved config; a full disk is one line."""
    try:
        folder.path.mkdir(parents=True, exist_ok=True)
        folder.write_summary(summary)
        folder.write_resolved_config(spec.config)
    except OSError as e:
        raise stopped(e, folder.path / "checkpoints") or e from None


def inputs_record(job: Job, inputs: dict, step: int) -> dict:
    """What summary.json records of the user's inputs (run/inputs.py): their digests, and each resume that
    went on with some changed (resume_changed_inputs=true), with its step, kept from segment to segment."""
    record = {"inputs": inputs} if inputs else {}
    earlier = job.previous.get("changed_inputs")
    earlier = earlier if isinstance(earlier, list) else []
    if job.changed_inputs:
        change = {k: {"was": old, "now": new} for k, (old, new) in job.changed_inputs.items()}
        earlier = [*earlier, {"step": step, "inputs": change}]
    return record | ({"changed_inputs": earlier} if earlier else {})


def begin(
    job: Job, ckpt: Path, folder: RunFolder, inputs: dict | None = None
) -> tuple[dict, list[float], int | None]:
    """(the first summary.json, written with the resolved config; the wall seconds of the earlier
    segments, which count in time/total_s; the threads the stages load with), with the digests of the
    user's `inputs` (run/summary.py run_identity's). A run started again from
    step 0 (its checkpoints deleted) counts no abandoned segment, and builds its stages afresh; one
    stopped before its first step counts its stopped segments (stopped_before_a_step)."""
    watch()  # what the user's code reads, kept in each checkpoint (user_reads.py): from admission on
    beside_from_here()  # and the files beside it, as they are as the run starts (37th hunt, case 29)
    forget_scored()  # the rows its scorers score, kept in each checkpoint (user_probes.py): this run's
    step = checkpoint_step(ckpt)
    resumed = step > 0
    if not resumed:  # as it starts, not only as the sweep's command began: a one-process sweep's later
        check_afresh(job.spec, job.run_dir)  # run beside a sibling that read another version (29th, 11)
    before = job.segments if resumed or stopped_before_a_step(job) or killed_before_a_checkpoint(job) else []
    stage_threads = job.stage_threads if resumed else None
    if resumed and (line := threads_changed(job.previous, step)):
        log.warning(f"align_lab: warning: {line}")
    digest = config_digest(job.spec.config)
    summary = first_summary(job.spec, digest, before, stage_threads or torch.get_num_threads(), job.previous)
    summary |= inputs_record(job, inputs or {}, step)
    if hasattr(job.spec.rollout, "fixed_threads"):  # rollout.threads=auto: the run's, kept (issue 72)
        job.spec.rollout.fixed_threads = summary["sampling_threads"]
    start_folder(job.spec, folder, summary)
    for_the_run(str(folder.summary_path), str(ckpt / "last"), said_resume(job.run_dir))  # a stuck call's
    pulsing(True)  # and a thread of the user's code holding Python's lock: their line (user_pulse.py)
    return summary, before, stage_threads


def stopped_before_a_step(job: Job) -> bool:
    """The run was stopped to be resumed (a signal, a preemption, a kill, or a failure whose line said
    "fix it, then resume from step 0": forty-second hunt, case 15, its time dropped) before it logged a
    step: its rerun goes on with the same work, so the stopped segments count in its wall time.
    Checkpoints deleted after steps were logged start the run again: those do not."""
    metrics = job.run_dir / "metrics.jsonl"
    stopped = job.previous.get("status") in ("interrupted", "preempted", "running", "failed")
    return stopped and not (metrics.is_file() and metrics.stat().st_size > 0)


def killed_before_a_checkpoint(job: Job) -> bool:
    """The run was killed (its summary still `running`) before its first checkpoint: its rerun from step 0
    does that work again, so the killed segment counts in its wall time (twenty-fourth hunt, case 37: it
    was dropped, the run reading as never interrupted). Checkpoints deleted after the steps that wrote
    them start the run again: those do not count."""
    if job.previous.get("status") != "running":
        return False
    every = (job.spec.config.get("train") or {}).get("checkpoint_every") or 0
    try:
        lines = (job.run_dir / "metrics.jsonl").read_text().splitlines()
        last = max((json.loads(x).get("step", 0) for x in lines if x.strip()), default=0)
    except (OSError, ValueError, AttributeError):
        return False
    return not isinstance(every, int) or every <= 0 or last < every


def leave(
    folder: RunFolder, summary: dict | None, kept: dict[str, bytes | None], segments: list[float]
) -> None:
    """summary.json as a run ends, with the wall seconds of each of its segments; a resume refused
    before anything was built (summary None): the files of RunFolder.kept() as they were, no time
    counted."""
    pulsing(False)
    forget_env()  # rank 0's place, set at admission (run/admission.py placed_as_rank_0)
    for_the_run(None)  # calls bounded from now are no longer this run's
    if summary is None:
        folder.restore(kept)
    else:
        summary[SEGMENTS] = segments  # in the summary run() returns too
        summary["inputs"] = {**(summary.get("inputs") or {}), **opened_inputs()}
        folder.write_summary(summary)
        if scored := probes():  # asked again by a run of its sweep that starts later (run/probe_check.py)
            with contextlib.suppress(OSError, TypeError, ValueError):  # a check's help, not the run's
                write_atomic(folder.path / PROBES_FILE, json.dumps(scored))


def said_resume(run_dir: Path) -> str | None:
    """The command that resumes the run, for the line of a call of the user's that was stuck in C or ended
    the process (hang_watch.py, which adds `resume_changed_inputs=true` where the fix is the code's); None
    where its Hydra record cannot say it (a run started in-process, as the tests' are: KeyError 'cwd').
    With the variables the user's code read by now set as when the run started, as the run's own lines
    have them (thirty-sixth hunt, case 52: after a kill -9 in a call, a fresh shell's resume lacked one)."""
    from align_lab.user_reads import set_env_read

    try:
        return resume_command(run_dir, tuple(set_env_read()))
    except (OSError, KeyError, TypeError, ValueError):
        return None


def opened_inputs() -> dict[str, dict]:
    """The files the user's code opened to read (a JSON of settings: user_reads.py), as the run ends, by
    the key and digest its inputs have: a sweep's run that starts afresh checks them (run/sweep_inputs.py)
    and compare notes runs that read two versions (twenty-eighth hunt, cases 28-29: a reward's settings
    file edited between a sweep's runs trained #1 on the other reward, no line anywhere)."""
    first = as_opened()  # the version the code read first, not the file as the run ends (30th hunt, 11)
    return {
        key: {"file": record["file"], "sha256": first.get(record["file"], record["sha256"])[:16]}
        for key, record in used_by_user_code().items()
        if key.startswith("file ")
    }
