"""python -m align_lab: the Hydra app. Errors in the configuration end in one line and exit code 2."""

from __future__ import annotations

import contextlib
import os
import sys

from align_lab import exit_handlers, malloc
from align_lab.user_code import working_folder, working_folder_removed
from align_lab.user_forks import end_forks, say_programs_left
from align_lab.user_shadows import shadowing

if __name__ == "__main__" and working_folder_removed():  # a shell left in a folder removed since: three
    gone = f"the folder you run in ({working_folder()}) no longer exists (removed after the shell entered it)"
    print(f"align_lab: error: {gone}; cd into an existing folder and run the command again", file=sys.stderr)
    sys.exit(2)  # chained tracebacks, 70 lines (hunt of 2026-12-04)
if __name__ == "__main__":  # before torch is imported: this process starts again with tcmalloc, once
    malloc.start_with_it("align_lab")
    exit_handlers.noting()  # who registers each exit handler, for end()'s line where one never returns


def unworkable_setting() -> str | None:
    """A setting of the process the libraries cannot work under, said before anything: their tracebacks
    of 109 (transformers, python -OO) and 65 lines (torch's import) came after the run folder was made."""
    if sys.flags.optimize >= 2:
        return "PYTHONOPTIMIZE=2 (python -OO) strips the docstrings transformers reads; unset it, or set 1"
    if os.environ.get("TORCH_LOGS"):
        try:
            import torch  # noqa: F401
        except ValueError as e:
            said = " ".join(str(e).split()).split(". ")[0]  # its list of names follows
            return f"TORCH_LOGS={os.environ['TORCH_LOGS']}: torch refuses it ({said}); unset it"
    return None


if __name__ == "__main__" and (UNWORKABLE := unworkable_setting()):  # hunt of 2026-12-04, c40, c92
    print(f"align_lab: error: {UNWORKABLE}", file=sys.stderr)
    sys.exit(2)
REAL_EXIT = os._exit  # finished()'s, as end() puts exit_handler_said in os._exit's place (37th hunt, 22)


def command() -> None:
    """The command: its arguments put in order, then Hydra's app; a configuration error in one line."""
    from align_lab.app import (
        check_group_overrides,
        format_error,
        main,
        multirun_first,
        renamed_keys,
    )
    from align_lab.overrides import given_twice, run_dir_in_a_sweep, sweep_dir_without_a_sweep
    from align_lab.registry import GROUPS

    os.environ["HYDRA_FULL_ERROR"] = "1"  # config errors reach format_error (an exported 0: 47 lines)
    sys.argv[1:], moved = multirun_first(sys.argv[1:])  # `algo=ppo,rloo -m seed=0,1`: -m first
    args = sys.argv[1:]
    notes = run_dir_in_a_sweep(args), sweep_dir_without_a_sweep(args), slurm_without_a_sweep(args)
    for note in (moved, *notes, given_twice(args, tuple(GROUPS))):
        if note:
            print(note, file=sys.stderr)
    pairs = [f"{a}={b}" for a, b in zip(sys.argv, sys.argv[1:], strict=False)]
    if {"--cfg=job", "-c=job"} & {*pairs, *sys.argv}:
        sys.argv.append("--resolve")  # --cfg job shows the values a run uses, not ${...} interpolations
    try:
        sys.argv[1:] = renamed_keys(sys.argv[1:])  # the old flat keys (algo.clip=0.3), said once
        check_group_overrides(sys.argv[1:])
        if {"--help", "-h"} & set(sys.argv[1:]):  # its groups less conf/'s internal ones
            helped(main)
        else:
            main()
    except Exception as e:
        message = format_error(e)
        if message is None:
            said_shadowing()
            raise
        if isinstance(e, OSError) and "align_lab.study.admission" in sys.modules:
            sys.modules["align_lab.study.admission"].refused_before_launch()
        print(f"align_lab: error: {message}", file=sys.stderr)
        sys.exit(2)


