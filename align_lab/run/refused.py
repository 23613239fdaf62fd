"""A run refused (or interrupted) before it started leaves no folder behind: what Hydra made for it (an
empty app.log, its lock, an empty .hydra/) removed, and the logging that wrote there let go; one refused
once its .hydra/ record is written says so in its summary.json."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from align_lab.config import ConfigError

SAID = ": the default is named to the second; give each command its own hydra.run.dir"


class TakenThisSecond(ConfigError):
    """The default run folder (named to the second) in use by a run of another command started in the
    same second: this command runs in a folder of its own (run_elsewhere)."""

    def __init__(self, line: str, run_dir: Path) -> None:
        super().__init__(line)
        self.run_dir = Path(run_dir)


def same_second(e: ConfigError, run_dir: Path) -> ConfigError:
    """A folder in use where the command typed none: two commands started in one second (`for k in 0.05
    0.2; do python -m align_lab algo.kl_coef=$k & done`: the second was refused, hunt of 2026-12-04, c80);
    a single run then runs elsewhere (TakenThisSecond), a sweep's job is refused saying why."""
    typed = any(a.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for a in sys.argv[1:])
    if typed or "in use by a run of" not in str(e):
        return e
    sweep = {"-m", "--multirun"} & set(sys.argv[1:])
    return ConfigError(f"{e}{SAID}") if sweep else TakenThisSecond(str(e), run_dir)


