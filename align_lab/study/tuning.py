"""A tuned study's loop (docs/studies.md, "Tuned studies"), for both align_lab launchers.

With `tune:` in the config, the sweep's jobs are its arms x its seeds. First each arm is tuned by Hydra's
Optuna sweeper (hydra-optuna-sweeper's OptunaSweeperImpl, with optuna's TPE sampler) on `tune.trials`
trials, equal for every arm: its trials run through this study's launcher, one arm's in
<study>/tuning/<arm>/<trial number>, at `tune.seed` and `tuning_split=tune.split` (trained on the
training prompts less a held-out share, evaluated on that share, never on the claims' eval prompts), and
each trial's value is `tune.metric` of its summary.json. Optuna's storage is <study>/tuning/optuna.db
(SQLite, one Optuna study per arm): a rerun of the command finishes an interrupted arm's running trials
in their own folders (from their checkpoints), asks only for the trials its budget still lacks, and
launches none for a finished arm. Then every arm's chosen values run on the sweep's seeds, which the
tuning seed is not among (the winner's curse), as the study's jobs; compare's claims test those.
<study>/tuning.json records every arm's trials and choice (results/tuning.py reads it).
"""

from __future__ import annotations

import contextlib
import copy
import json
import warnings
from pathlib import Path

from omegaconf import OmegaConf, open_dict, read_write

from align_lab.study.tune_spec import Tune, check_tune, split_jobs

TUNING_DIR = "tuning"  # below the study folder; compare does not read runs there (results/runs.py)
STORAGE = "optuna.db"
RECORD = "tuning.json"
DEPRECATED = r".*Distribution has been deprecated in v3\.0\.0"  # the plugin's: removed in optuna 6


def tuned(config) -> bool:
    """The config has a `tune:` (not null)."""
    return OmegaConf.select(config, "tune", default=None) is not None


def storage_url(sweep_dir: Path) -> str:
    return f"sqlite:///{Path(sweep_dir).absolute() / TUNING_DIR / STORAGE}"


def run_tuned(launcher, job_overrides, initial_job_idx: int):
    """Tunes every arm, then launches the sweep's jobs with each arm's chosen values; returns their
    JobReturns."""
    from align_lab.config import ConfigError
    from align_lab.study.waves import planned

    config = launcher.config
    if planned(config):
        raise ConfigError(
            "tune and plan: a tuned study runs a fixed set of seeds; set one of them (plan=null)"
        )
    if not getattr(launcher, "wait", True):
        raise ConfigError(
            "hydra.launcher.wait=false: a tuned study's claims wait for its trials; set it true"
        )
    compare_by = str(config.get("compare_by") or "algo")
    try:
        arms, seeds = split_jobs(job_overrides, compare_by, int(config.seed))
        tune = check_tune(OmegaConf.to_container(config.tune, resolve=True), list(arms), seeds, compare_by)
        for arm, overrides in arms.items():
            with warnings.catch_warnings():  # the plugin's distributions: deprecated in optuna 3
                warnings.filterwarnings("ignore", DEPRECATED, FutureWarning)
                check_space(launcher, arm, tune.space[arm], trial_overrides(tune, overrides))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
    if problem := storage_problem(
        sweep_dir / TUNING_DIR / STORAGE
    ):  # sqlalchemy's 100-149 lines (fifth hunt)
        raise ConfigError(
            f"hydra.sweep.dir={sweep_dir}: {problem}; move it away, or choose another hydra.sweep.dir"
        )
    (sweep_dir / TUNING_DIR).mkdir(parents=True, exist_ok=True)
    chosen = {}
    for arm, overrides in arms.items():
        with warnings.catch_warnings():  # the plugin's distributions: deprecated in optuna 3, removed in 6
            warnings.filterwarnings("ignore", DEPRECATED, FutureWarning)
            chosen[arm] = tune_arm(launcher, tune, arm, trial_overrides(tune, overrides), sweep_dir)
        write_record(sweep_dir, tune, seeds)
    # tune=null: a run's config holds what it ran, so a larger budget that keeps a choice keeps its runs
    jobs = [
        [*o, *(f"{k}={v}" for k, v in chosen[a].items()), f"seed={s}", "tune=null"]
        for a, o in arms.items()
        for s in seeds
    ]
    launcher.in_tuning = True
    try:
        return launcher.launch(jobs, initial_job_idx)
    finally:
        launcher.in_tuning = False


def storage_problem(path: Path) -> str | None:
    """What is wrong with the trials' storage a rerun goes on from (a folder, a named pipe, a file SQLite
    cannot read: torn, or another file's), in words; None: there is none yet, or SQLite reads it whole."""
    import sqlite3

    from align_lab.file_kinds import special

    if not path.exists():
        return None
    if kind := "a folder" if path.is_dir() else special(path):
        return f"{path} is {kind} where a tuned study keeps its trials (an SQLite file)"
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            said = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as e:
        said = str(e)
    return None if said == "ok" else f"{path}: its trials' storage cannot be read ({said})"


def trial_overrides(tune: Tune, overrides: list[str]) -> list[str]:
    """A trial's fixed overrides: its arm's, the tuning seed and split, and no claims (one arm's runs)."""
    return [*overrides, f"seed={tune.seed}", f"tuning_split={tune.split}", "claims=[]", "tune=null"]


