"""python -m align_lab.study status <dir> | resume <dir>: follow and repair a submitted study."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
from collections import Counter
from contextlib import chdir, nullcontext
from pathlib import Path

from align_lab import malloc

if __name__ == "__main__":  # the jobs `resume` submits inherit the malloc `python -m align_lab` has
    malloc.start_with_it("align_lab.study")

from align_lab.results.manifest import MANIFEST, load_manifest, write_manifest
from align_lab.run.sweep_inputs import changed_since_the_sweep
from align_lab.study.local_jobs import deaf_to_the_group, detached_output
from align_lab.study.status import study_states
from align_lab.study.submission import status_command
from align_lab.train.preemption import Interrupted, Interruption, held
from align_lab.value_checks import said_all, say

STATES = ("done", "running", "pending", "interrupted", "failed", "died")


def slurm_answers(study_dir: Path) -> None:
    """A Slurm study read or resumed where Slurm answers: else one line (twenty-third hunt, case 45: sacct's
    error lines and submitit's warnings mixed into the table)."""
    from align_lab.study.submission import unanswered

    try:
        manifest = load_manifest(study_dir)
    except (FileNotFoundError, ValueError):  # a run folder (status reads it alone), or said by the command
        return
    if manifest["cluster"] == "slurm" and (answer := unanswered()) is not None:
        raise ValueError(
            f"{study_dir}: a Slurm study, and Slurm does not answer from this shell (`sinfo`: {answer}); "
            "check that `sinfo` works here (SLURM_CONF, the controller), then rerun"
        )


def status(study_dir: Path) -> int:
    states = study_states(study_dir)
    for s in states:
        say(f"#{s.num:<3} {s.state:<8} {' '.join(s.overrides)}  [{s.detail}]  {s.run_dir}")
    counts = Counter(s.state for s in states)
    say(", ".join(f"{counts.get(k, 0)} {k}" for k in STATES))
    return 1 if counts.get("failed") or counts.get("died") or counts.get("interrupted") else 0


def to_resubmit(states: list) -> set[int]:
    """The runs `resume` submits again: not done, not running, and not in the queue already (a requeue
    after a preemption is pending there: resubmitted, two jobs took one folder, twenty-third hunt, 46)."""
    again = ("interrupted", "failed", "died")
    return {s.num for s in states if s.state in again or (s.state == "pending" and not s.job_id)}


def resume(study_dir: Path, wait: bool) -> int:
    """Resubmits runs that are not done and not running, each from its own checkpoint."""
    if (line := not_submitted(study_dir)) is not None:
        raise ValueError(line)
    manifest = load_manifest(study_dir)  # a missing or damaged one refused before submitit is imported
    if "moved_from" in manifest:
        raise ValueError(moved_study(manifest))

    import submitit

    todo = to_resubmit(study_states(study_dir))
    changed = changed_since_the_sweep([Path(r["run_dir"]) for r in manifest["runs"]]) if todo else None
    if changed:  # before anything is submitted: each run's own check sees only its own checkpoint
        raise ValueError(changed)
    never = sorted(r["num"] for r in manifest["runs"] if r["num"] in todo and not r.get("submitit_folder"))
    if never:  # no job of its own to submit again (a KeyError traceback): the sweep's command runs it
        from align_lab.rerun import sweep_resume_command

        listed = ", ".join(f"#{n}" for n in never)
        say(
            f"{listed}: never submitted, so no job to submit again; the sweep's command runs them: "
            f"{sweep_resume_command(Path(study_dir))}"
        )
        todo -= set(never)
    # a signal as it submits waits for the manifest to name the jobs submitted (then stops: main)
    with held("the command stops once the runs it submits are recorded ({name} again: now)"):
        with chdir(where_it_ran(study_dir)):  # its jobs start where the sweep did, as its own resume
            jobs = _resubmitted(manifest, todo, wait, submitit)  # line does (twenty-fourth hunt, case 15)
        write_manifest(study_dir, manifest)
    for run, job in jobs:  # said once recorded: a reader gone (`| head -1`) cuts no submission short
        say(f"#{run['num']} resubmitted as job {job.job_id}: {' '.join(run['overrides'])}")
    runs = f"{len(jobs)} run{'s' * (len(jobs) != 1)}"  # "1 runs" (fifth hunt of 2026-12-04)
    say(f"{runs} resubmitted, {len(manifest['runs']) - len(jobs)} left as they are")
    if wait:
        return waited(study_dir, jobs, manifest["cluster"])
    return 0


def not_submitted(study_dir: Path) -> str | None:
    """The line for a folder `resume` has no jobs of: a sweep run in one process (its runs never were
    jobs) or a single run's, with the command that resumes it; None otherwise. Both were `no study
    manifest here (expected a sweep folder)`, of a sweep's folder (thirty-seventh hunt, case 34)."""
    from align_lab.rerun import resume_command, sweep_resume_command

    folder = Path(study_dir)
    if not folder.is_dir() or (folder / MANIFEST).exists():
        return None
    if (folder / "multirun.yaml").exists():
        return (
            f"{folder}: a sweep run in one process (no study manifest: its runs were never jobs to submit "
            f"again); its own command resumes it: {sweep_resume_command(folder)}"
        )
    if (folder / ".hydra" / "config.yaml").exists():
        return (
            f"{folder}: a run's folder, not a sweep's; its own command resumes it: {resume_command(folder)}"
        )
    return None


def where_it_ran(study_dir: Path) -> Path:
    """The folder the sweep was run in (its multirun.yaml), where its jobs import the user's modules and
    align_lab from: typed elsewhere, a reward module was not found ("cannot import myrew") and another
    checkout beside the caller ran its code. This folder where that one is gone."""
    from align_lab.rerun import sweep_cwd

    first = sweep_cwd(study_dir)
    return first if first is not None and first.is_dir() else Path.cwd()


def _resubmitted(manifest: dict, todo: set[int], wait: bool, submitit) -> list:
    """Each run of `todo` submitted again as it was first: (its manifest entry, updated, and its job). On
    Slurm the runs of one set of resources go as one array, so that its `%N` (hardware.max_parallel, the
    queue's slurm_array_parallelism) holds again (twenty-sixth hunt, case 45: both ran at once)."""
    runs = [run for run in manifest["runs"] if run["num"] in todo]
    cluster, jobs = manifest["cluster"], []
    alike: dict[str, list[dict]] = {}
    for run in runs:  # local: each submitted on its own, as before
        same = json.dumps(run["resources"], sort_keys=True) if cluster == "slurm" else str(run["num"])
        alike.setdefault(same, []).append(run)
    for group in alike.values():
        executor = submitit.AutoExecutor(
            folder=manifest["folder"],
            cluster=cluster,
            **{f"{cluster}_max_num_timeout": manifest["max_num_timeout"]},
        )
        executor.update_parameters(**{**manifest["queue"], **group[0]["resources"]})
        calls = [_submitted_call(run) for run in group]  # submitit's pickled call: same config and folder
        with deaf_to_the_group() if cluster == "local" else nullcontext():  # as the sweep's (local_jobs.py)
            with detached_output() if cluster == "local" and not wait else nullcontext():  # case 56: a pipe
                with executor.batch() if len(group) > 1 else nullcontext():
                    submitted = [executor.submit(c.function, *c.args, **c.kwargs) for c in calls]
        for run, job in zip(group, submitted, strict=True):
            run.update(job_id=job.job_id, submitit_folder=str(job.paths.folder))
            jobs.append((run, job))
    return jobs


def _submitted_call(run: dict):
    """submitit's pickled call of a run, read as the job reads it: from the folder the sweep ran in, whose
    modules (a `task.verifier=myv:check`, loaded again as the task unpickles) import from there: typed
    elsewhere, "cannot import it (No module named 'myv')" (twenty-seventh hunt, case 8)."""
    sys.path.insert(0, os.getcwd())  # where_it_ran: resume's chdir
    try:
        with open(Path(run["submitit_folder"]) / f"{run['job_id']}_submitted.pkl", "rb") as f:
            return pickle.load(f)
    finally:
        sys.path.remove(os.getcwd())


def moved_study(manifest: dict) -> str:
    """The one line for `resume` of a study whose folder moved: its submitted jobs (submitit's pickles)
    name the folder it was made in, where they would train again (twenty-third hunt, case 35: a bare
    `[Errno 2]` naming that folder); the sweep's own command, given the new folder, resumes each run."""
    from align_lab.rerun import shell_command

    new, command = manifest["sweep_dir"], [str(a) for a in manifest.get("command", [])[1:]]
    args = [a for a in command if not a.startswith("hydra.sweep.dir=")] + [f"hydra.sweep.dir={new}"]
    again = shell_command("align_lab", *args)
    return (
        f"{new}: this study was made in {manifest['moved_from']}, and its submitted jobs would run there; "
        f"resume it with its own command, from the folder it was first run in: {again}"
    )


def waited(study_dir: Path, resubmitted: list, cluster: str) -> int:
    """`resume --wait`: the study's status once the `resubmitted` (manifest entry, job) pairs have ended. A
    signal meanwhile (a 15-line KeyboardInterrupt traceback, and a SIGTERM left the runs training:
    twenty-second hunt, case 29) stops a local study's runs at their steps' end, as the sweep's command
    does, those whose job's controller was killed too (twenty-fourth hunt, case 14: one trained on
    unnamed), or leaves a Slurm study's jobs to go on, and says how to follow or resume it."""
    from align_lab.rerun import shell_command
    from align_lab.study.local_jobs import ended, lost_runs, stopped_jobs
    from align_lab.train.preemption import Interrupted, Interruption

    jobs = [job for _, job in resubmitted]
    try:
        with Interruption():
            ended(jobs, None)
    except Interrupted as e:
        name, command = e.signal_name, shell_command("align_lab.study", "resume", Path(study_dir))
        if cluster != "local":
            follow = shell_command("align_lab.study", "status", Path(study_dir))
            print(
                f"align_lab.study: {name}: stopped waiting; the resubmitted runs go on in Slurm: {follow}",
                file=sys.stderr,
            )
            return e.exit_code
        lost = lost_runs([(job, run) for run, job in resubmitted])
        going = [job for run, job in resubmitted if Path(run["run_dir"]) not in lost]
        running = stopped_jobs(going, name, lost)
        left = f" (once jobs {', '.join(job.job_id for job in running)} have ended)" if running else ""
        said = f"resume interrupted by {name}: each unfinished run resumable from its last checkpoint"
        print(f"align_lab.study: {said}; resume with: {command}{left}", file=sys.stderr, flush=True)
        return e.exit_code
    return status(study_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m align_lab.study", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("status", "each run's state: done, running, pending, failed (with its error)"),
        ("resume", "resubmit the runs that are failed or were never submitted"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("study_dir", type=Path, help="the sweep folder holding study.json")
        if name == "resume":
            p.add_argument("--wait", action="store_true", help="wait for the resubmitted runs")
    args = parser.parse_args(argv)
    try:
        with Interruption():
            slurm_answers(args.study_dir)
            return status(args.study_dir) if args.command == "status" else resume(args.study_dir, args.wait)
    except Interrupted as e:  # rc 143 and no word (twenty-fourth hunt, case 33)
        said = f"{args.command} interrupted by {e.signal_name}; see {status_command(args.study_dir)}"
        print(f"align_lab.study: {said}", file=sys.stderr)
        return e.exit_code
    except (FileNotFoundError, ValueError) as e:  # no manifest, or a damaged one (load_manifest)
        print(f"align_lab.study: error: {e}", file=sys.stderr)
        return 2
    # a folder it cannot write (a job's pickle; twenty-second hunt, case 42: a traceback)
    except OSError as e:
        where = e.filename or args.study_dir
        print(
            f"align_lab.study: error: cannot write {where} ({e.strerror}); make it writable, then rerun",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(said_all(main()))
