"""Every saved study in sweeps/ composes as `python -m align_lab --config-dir sweeps --config-name <name>`
does, every arm of it builds and passes the run checks the launcher makes before any compute, and its
claims parse and name only the values its `compare_by` key takes."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from align_lab.results.claims import parse_claims
from align_lab.run.admission import spec_from_config
from align_lab.run.cross_checks import check_run
from tests.conftest import FULL, ROOT

SWEEPS = sorted(p.stem for p in (ROOT / "sweeps").glob("*.yaml"))
# a study's teacher trained by a run of its own, first (its docs' first command): folder -> config name
TEACHER_RUNS = {"multirun/rl_teacher_smollm2": "teachers/rl_teacher_smollm2"}


@contextmanager
def sweep_loader() -> Iterator:
    """Hydra's config loader with the search path `python -m align_lab --config-dir sweeps` has: conf/ as
    the app's primary config dir, sweeps/ prepended before the schema provider (hydra._internal.utils
    .run_hydra's add_conf_dir, hydra-core 1.3)."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    search_path = create_config_search_path(str(ROOT / "conf"))
    search_path.prepend(
        provider="command-line", path=f"file://{ROOT / 'sweeps'}", anchor=SearchPathQuery(provider="schema")
    )
    backup = get_gh_backup()
    try:
        GlobalHydra.instance().clear()
        Hydra.create_main_hydra2(task_name="align_lab", config_search_path=search_path)
        yield GlobalHydra.instance().config_loader()
    finally:
        restore_gh_from_backup(backup)