def check_space(launcher, arm: str, space: dict[str, str], fixed: list[str]) -> None:
    """Each key of an arm's search space is a Hydra sweep Optuna can sample (interval, choice, range)
    and a key of the arm's config (a job composed at the space's first value), before any trial."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    sample = []
    for key, value in space.items():
        try:
            distributions, _ = create_params_from_overrides([f"{key}={value}"])
        except Exception as e:  # Hydra's override grammar
            raise ValueError(f"tune.space.{arm}.{key}={value}: {str(e).splitlines()[0]}") from None
        if key not in distributions:
            raise ValueError(
                f"tune.space.{arm}.{key}={value}: a fixed value, not a search space; e.g. "
                "tag(log, interval(1e-6, 1e-3)), choice(0.1, 0.2), range(1, 4)"
            )
        d = distributions[key]
        sample.append(f"{key}={d.choices[0] if hasattr(d, 'choices') else d.low}")
    try:
        launcher.hydra_context.config_loader.load_sweep_config(launcher.config, [*fixed, *sample])
    except Exception as e:  # an unknown key or group
        raise ValueError(f"tune.space.{arm}: {' '.join(str(e).split())[:300]}") from None


def arm_launcher(launcher, arm_dir: Path):
    """The study's launcher, set up on a copy of its config whose sweep folder is the arm's."""
    from hydra.core.plugins import Plugins

    config = copy.deepcopy(launcher.config)
    with read_write(config), open_dict(config):
        config.hydra.sweep.dir = str(arm_dir)
        config.hydra.overrides.hydra.append(f"hydra.sweep.dir='{arm_dir}'")
    arm = Plugins.instance().instantiate_launcher(
        hydra_context=launcher.hydra_context, task_function=launcher.task_function, config=config
    )
    arm.in_tuning = True
    return arm


class MetricLauncher:
    """A launcher whose completed jobs return `metric` of their summary.json (Optuna's trial value)."""

    def __init__(self, launcher, metric: str) -> None:
        self.launcher, self.metric = launcher, metric

    def launch(self, job_overrides, initial_job_idx: int):
        from hydra.core.utils import JobStatus

        returns = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        for ret in returns:
            if ret.status == JobStatus.COMPLETED:
                ret.return_value = metric_of(Path(str(ret.hydra_cfg.hydra.runtime.output_dir)), self.metric)
        return returns


def metric_of(run_dir: Path, metric: str) -> float:
    """`metric` of a completed run's summary.json; a one-line error naming what it has instead."""
    from align_lab.config import ConfigError

    summary = json.loads((run_dir / "summary.json").read_text())
    if not isinstance(summary.get(metric), int | float):
        has = ", ".join(k for k in summary if k.startswith("eval/"))
        raise ConfigError(f"tune.metric={metric}: run {run_dir} has no such number; it has {has}")
    return float(summary[metric])


def tune_arm(launcher, tune: Tune, arm: str, fixed: list[str], sweep_dir: Path) -> dict:
    """One arm's Optuna study, resumed from its storage; returns the best trial's params."""
    import optuna
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

    arm_dir = sweep_dir / TUNING_DIR / arm
    arm_dir.mkdir(parents=True, exist_ok=True)
    trials = MetricLauncher(arm_launcher(launcher, arm_dir), tune.metric)
    storage = storage_url(sweep_dir)
    study = optuna.create_study(
        study_name=arm, storage=storage, direction=tune.direction, load_if_exists=True
    )
    # seeded by the trials so far too: a resumed arm does not draw its first trials' values again
    sampler = optuna.samplers.TPESampler(seed=tune.sampler_seed + len(study.trials))
    finish_running(study, trials, fixed)
    left = trials_left(study, tune.trials[arm])
    if left > 0:
        space = OmegaConf.create(tune.space[arm])
        sweeper = OptunaSweeper(
            sampler, tune.direction, storage, arm, left, tune.parallel, 0.0, None, None, space
        )
        impl = (
            sweeper.sweeper
        )  # set up by hand: its launcher is the arm's, its first job number the next trial's
        impl.config, impl.hydra_context, impl.sweep_dir = (
            trials.launcher.config,
            launcher.hydra_context,
            str(arm_dir),
        )
        impl.launcher, impl.job_idx = trials, len(study.trials)
        impl.sweep(fixed)
    return dict(optuna.load_study(study_name=arm, storage=storage).best_trial.params)


def trials_left(study, budget: int) -> int:
    """Trials the arm's budget still lacks: completed ones count, failed ones do not."""
    import optuna

    return budget - len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def finish_running(study, trials: MetricLauncher, fixed: list[str]) -> None:
    """Trials an interrupted command left running: each launched again in its own folder (the run
    resumes from its checkpoint, or reports its completed summary) and told its value."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        overrides = [*(f"{k}={v}" for k, v in trial.params.items()), *fixed]
        ret = trials.launch([overrides], initial_job_idx=trial.number)[0]
        study.tell(trial.number, values=float(ret.return_value))


def record(storage: str, tune: Tune, seeds: list[int]) -> dict:
    """tuning.json: the tuning's settings and, per arm tuned so far, its trials and its choice."""
    import optuna

    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    arms = {}
    for arm in [a for a in tune.arms if a in names]:
        study = optuna.load_study(study_name=arm, storage=storage)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        best = study.best_trial if done else None
        arms[arm] = {
            "budget": tune.trials[arm],
            "space": tune.space[arm],
            "trials": [
                {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
                for t in study.trials
            ],
            "chosen": None
            if best is None
            else {"number": best.number, "value": best.value, "params": best.params},
        }
    settings = {
        k: getattr(tune, k) for k in ("seed", "split", "metric", "direction", "sampler_seed", "parallel")
    }
    return {"tune": settings, "claim_seeds": seeds, "storage": storage, "arms": arms}


def write_record(sweep_dir: Path, tune: Tune, seeds: list[int]) -> None:
    path = sweep_dir / RECORD
    path.write_text(json.dumps(record(storage_url(sweep_dir), tune, seeds), indent=1) + "\n")