def run_elsewhere(e: BaseException) -> None:
    """For TakenThisSecond, this command again (os.execv: nothing of it written yet) in `<the default
    folder>-<pid>`, said; else nothing."""
    if not isinstance(e, TakenThisSecond):
        return
    folder = f"{e.run_dir}-{os.getpid()}"
    said = f"{e.run_dir} is in use by a run started in the same second; this run goes to {folder}"
    print(f"align_lab: note: {said}", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os.execv(sys.executable, [sys.executable, "-m", "align_lab", *sys.argv[1:], f"hydra.run.dir={folder}"])


def handlers_of(log: Path) -> list:
    """(logger, handler) of each logging handler that writes the file `log`."""
    import logging

    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return [
        (logger, handler)
        for logger in loggers
        if isinstance(logger, logging.Logger)
        for handler in list(logger.handlers)
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == log.absolute()
    ]


def let_go_of(log: Path) -> None:
    """The logging handlers that write `log` (Hydra's app.log) closed and taken off: a line logged at
    exit (torch's FakeTensor stats) opened the removed file again, a 22-line traceback after the run's
    one line (seventeenth hunt)."""
    for logger, handler in handlers_of(log):
        logger.removeHandler(handler)
        handler.close()


def said_when_unwritable(log: Path) -> None:
    """The handlers that write `log` (Hydra's app.log): a write that fails (a full disk) is said once,
    and they write nothing more; the lines still reach the terminal. Each line logged on a full disk was
    a 40-frame `--- Logging error ---` traceback (twentieth hunt, case 10)."""
    from functools import partial

    for _, handler in handlers_of(log):
        handler.handleError = partial(unwritable, handler)


def said_last(line: str, log: Path, error: str | None = None) -> None:
    """The run's last line (its error, `interrupted by ...; resume ...`) on stderr and in its app.log,
    which ended at the last progress line with no word of why or how to resume (thirty-fourth hunt,
    case 52). The file first: where it cannot be written, its warning comes before the line, which stays
    the last one the terminal shows (CI of cb495d6: a full disk's warning came after it)."""
    import logging
    import sys

    record = logging.LogRecord("align_lab", logging.ERROR, __file__, 0, line, None, None)
    for _, handler in handlers_of(log):
        handler.handle(record)
    if error is not None:
        error_in_summary(log.parent, error)
    print(line, file=sys.stderr)


def error_in_summary(run_dir: Path, error: str) -> None:
    """A failed run's summary.json `error` made the line the command said (a file of the user's named as a
    module the run imports: the AttributeError it caused was there; thirty-seventh hunt's nits)."""
    from align_lab.folder import SUMMARY, read_summary
    from align_lab.run.run_folder import RunFolder

    try:
        summary = read_summary(run_dir / SUMMARY)
        if summary.get("status") == "failed":
            RunFolder(run_dir).write_summary(summary | {"error": error})
    except (OSError, ValueError):  # none written yet, or one that cannot be: the line stands alone
        pass


def unwritable(handler, record) -> None:
    import logging
    import sys

    error = sys.exc_info()[1]
    if not isinstance(error, OSError):  # a line that cannot be formatted: logging's own report
        logging.Handler.handleError(handler, record)
        return
    handler.emit = handler.flush = lambda *_: None  # nothing more to a file that cannot be written
    print(
        f"align_lab: warning: cannot write {handler.baseFilename} ({error.strerror}): the run's log lines "
        "reach this terminal only",
        file=sys.stderr,
        flush=True,
    )


def remove_unused_run_dir(run_dir: Path) -> None:
    """A run refused before it started leaves no folder behind: Hydra made it (an empty app.log) and the
    run's lock, and an empty .hydra/; anything else in it (an earlier run's files, a .hydra/ holding files,
    which align_lab writes only once a run is admitted) keeps it, and only those three are removed, never
    a tree (a user's .hydra/ of another app was deleted with the folder before); the folder the command
    runs in (`hydra.run.dir=.`) is never removed."""
    from align_lab.folder import LOCK, holder

    if not run_dir.is_dir() or holder(run_dir) is not None:  # a live run's, just started (refused as in
        return  # use: its run.lock and app.log were removed, before its .hydra/ was written)
    names = {p.name for p in run_dir.iterdir()}
    log, hydra_dir = run_dir / "app.log", run_dir / ".hydra"
    if not names <= {".hydra", "app.log", LOCK}:
        return
    if log.exists() and (not log.is_file() or log.stat().st_size):
        return
    if hydra_dir.exists() and (not hydra_dir.is_dir() or any(hydra_dir.iterdir())):
        return
    let_go_of(log)
    try:
        for name in ("app.log", LOCK):
            (run_dir / name).unlink(missing_ok=True)
        if hydra_dir.exists():
            hydra_dir.rmdir()
        if Path.cwd().resolve().is_relative_to(run_dir.resolve()):
            return  # `hydra.run.dir=.` (or empty): the folder the user is in stays (sixth hunt)
        run_dir.rmdir()
        day = run_dir.absolute().parent  # the default outputs/<date>/<time>_...: the date and outputs/ too
        if day.parent == Path.cwd() / "outputs" and not any(day.iterdir()):
            day.rmdir()
            if not any(day.parent.iterdir()):
                day.parent.rmdir()
    except OSError:  # a file that appeared meanwhile, or a folder we cannot change: it stays
        pass


def recorded_refusal(e: BaseException, spec, run_dir: Path) -> BaseException:
    """A run refused at its start, once its .hydra/ record is written (a sweep's run whose input changed
    since its siblings read it: run/sweep_inputs.py check_afresh; a module of the user's edited since this
    process imported it), says so in its summary.json, where `study status` and compare look
    (thirty-second hunt, case 67, and thirty-third, case 21: a one-process sweep's refused run read
    `pending`, "0 failed", though the sweep had called it failed). Never over a summary already there (an
    earlier segment's); a folder that cannot be written keeps the line the command says. Returns the
    refusal as a ConfigError: one line, without a class's name."""
    from align_lab.folder import SUMMARY
    from align_lab.run.resumable import config_digest
    from align_lab.run.run_folder import RunFolder
    from align_lab.value_checks import ConfigError

    refusal = e if isinstance(e, ConfigError) else ConfigError(str(e))
    if not (run_dir / ".hydra").is_dir() or (run_dir / SUMMARY).exists() or (run_dir / SUMMARY).is_symlink():
        return refusal
    said = {"status": "failed", "algo": spec.names.get("algo"), "seed": spec.seed, "names": spec.names}
    said |= {"config_digest": config_digest(spec.config)}  # align_lab's: a rerun takes the folder
    try:
        RunFolder(run_dir).write_summary(said | {"error": f"refused at its start, before any compute: {e}"})
    except OSError:
        pass
    return refusal