def helped(main) -> None:
    """Hydra's --help, its groups less those no command line chooses (overrides.INTERNAL_GROUPS)."""
    import io

    from align_lab.overrides import without_internal_groups

    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            main()
    finally:
        print(without_internal_groups(said.getvalue()), end="")


def interrupted(e: BaseException) -> int:
    """The line for a signal no run took (importing, Hydra composing, between runs, after the last):
    SIGTERM, SIGHUP, SIGUSR1 as SIGINT (eighteenth hunt: they killed the command with no line)."""
    app = sys.modules.get("align_lab.app")  # not imported yet: no run started
    started = getattr(app, "STARTED", [])
    name = getattr(e, "signal_name", "SIGINT")
    where = "as the command started, before any run: rerun it"
    if started:  # what each run wrote stands: a rerun resumes or reports it
        where = f"outside a run's steps (after {started[-1]} started): rerun the command to go on"
    if started and completed(started[-1]):  # nineteenth hunt: "rerun" after a run that completed
        where = f"after its last run completed ({started[-1]}): what it wrote stands"
    print(f"align_lab: interrupted by {name} {where}", file=sys.stderr)
    return getattr(e, "exit_code", 130)


def completed(run_dir) -> bool:
    import json

    try:
        return json.loads((run_dir / "summary.json").read_text()).get("status") == "completed"
    except (OSError, ValueError, AttributeError):
        return False


def finished(names: tuple[str, ...]) -> None:
    """From the command's end to the process's: a signal says the command had finished and ends it (its
    default action killed it there with no line after "completed": eighteenth hunt's notes)."""
    import signal

    def say(signum, frame) -> None:
        try:
            sys.stdout.flush()  # what it printed, all of it
        except (OSError, RuntimeError):  # a reentrant call: the main thread was writing
            pass
        said = f"align_lab: {signal.Signals(signum).name}: the command had finished; it ends now\n"
        os.write(2, said.encode())
        REAL_EXIT(128 + signum)  # not an exit handler's call: its line named this one (37th hunt, 22)

    for name in names:  # not one ignored (`nohup`, a background job's SIGINT)
        if signal.getsignal(getattr(signal, name)) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(getattr(signal, name), say)


def blocked(names: tuple[str, ...]) -> set:
    """Blocks the signals `names` (they wait, pending); returns the mask before."""
    import signal

    return signal.pthread_sigmask(signal.SIG_BLOCK, {getattr(signal, n) for n in names})


def left_running(wait_s: float = 5.0) -> list:
    """The threads (not daemons) still running as the command ends, after `wait_s` for them to end: the
    interpreter would wait for each forever (eighteenth hunt: a reward's poller thread kept a completed
    run's command from ending; the spawned ranks end with os._exit and never waited)."""
    import threading
    import time

    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    deadline = time.monotonic() + wait_s
    for thread in others:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in others if t.is_alive()]


