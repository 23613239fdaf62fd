"""Weights & Biases: the same metrics as metrics.jsonl, one W&B run per run folder, and each
evaluation's samples as a table (`eval/samples`)."""

from __future__ import annotations

import contextlib
import logging
import netrc
import os
import secrets
import string
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from align_lab.tracking.jsonl import to_numbers
from align_lab.tracking.wandb_reader import wait_until_complete
from align_lab.value_checks import ConfigError

log = logging.getLogger(__name__)
RUN_ID_FILE = "wandb_run_id.txt"
MODES = ("auto", "online", "offline", "disabled")
DEFAULT_BASE_URL = "https://api.wandb.ai"
SAMPLES_KEY = "eval/samples"  # the completions table of each evaluation
CORE_LOG = "wandb-core.log"  # wandb's service process's own lines, under the run folder's wandb/


def has_wandb_credentials(env: Mapping[str, str]) -> bool:
    """Whether the user configured W&B: WANDB_API_KEY, or a netrc entry for the W&B host.

    The netrc is $NETRC or $HOME/.netrc, the host that of WANDB_BASE_URL (api.wandb.ai).
    """
    if env.get("WANDB_API_KEY"):
        return True
    host = urlsplit(env.get("WANDB_BASE_URL") or DEFAULT_BASE_URL).netloc
    if "NETRC" in env:
        path = Path(env["NETRC"])
    elif "HOME" in env:
        path = Path(env["HOME"]) / ".netrc"
    else:
        return False
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def choose_mode(mode: str, env: Mapping[str, str]) -> str:
    """The wandb.init mode: an explicit one as given; "auto" defers to $WANDB_MODE, else
    "online" when credentials are configured, else "offline"."""
    if mode not in MODES:
        raise ValueError(f"W&B mode {mode!r}: allowed values are {', '.join(MODES)}")
    if mode != "auto":
        return mode
    if env.get("WANDB_MODE"):  # wandb's own: `bogus` was pydantic's 61 lines after the stages (2026-12-04)
        if env["WANDB_MODE"] not in (*MODES[1:], "dryrun", "run", "shared"):
            raise ConfigError(
                f"WANDB_MODE={env['WANDB_MODE']}: must be online, offline or disabled, or unset"
            )
        return env["WANDB_MODE"]
    return "online" if has_wandb_credentials(env) else "offline"


def load_or_create_run_id(run_dir: Path) -> str:
    """The W&B run id persisted in run_dir, so that a resumed run continues the same W&B run."""
    path = run_dir / RUN_ID_FILE
    if path.exists():
        run_id = path.read_text(encoding="utf-8").strip()
        if run_id:
            return run_id
    # wandb's own id shape (8 base-36 characters); wandb.util.generate_id is gone in 0.31.
    alphabet = string.ascii_lowercase + string.digits
    run_id = "".join(secrets.choice(alphabet) for _ in range(8))
    path.write_text(run_id + "\n", encoding="utf-8")
    return run_id


def service_started(log_file: Path) -> None:
    """wandb's service process started (where this process has none) with its stderr on `log_file`:
    wandb-core logs to the terminal where it cannot make its own log file (HOME unset, W&B's folders
    unwritable: 19 lines of its INFO and ERROR around the run's, hunt of 2026-12-04, c27, c32); the file
    is removed at close where nothing reached it."""
    import wandb

    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:  # a folder it cannot write to: wandb.init says so in its own line
        wandb.setup()
        return
    try:
        saved = os.dup(2)
    except OSError:  # stderr closed (2>&-): as it is
        os.close(fd)
        wandb.setup()
        return
    try:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()
        os.dup2(fd, 2)
        wandb.setup()  # the service inherits fd 2 as it starts; none is started where one runs
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


