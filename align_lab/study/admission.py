"""A sweep's admission: every job of a sweep composed as its launcher will and admitted (one job's checks:
run/admission.py), then the sweep's claims checked against its jobs, before the first job runs; a refused
sweep leaves its folder as it was (SweepFolder: the record of its multirun.yaml, taken by the launcher
before Hydra rewrites it); and each job's entry in the study manifest."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from align_lab.config import ConfigError
from align_lab.run.admission import admit
from align_lab.run.run_folder import run_above


def admit_job(hydra_context, config: DictConfig, overrides: list[str], num: int, here: bool):
    """Job `num` of a sweep: its config composed as its launcher will (load_sweep_config), admitted."""
    cfg, run_dir = compose_job(hydra_context, config, overrides, num)
    job_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    return admit(job_cfg, cfg.hydra, run_dir, here)


def compose_job(hydra_context, config: DictConfig, overrides: list[str], num: int) -> tuple[DictConfig, Path]:
    """(job `num`'s full config as its launcher composes it, its run folder); nothing checked."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    cfg = hydra_context.config_loader.load_sweep_config(config, overrides)
    with open_dict(cfg.hydra.job):
        cfg.hydra.job.num = num
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:  # the run folder's name may read ${hydra:...}
        return cfg, Path(str(cfg.hydra.sweep.dir)).absolute() / str(cfg.hydra.sweep.subdir)
    finally:
        HydraConfig.instance().cfg = previous


def admit_sweep(hydra_context, config, job_overrides, first: int, here: bool, folder: SweepFolder) -> list:
    """Every job of a sweep admitted, then its claims checked against its jobs, before any job runs;
    returns [(num, overrides, Job)]. On the first refusal or an interruption the sweep folder is put
    back as it was."""
    from align_lab.results.planned_claims import check_planned_claims, planned_job

    folder.launched()
    try:
        if line := run_above(folder.sweep_dir, "hydra.sweep.dir") or running_there(folder.sweep_dir):
            raise ConfigError(line)
        if not job_overrides and first == 0:  # seed=range(0,0): "Launching 0 jobs", exit 0, nothing run
            task = list(config.hydra.overrides.task)  # a glob selects a group's choices: none of a key's
            swept = [o for o in task if "glob(" in o] or [  # (`seed=1,2 'seed=glob(*)'`: 42nd hunt, 32)
                o for o in task if "range(" in o or "," in o.split("=", 1)[-1]
            ]
            raise ConfigError(
                f"{' '.join(swept) or 'the sweep'}: sweeps no value, so the sweep has no job; give each "
                "swept key at least one value (seed=range(0,3) is 0, 1, 2)"
            )
        jobs = []
        for i, overrides in enumerate(job_overrides):
            try:
                job = admit_job(hydra_context, config, list(overrides), first + i, here)
            except ConfigError as e:  # a sweep's folder is hydra.sweep.dir (twentieth hunt, case 23)
                said = str(e).replace("choose another hydra.run.dir", "choose another hydra.sweep.dir")
                said = said.replace("hydra.run.dir=", "the run folder ")
                raise ConfigError(said) from None
            jobs.append((first + i, list(overrides), job))
        planned = [
            planned_job(j.spec.config, j.spec.names, o, j.spec.task, j.spec.train.eval_samples)
            for _, o, j in jobs
        ]
        try:
            check_planned_claims(planned)  # every arm and metric a claim names exists, before any run
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return jobs
    except BaseException:  # a refusal, and a SIGTERM or Ctrl-C while the jobs are admitted
        folder.restore()
        raise


def running_there(sweep_dir: Path) -> str | None:
    """The line for a sweep into a folder where a run of a sweep is running (a process holds its folder):
    its multirun.yaml rewritten, the first sweep's resume commands were the second's, which found its runs
    "already completed" and left the interrupted one as it was (forty-second hunt, case 24). None
    otherwise."""
    from align_lab.folder import holder

    if not sweep_dir.is_dir():
        return None
    for run_dir in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()):
        if (who := holder(run_dir)) is not None:
            return (
                f"hydra.sweep.dir={sweep_dir}: a sweep there is running (its run {run_dir.name} in use by "
                f"{who}); wait for it to end, or choose another hydra.sweep.dir"
            )
    return None