def end_leaving(threads: list, code: int = 0) -> None:
    """The command's end, where threads of the code it ran still run: said, and not waited for."""
    import logging

    names = ", ".join(t.name for t in threads)
    print(
        f"align_lab: warning: the command ends leaving thread {names} running (started by code it ran: a "
        "reward, verifier or environment of yours?); not waited for: make it a daemon thread, or end it",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    logging.shutdown()
    end_forks()  # what the code it ran forked goes with it
    say_programs_left()
    os._exit(code)


def exit_code(e: SystemExit) -> int:
    """The process's exit code for sys.exit(e.code), as the interpreter reads it (a text: said, 1)."""
    if e.code is None or isinstance(e.code, int):
        return e.code or 0
    print(e.code, file=sys.stderr)
    return 1


def end(code: int) -> None:
    """The process's end after the command's last write: the exit handlers run (W&B's, logging's,
    multiprocessing's) with finished()'s handlers still in place, then no module teardown. In the
    interpreter's teardown Python restores the default actions while torch's modules take hundreds of
    ms to go: a SIGTERM there killed a finished command with no line (nineteenth hunt, case 10)."""
    import logging

    torch_log = logging.getLogger("torch")
    if torch_log.level == logging.NOTSET:  # torch's exit-time statistics (FakeTensor's cache), at INFO
        torch_log.setLevel(logging.WARNING)  # under Hydra's root logger, after the line (20th hunt, 47)
    os._exit = lambda code: exit_handler_said(REAL_EXIT, code)
    try:  # bounded: one that never returned kept the command alive for ever, no line (37th hunt, 21)
        exit_handlers.run_within(code, REAL_EXIT)
    finally:
        os._exit = REAL_EXIT
    end_forks()  # what the code it ran forked and its exit handlers left (a fork Pool kept across calls)
    say_programs_left()  # and a program it started: not ended, said
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # a closed pipe; None where `>&-` closed it at start
            pass
    os._exit(code)


def exit_handler_said(real_exit, code) -> None:
    """os._exit in an exit handler (atexit) of the code the command ran: the process ends as it asked, with
    a line naming it; it ended a completed run's command with its code and no word (thirty-first hunt,
    case 21: rc 5 after "completed")."""
    caller = sys._getframe(2)  # 0: here, 1: the lambda put in os._exit's place
    print(
        f"align_lab: warning: {caller.f_code.co_filename}:{caller.f_lineno} (an exit handler, atexit, of "
        f"the code the command ran) called os._exit({code!r}) as the command ended: it ends with exit "
        f"code {code}",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    real_exit(code)


def slurm_without_a_sweep(args: list[str]) -> str | None:
    """The note for `hardware=slurm_*` without -m: Hydra's launchers submit sweeps only, so the run went
    on the machine it was typed on, its Slurm resources unused, with no line (thirty-eighth hunt, case
    35); None otherwise. A job's own process (sbatch's script, srun's tasks: slurmd sets SLURMD_NODENAME)
    runs where it was meant to; a SLURM_JOB_ID alone (a salloc shell on the login node, a copied
    environment) is not one (hunt of 2026-12-04, c85: it hid the note)."""
    from align_lab.overrides import multirun_asked

    typed = [a for a in args if a.startswith("hardware=slurm")]
    in_a_job = {"SLURM_JOB_ID", "SLURMD_NODENAME"} <= os.environ.keys()
    if not typed or multirun_asked(args) or in_a_job:
        return None
    return (
        f"align_lab: note: {typed[-1]} submits to Slurm with -m only (a sweep, of one run too: python -m "
        "align_lab -m ...); without it this run goes on here, on this machine"
    )


def said_shadowing() -> None:
    """In an unexpected exception's place: the shadowing line, exit code 2; else nothing (it is raised)."""
    if (line := shadowing()) is not None:
        print(f"align_lab: error: {line}", file=sys.stderr)
        os._exit(2)


if __name__ == "__main__":
    try:  # Python's own signal module, and align_lab's first
        import signal

        from align_lab.train.preemption import STARTING, Interrupted, Interruption
    except Exception:
        said_shadowing()
        raise

    try:
        # a signal outside every run's own handling (importing, Hydra composing, between runs) is held,
        # and stops the command at the next run's start (one line: the run's) or at its end (this line):
        # raised inside an import it was swallowed, or made a traceback (eighteenth hunt)
        with Interruption(deferred=True, waiting=STARTING) as command_s:
            command()
            left = left_running()
            mask = blocked(Interruption.SIGNALS)  # to finished()'s: none falls to the default between
        finished(Interruption.SIGNALS)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a signal that came meanwhile: said now
        code = None if command_s.requested is None else interrupted(command_s.stop(command_s.requested))
        if left:  # not waited for, even by an exit
            end_leaving(left, code or 0)
    except (KeyboardInterrupt, Interrupted) as e:  # a second signal: at once (seventeenth hunt: Ctrl-C)
        code = interrupted(e)
        finished(Interruption.SIGNALS)
    except SystemExit as e:  # a one-line stop, a sweep's failures: its code, and the same end
        finished(Interruption.SIGNALS)
        code = exit_code(e)
    except Exception:  # a bug's traceback, or a file of yours in place of Python's own module: its line
        said_shadowing()
        raise
    end(code or 0)