class WandbTracker:
    """One W&B run, written to run_dir/wandb/ (offline-run-*/run-<id>.wandb when offline)."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        project: str,
        group: str | None,
        job_type: str | None,
        tags: Sequence[str],
        config: Mapping[str, Any],
        mode: str = "auto",
        name: str | None = None,
    ) -> None:
        import wandb

        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_id = load_or_create_run_id(run_dir)
        self.mode = choose_mode(mode, os.environ)
        self.core_log = run_dir / "wandb" / CORE_LOG
        init = {"dir": str(run_dir), "project": project, "group": group, "job_type": job_type}
        init |= {"tags": list(tags), "config": dict(config), "name": name, "id": self.run_id}
        try:
            self._run = self._started(init)
        except wandb.errors.Error as e:  # no key, no network: wandb's 61-line traceback (hunt of 2026-12-04)
            said = " ".join(str(e).split())
            if mode != "auto" or os.environ.get("WANDB_MODE"):  # online asked for: its one line
                raise ConfigError(
                    f"tracker=wandb: W&B could not start the {self.mode} run ({said}); `wandb login` or the "
                    "network, or WANDB_MODE=offline (`wandb sync` uploads it later)"
                ) from None
            log.warning(  # auto, with credentials, and no network: offline, said
                f"W&B could not start an online run ({said[:200]}): this run logs offline to "
                f"{run_dir}/wandb; `wandb sync` uploads it later (WANDB_MODE=offline skips the attempt)"
            )
            self.mode = "offline"
            wandb.teardown()  # the service still holds the online attempt: "run ID ... is in use"
            self._run = self._started(init)
        if not _REAL_INIT:  # the user's code's own wandb.init, a run of its own (users_init)
            _REAL_INIT.append(wandb.init)
            wandb.init = users_init
        # run_dir/wandb/{offline-run,run}-<time>-<id>/run-<id>.wandb; none when disabled.
        self.sync_file = None if self.mode == "disabled" else Path(self._run.settings.sync_file)
        self._closed = False

    def _started(self, init: dict):
        """wandb.init in self.mode, resuming run_id: silent, no console capture, no system metrics."""
        import wandb

        if self.mode != "disabled":
            service_started(Path(init["dir"]) / "wandb" / CORE_LOG)
        if self.mode == "online":  # up to wandb's init_timeout (90 s) where the network does not answer
            log.info("W&B: starting the online run (WANDB_MODE=offline skips it)")
        # wandb reads WANDB_INIT_TIMEOUT as it first sets up in a process: an in-process sweep's later runs
        timeout = (
            {"init_timeout": float(os.environ["WANDB_INIT_TIMEOUT"])}
            if "WANDB_INIT_TIMEOUT" in os.environ
            else {}
        )
        return wandb.init(
            **init,
            mode=self.mode,
            resume="allow",
            reinit="create_new",  # never hand back (or finish) another run that is active in this process
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True, **timeout),
        )

    def log(self, metrics: Mapping[str, object], step: int) -> None:
        self._run.log(to_numbers(metrics), step=step)

    def samples(self, records: list[dict], step: int) -> None:
        """The evaluation's records as a wandb.Table under eval/samples (one row a sample; columns
        step and the record's fields), at the evaluation's step."""
        import wandb

        if not records:
            return
        columns = ["step", *dict.fromkeys(k for r in records for k in r)]  # every field, first-seen order
        rows = [[step, *(r.get(c) for c in columns[1:])] for r in records]
        self._run.log(
            {SAMPLES_KEY: wandb.Table(columns=columns, data=rows, allow_mixed_types=True)}, step=step
        )

    def summary(self, values: Mapping[str, Any]) -> None:
        self._run.summary.update(dict(values))

    def close(self) -> None:
        """Finishes the run and waits until its .wandb file is complete on disk."""
        if self._closed:
            return
        self._closed = True
        self._run.finish()
        with contextlib.suppress(OSError):
            if self.core_log.stat().st_size == 0:  # the service said nothing of its own
                self.core_log.unlink()
        if _REAL_INIT:
            import wandb

            wandb.init = _REAL_INIT.pop()
        if self.sync_file is not None and self.sync_file.exists():
            if not wait_until_complete(self.sync_file):
                warnings.warn(f"{self.sync_file}: wandb did not finish writing it", stacklevel=2)


_REAL_INIT: list = []  # wandb.init as wandb made it, while a run of align_lab's stands (users_init)


def users_init(*args, **kwargs):
    """wandb.init as the user's code calls it while align_lab's run is active (a reward that logs its own
    metrics): wandb handed back align_lab's run ("returning the previous run"), whose `log` from the user's
    code went into the run's own and whose `finish` ended it, and the module's `wandb.log` failed "call
    wandb.init() first" (thirty-third hunt, case 79). Now a run of the user's own, made wandb's global one,
    as with no run of align_lab's about; a `reinit` the code asks for, or a global run already made, as
    wandb has it."""
    import wandb

    real = _REAL_INIT[0] if _REAL_INIT else wandb.init
    asked = getattr(kwargs.get("settings"), "reinit", None) not in (None, "default")
    if kwargs.get("reinit") is not None or asked or wandb.run is not None:
        return real(*args, **kwargs)
    run = real(*args, **{**kwargs, "reinit": "create_new"})
    made_global = getattr(getattr(wandb.sdk, "wandb_init", None), "_set_global_run", None)
    if made_global is not None:  # wandb's own step for a run that is not create_new
        made_global(run)
    return run
