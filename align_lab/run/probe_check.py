"""A resume asks the user's scoring code again what it gave on the rows it scored last before the
checkpoint (user_probes.py): other scores now mean something it reads changed, however it reads it (a
file read in C, a path built from pieces, a variable a library reads, a server). Refused in one line like
a changed input file (run/inputs.py check_inputs), unless resume_changed_inputs=true; a scorer
that gives two answers to the same rows in a row cannot be checked so, and is said to be."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from align_lab.config import ConfigError
from align_lab.folder import PROBES_FILE
from align_lab.train.preemption import Interrupted
from align_lab.user_probes import address, asked_again, same, shown
from align_lab.value_checks import one_line

log = logging.getLogger("align_lab")
SLOW_S = 3.0  # a scorer asked again for longer is said to be
ASKED = "for what it gave the rows it scored last before the checkpoint (whether what it reads changed) ..."


def check_probes(saved: dict | None, ckpt: Path, allow: bool = False, named: tuple = ()) -> dict:
    """{`scores <key>`: (then, now)} of each scorer whose scores of its saved rows changed, where
    `allow`; else the first refused in one line. None saved (a checkpoint of before probes): nothing.
    `named`: the keys of inputs already said changed, whose scorer's moved scores are that change's (52nd
    hunt, case 8: the line sent the user to look for a second change, a file, a variable, a server)."""
    changed = {}
    for key, probe in (saved or {}).items():
        now = _ask(key, probe, ckpt)
        if now is None and not allow:
            check_moved(key, probe, ckpt)
        if now is None or same(now, probe["scores"]):
            continue
        if not same(_ask(key, probe, ckpt) or [], now):  # a scorer of its own randomness
            log.warning(
                f"align_lab: warning: {key} gave other answers to the same rows twice in a row, so a "
                "resume cannot tell whether what it reads changed since the checkpoint in "
                f"{ckpt} was written; and what moves its answers (a generator, a counter of its own) is not "
                "in the checkpoint, so this resumed run may differ from an uninterrupted one "
                "(docs/reproducibility.md)"
            )
            continue
        asked = probe.get("said", "scores the responses it scored last")  # an environment's: its turns
        if allow and key.partition("=")[0] in named:
            log.warning(
                f"align_lab: warning: resuming with {key}, which {asked} otherwise now "
                f"({shown(probe['scores'])} then, {shown(now)} now), as its change said above does: "
                "resume_changed_inputs=true"
            )
            changed[f"scores {key}"] = ({"scores": shown(probe["scores"])}, {"scores": shown(now)})
            continue
        what = (
            f"{key} {asked} before the checkpoint in {ckpt} otherwise now "
            f"({shown(probe['scores'])} then, {shown(now)} now): something it reads (a file, a variable, a "
            "server) changed since, or it depends on its process (what it keeps in memory, a calibration on "
            "its first call; Python's hash() of a text, salted per process)"
        )
        if not allow:
            raise ConfigError(
                f"resume_changed_inputs=false: {what}; a resume would train one run on two rewards: put it "
                "back as it was, set resume_changed_inputs=true to resume anyway, or choose another "
                "hydra.run.dir"
            )
        log.warning(f"align_lab: warning: resuming with {what}: resume_changed_inputs=true")
        changed[f"scores {key}"] = ({"scores": shown(probe["scores"])}, {"scores": shown(now)})
    return changed


def check_moved(key: str, probe: dict, ckpt: Path) -> None:
    """A scorer asked at another address than before the checkpoint (a judge moved: reward.url may change
    on resume because what answers there is asked) that gave no answer is refused: an unanswered probe
    would let any judge in (fifteenth hunt: a warming-up 10x judge trained the rest of the run)."""
    was, now = probe.get("at"), address(key)
    if was is not None and now is not None and was != now:
        raise ConfigError(
            f"resume_changed_inputs=false: {key}={now}: the judge moved from {was} since the checkpoint in "
            f"{ckpt} and did not answer the rows it scored last (the warning above says why), so whether it "
            "scores as the old one did is unknown: rerun once it answers (or give it longer: "
            "reward.timeout_s, reward.retries), set resume_changed_inputs=true to resume on it anyway, or "
            "choose another hydra.run.dir"
        )


def _ask(key: str, probe: dict, ckpt: Path) -> list | None:
    """The scorer's scores of the saved rows now; None where it is not loaded, or raised (said). One
    that takes a while is said while it does (thirteenth hunt: a slow judge's resume seemed hung)."""
    slow = threading.Timer(SLOW_S, lambda: log.info(f"align_lab: resume: asking {key} again {ASKED}"))
    slow.daemon = True
    slow.start()
    here = os.getcwd()  # a scorer that changes folder must not move the run's relative paths (13th hunt)
    try:
        return asked_again(key, probe)
    except (KeyboardInterrupt, Interrupted):  # Ctrl-C, SIGTERM: the entrance's one line (app.py)
        raise
    except BaseException as e:  # the user's code: a flaky server, a file gone, sys.exit, CancelledError
        log.warning(
            f"align_lab: warning: {key} raised {one_line(e)} when asked again for the scores it gave before "
            f"the checkpoint in {ckpt}, so whether what it reads changed is not checked"
        )
        return None
    finally:
        slow.cancel()
        os.chdir(here)


SCORERS = ("reward", "task", "env")  # the config groups a scorer's answers depend on


def check_sibling_probes(spec, sibling: Path, allow: bool) -> str | None:
    """A run starting afresh beside a run of its sweep that trained (run/sweep_inputs.py check_afresh), of
    the same scorers' settings: the scorers asked again for what they gave that run's last rows. Other
    scores mean something they read changed between the sweep's runs, however they read it (thirty-first
    hunt, case 37: a parquet file read in C, edited as #1 started: #1 trained on the opposite reward, no
    line). Refused in one line; with `allow` the warning line returned; None where the same or unknown."""
    import yaml

    from align_lab.run.run_folder import RESOLVED_CONFIG

    try:
        saved = json.loads((sibling / PROBES_FILE).read_text())
        theirs = yaml.safe_load((sibling / RESOLVED_CONFIG).read_text()) or {}
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(saved, dict) or any(theirs.get(g) != spec.config.get(g) for g in SCORERS):
        return None  # a run of other scorers' settings scores otherwise by design
    for key, probe in saved.items():
        now = _ask(key, probe, sibling)
        if now is None or same(now, probe["scores"]) or not same(_ask(key, probe, sibling) or [], now):
            continue  # unknown here, the same, or a scorer of its own randomness (said on resume)
        line = (
            f"{key} {probe.get('said', 'scores the responses it scored last')} in {sibling} otherwise now "
            f"({shown(probe['scores'])} then, {shown(now)} now): something it reads (a file, a variable, a "
            "server) changed since that run of the sweep, or it depends on its process (what it keeps in "
            "memory, a calibration on its first call)"
        )
        if allow:
            return f"{line}; this run trains on it as it is now (resume_changed_inputs=true)"
        raise ConfigError(
            f"{line}: this run would train on another reward than theirs; put it back as it was, start "
            "another sweep (another hydra.sweep.dir), or set resume_changed_inputs=true to run it as it is "
            "now"
        )
    return None