def misplaced(sweep_dir: Path) -> str | None:
    """Where what a sweep keeps in its folder is of another kind (a folder where it writes a file, a file
    where it keeps a folder, a named pipe), what is there, in words; None: nothing is. Hydra's write of
    multirun.yaml was a traceback, study.json's one after the jobs were submitted, and a file at .slots
    failed every local run with a job log's FileExistsError (fourth hunt of 2026-12-04, re_B2, re_B9)."""
    from align_lab.file_kinds import special
    from align_lab.results.manifest import MANIFEST
    from align_lab.results.plan_record import PLAN_FILE

    files = {"multirun.yaml": "Hydra writes the sweep's record", MANIFEST: "align_lab writes the study's"}
    files |= {
        PLAN_FILE: "a sequential study writes its plan",
        "tuning.json": "a tuned study writes its record",
    }
    for name, what in files.items():
        path = sweep_dir / name
        if kind := "a folder" if path.is_dir() else special(path):
            return f"{path} is {kind} where {what}"
    folders = {".submitit": "submitit keeps the jobs' files", ".slots": "a local sweep keeps its slots"}
    for name, what in (folders | {"tuning": "a tuned study keeps its trials"}).items():
        path = sweep_dir / name
        if (path.exists() or path.is_symlink()) and not path.is_dir():
            kind = special(path) or ("a file" if path.exists() else "a link to nothing")
            return f"{path} is {kind} where {what} (a folder)"
    return None


class SweepFolder:
    """The record of a sweep folder as it was before this sweep: taken by the launcher's setup(), which
    Hydra's sweeper calls before it writes <sweep dir>/multirun.yaml. restore() puts it back for a refused
    sweep: an earlier sweep's multirun.yaml as it was; a folder made for this sweep alone removed."""

    UNLAUNCHED: list[SweepFolder] = []  # taken, and the sweep not yet launched (refused_before_launch)

    def __init__(self, config: DictConfig) -> None:
        from align_lab.run.folder_checks import too_long

        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        if line := too_long(self.sweep_dir, "hydra.sweep.dir"):  # before any read (hunt of 2026-12-04)
            raise ConfigError(line)
        if line := misplaced(self.sweep_dir):  # Hydra's write of multirun.yaml: 30 lines (2026-12-04)
            raise ConfigError(
                f"hydra.sweep.dir={self.sweep_dir}: {line}; move it away, or choose another hydra.sweep.dir"
            )
        path = self.sweep_dir / "multirun.yaml"
        self.multirun_yaml = path.read_bytes() if path.is_file() else None
        self.existed = self.sweep_dir.exists()
        SweepFolder.UNLAUNCHED.append(self)

    def launched(self) -> None:
        """From here the launcher puts the folder back itself, on its refusals."""
        if self in SweepFolder.UNLAUNCHED:
            SweepFolder.UNLAUNCHED.remove(self)

    def restore(self) -> None:
        path = self.sweep_dir / "multirun.yaml"
        if self.multirun_yaml is not None:
            try:  # in place: this sweep's frees its room first, on a full disk too
                path.write_bytes(self.multirun_yaml)
            except OSError:
                pass  # the refusal's own line says what could not be written
            return
        path.unlink(missing_ok=True)  # this sweep's, in a folder of the user's files too (sixth hunt)
        if self.existed or not self.sweep_dir.is_dir() or any(self.sweep_dir.iterdir()):
            return  # a folder that was there before (`hydra.sweep.dir=.`, or empty) stays
        for folder in [self.sweep_dir, *list(self.sweep_dir.parents)[:2]]:  # multirun/<date>/, multirun/
            try:
                if folder == Path.cwd():
                    break
                folder.rmdir()
            except OSError:
                break


def refused_before_launch() -> None:
    """A sweep stopped between its folder's record and its launch (Hydra's sweeper writing multirun.yaml
    on a full disk: twenty-third hunt, case 24, a truncated file left): its folder put back."""
    for folder in list(SweepFolder.UNLAUNCHED):
        folder.launched()
        try:
            folder.restore()
        except OSError:  # a sweep folder that is a file, or unreadable: the refusal's line says it
            pass