def sweep_axes(master: DictConfig) -> dict[str, list[str]]:
    """Each sweeper param's values, parsed as Hydra's basic sweeper parses them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = master.hydra.sweeper.params or {}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return {o.get_key_element(): list(o.sweep_string_iterator()) for o in parsed}


def jobs(axes: dict[str, list[str]]) -> list[list[str]]:
    """The sweep's jobs with one seed: every value of every other param (config group choices such as
    algo or arm, the compare_by key, and any plain key), crossed as the sweeper crosses them."""
    kept = [[f"{k}={v}" for v in (vs[:1] if k.split(".")[-1] == "seed" else vs)] for k, vs in axes.items()]
    return [list(job) for job in itertools.product(*kept)]


def job_spec(loader, master: DictConfig, overrides: list[str]):
    """A job's RunSpec, composed and built as the launcher's plan_run does before any job starts."""
    cfg = loader.load_sweep_config(master, overrides)
    names = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    job_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    return spec_from_config(job_cfg, names, list(cfg.hydra.overrides.task)), cfg


def stand_in_teacher_runs(loader, where: Path) -> None:
    """The teacher runs a study reads (TEACHER_RUNS), as their commands leave them, in `where` (the jobs'
    working directory): the resolved config the teacher's config composes to, a completed summary.json and
    a readable final checkpoint (a teacher is a finished run: run/teacher.py), so the teacher check the
    launcher makes compares that command's model and task with each arm's."""
    import json

    import torch
    import yaml
    from hydra.types import RunMode

    from align_lab.run.run_folder import RESOLVED_CONFIG

    for folder, name in TEACHER_RUNS.items():
        cfg = loader.load_configuration(name, overrides=[], run_mode=RunMode.RUN)
        names = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
        spec = spec_from_config(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), names, [])
        assert cfg.hydra.run.dir == folder, f"sweeps/{name}.yaml writes {cfg.hydra.run.dir}, not {folder}"
        run = where / folder
        (run / "checkpoints").mkdir(parents=True)
        torch.save({"step": 40}, run / "checkpoints" / "state-00000040.pt")
        (run / "checkpoints" / "last").write_text("state-00000040.pt")
        (run / "summary.json").write_text(json.dumps({"status": "completed", "config_digest": "stand-in"}))
        (run / RESOLVED_CONFIG).write_text(yaml.safe_dump(spec.config, sort_keys=False))


def uses_real_model(master: DictConfig) -> bool:
    """A GGUF model (model=smollm2_135m) needs an installed package, and its tokenizer a dequantized copy."""
    return bool(master.model.get("gguf_file"))


@pytest.mark.parametrize("name", SWEEPS)
def test_saved_sweep_composes_builds_every_arm_and_its_claims_name_its_arms(name, tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGN_LAB_CACHE", str(tmp_path / "cache"))  # cache_dir: null reads it
    real_model = []
    with sweep_loader() as loader:
        from hydra.types import RunMode

        master = loader.load_configuration(name, overrides=[], run_mode=RunMode.MULTIRUN)
        assert master.hydra.mode == RunMode.MULTIRUN, f"sweeps/{name}.yaml: set hydra.mode: MULTIRUN"
        axes = sweep_axes(master)
        planned = master.get("plan") is not None  # a sequential study: its plan chooses the seeds
        assert planned != ("seed" in axes), f"sweeps/{name}.yaml: sweeps no seeds (a seed axis or a plan)"
        if uses_real_model(master):
            # Stand-ins for the two steps that need the real model: its package's file (HFModel locates
            # it when built) and its tokenizer (check_task dequantizes the 135M model into the cache,
            # ~30 s). test_saved_sweeps_on_the_real_model_pass_the_tokenizer_check does both for real.
            from align_lab.models.hf import HFModel

            monkeypatch.setattr("align_lab.models.gguf.locate", lambda spec, key="": Path(spec))
            monkeypatch.setattr(HFModel, "check_task", lambda self, task: real_model.append(task))
            stand_in_teacher_runs(loader, tmp_path)
            monkeypatch.chdir(tmp_path)
        for overrides in jobs(axes):
            spec, cfg = job_spec(loader, master, overrides)
            check_run(spec, here=False)
            for override in overrides:  # each swept value reached the run: not shadowed by the file
                key, value = override.split("=", 1)
                got = cfg.hydra.runtime.choices.get(key, OmegaConf.select(cfg, key))
                assert str(got) == value, f"sweeps/{name}.yaml: job {overrides} has {key}={got}"
    assert len(real_model) == (len(jobs(axes)) if uses_real_model(master) else 0)

    by = str(master.compare_by)
    claims = parse_claims(master.claims)  # a malformed claim is a ValueError naming it
    if claims:
        assert by in axes, f"sweeps/{name}.yaml: compare_by={by} is not a sweeper param ({', '.join(axes)})"
    for claim in claims:
        for group in (claim.a, claim.b):
            assert group in axes[by], (
                f"sweeps/{name}.yaml: claim '{claim}' names {by}={group}, which the sweep never runs "
                f"({by}: {', '.join(axes[by])})"
            )
        assert "/" in claim.metric, f"sweeps/{name}.yaml: claim '{claim}': metrics are group/name"


def state(obj) -> tuple:
    """What `obj` is made of: its type and every dataclass field (else every attribute), as text. Two
    objects with the same state check alike; an attribute without a value repr (an address) never
    matches another object's, so at worst the same check runs twice."""
    if dataclasses.is_dataclass(obj):
        items = [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    else:
        items = sorted(vars(obj).items())
    return type(obj).__qualname__, repr(items)


@FULL
def test_saved_sweeps_on_the_real_model_pass_the_tokenizer_check(smollm2, cache_dir, tmp_path, monkeypatch):
    """The steps the test above stands in for, for real: every job of a study on SmolLM2 builds with the
    installed GGUF file, and every prompt fits its tokenizer's limits (the model is dequantized once into
    the session's stage cache). The tokenizer check (HFModel.check_task: load the tokenizer, render and
    count every prompt) runs once per distinct (model, task): the jobs of a study mostly differ in algo
    or seed only, and the check reads neither."""
    from align_lab.models.hf import HFModel

    monkeypatch.setenv("ALIGN_LAB_CACHE", str(cache_dir))
    real_check, seen = HFModel.check_task, {}

    def check_once(self, task) -> None:
        key = (state(self), state(task))
        if key not in seen:
            real_check(self, task)
        seen[key] = seen.get(key, 0) + 1

    monkeypatch.setattr(HFModel, "check_task", check_once)
    checked = []
    with sweep_loader() as loader:
        from hydra.types import RunMode

        stand_in_teacher_runs(loader, tmp_path)
        monkeypatch.chdir(tmp_path)

        for name in SWEEPS:
            master = loader.load_configuration(name, overrides=[], run_mode=RunMode.MULTIRUN)
            if not uses_real_model(master):
                continue
            for overrides in jobs(sweep_axes(master)):
                spec, _ = job_spec(loader, master, overrides)
                check_run(spec, here=False)
                checked.append((name, *overrides))
    assert any(name == "real_arith" for name, *_ in checked), checked
    assert sum(seen.values()) == len(checked)  # every job reached the check
