"""The entrance (align_lab/run/admission.py, issue 37): every job is admitted once, before anything is written
or built, whatever form its overrides take. Each fault a user met there, tried as a user would, ends in
one line naming the key or file, with nothing lost (docs/faults.md)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, SMALL, compose, full_but, run_cli
from tests.integration.test_faults import _inject as _inject_code
from tests.integration.test_faults import one_line_error
from tests.integration.test_run_folder import metric_lines, start, wait_for


def _inject(tmp_path, code: str) -> dict:
    """test_faults' injection, with this checkout first on the path (not an installed copy's)."""
    env = _inject_code(tmp_path, code)
    return {"PYTHONPATH": f"{env['PYTHONPATH']}{os.pathsep}{ROOT}"}


# ---------------------------------------------------------------- every override form reaches the checks
OVERRIDE_FORMS = [
    # ~train.steps trained the built-in 150 steps unseen, its resolved config without `steps`
    (["~train.steps"], "~train.steps: deleting a setting of train runs the code's default unseen"),
    (["~algo"], "~algo: every run needs algo; set another value (algo=...) instead"),  # was 156 lines
    # a new top-level key was accepted and ignored (under train. it was refused)
    (["+new_key=1"], "new_key: unknown key (nothing reads it); the top-level keys are "),
    (["++new_key=1"], "new_key: unknown key (nothing reads it)"),
    # fourth hunt of 2026-12-04, pl0: "claims: unknown key (nothing reads it); the top-level keys are ..."
    (["+claims=[]"], "+claims: claims is a key of the config already; set it without the +"),
    (["+stages.foo=1"], "stages.foo: unknown key; allowed: stages.seed"),
    (["++train.steps=0"], "train.steps=0: must be >= 1"),  # ++ on a key is key=value
    (["train.steps=${seed}"], "train.steps=0: must be >= 1"),  # an interpolation meets the same check
    # a missing variable was a traceback that left a run folder
    (
        ["train.steps=${oc.env:ALIGN_LAB_NO_SUCH_VARIABLE}"],
        "train.steps: Environment variable 'ALIGN_LAB_NO_SUCH_VARIABLE' not found; set what it reads, or "
        "give train.steps a value",
    ),
    # per_run replaced an explicit sft.seed=5 while overrides.yaml still said 5
    (
        ["stages.seed=per_run", "sft.seed=5"],
        "sft.seed=5: stages.seed=per_run sets it to the run's seed (seed=0)",
    ),
    (["stages.seed=per_run", "reward.seed=5"], "reward.seed=5: stages.seed=per_run sets it"),
    # a seed >= 2^64 overflowed in torch.manual_seed after every stage was built
    ([f"seed={2**64}"], f"seed={2**64}: must be an integer in [-2^63, 2^64) (torch's seed range)"),
    (["seed='1'"], "seed='1': must be an integer, not a text: write seed=1 unquoted"),  # 44th hunt, case 15
    # forty-third hunt, cases 28-29: seed 1 recorded 1.0, "another config" than seed=1, two seeds in compare
    (
        ["seed=1e0"],
        "seed=1.0: must be an integer written as one (seed=1): the run's config would record 1.0, "
        "another config than seed=1",
    ),
    ([f"sft.seed={2**64}"], f"sft.seed={2**64}: must be an integer in [-2^63, 2^64)"),
    # forty-eighth hunt, case 30: Hydra merged the empty mapping, training on the preset's rm and brevity
    (
        ["reward=combined", "reward.components={}"],
        "reward.components={}: Hydra merges a mapping into reward.components's, so an empty one leaves it as "
        "it is (rm, brevity); remove one with ~reward.components.<name>",
    ),
]


@pytest.mark.fast
@pytest.mark.parametrize("overrides,message", OVERRIDE_FORMS, ids=[" ".join(o) for o, _ in OVERRIDE_FORMS])
def test_every_override_form_is_one_line_before_anything_is_written(overrides, message, tmp_path, forked_cli):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    result = forked_cli([*overrides, f"hydra.run.dir={run_dir}", f"cache_dir={cache}"], cwd=ROOT)
    one_line_error(result, "align_lab: error: ", message)
    assert not run_dir.exists(), "a refused run leaves no folder"
    assert not cache.exists(), "nothing was computed"


@pytest.mark.fast
def test_entries_of_a_mapping_and_a_users_own_keys_stay_allowed(tmp_path):
    """Deleting or adding an entry of a mapping (conf/reward/combined.yaml's components) and adding a key
    a user's own class reads stay allowed: only settings the code would replace unseen are refused."""
    from align_lab.run.admission import check_overrides

    overrides = ["reward=combined", "~reward.components.brevity", "+reward.components.extra=1"]
    cfg, _ = compose(overrides)
    check_overrides(overrides, cfg, {"reward": "combined"})
    with pytest.raises(ValueError, match=r"^~reward.components.rm.source.epochs: deleting a setting of "):
        check_overrides(["~reward.components.rm.source.epochs"], cfg, {"reward": "combined"})
    cfg, _ = compose(["env._target_=align_lab.envs.single_turn.SingleTurn"])
    check_overrides(["+env.top=16"], cfg, {"env": "single_turn"})  # build() judges the class's keys


# inside: the run (sweep) folder's parent is the file, as a file ./outputs (./multirun) beside you is for the
# default folders outputs/<date>/<time>: the line named the folder to be made, which does not exist
@pytest.mark.parametrize("inside", [False, True], ids=["", "inside"])
@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_a_run_folder_that_is_a_file_is_one_line_and_the_file_stays(sweep, inside, tmp_path, forked_cli):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    folder = afile / "2026-12-04" / "05-00" if inside else afile
    where = ["-m", "seed=0,1", f"hydra.sweep.dir={folder}"] if sweep else [f"hydra.run.dir={folder}"]
    result = forked_cli([*where, f"cache_dir={tmp_path / 'cache'}"], cwd=ROOT)
    key = "hydra.sweep.dir" if sweep else "hydra.run.dir"  # the key typed, not both
    one_line_error(result, f"{afile}: is a file, not a folder; choose another {key}")
    assert afile.read_text() == "mine"


def test_a_run_folder_under_a_link_to_nothing_says_the_link_and_its_missing_target(tmp_path, forked_cli):
    """Hunt of 2026-12-04, c58: `outputs` a link whose target was removed (a scratch disk not mounted) was
    said `outputs: is a file, not a folder`."""
    link = tmp_path / "outputs"
    link.symlink_to(tmp_path / "scratch")
    result = forked_cli([f"hydra.run.dir={link / '2026-12-04'}", f"cache_dir={tmp_path / 'cache'}"], cwd=ROOT)
    said = f"{link}: a link to {tmp_path / 'scratch'}, which does not exist (removed, or not mounted)"
    one_line_error(result, f"{said}; choose another hydra.run.dir")
    assert link.is_symlink() and not link.exists()


@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_a_run_folder_too_long_for_the_files_under_it_is_one_line_before_anything(
    sweep, tmp_path, forked_cli
):
    """Hunt of 2026-12-04, c57: a folder of 3,981 characters ran, then wandb's table under it at step 10
    passed PATH_MAX: 112 lines of `File name too long`."""
    deep = tmp_path
    while len(str(deep)) < 3950:  # and its .hydra/hydra.yaml past PATH_MAX: a sweep's read of it failed
        deep = deep / ("d" * min(200, 3980 + 100 * sweep - len(str(deep))))
    deep.mkdir(parents=True)
    where = ["-m", "seed=0,1", f"hydra.sweep.dir={deep}/s"] if sweep else [f"hydra.run.dir={deep}/r"]
    result = forked_cli([*where, f"cache_dir={tmp_path / 'cache'}"], cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "bytes; the files a run writes in it (up to 160 bytes more: wandb's tables) would pass this " in (
        result.stderr
    )
    assert result.stderr.rstrip().endswith("; choose a shorter path") and not (deep / "r").exists()


@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_a_run_folder_past_the_systems_limits_is_one_line(sweep, tmp_path, forked_cli):
    """A name of 300 bytes: Hydra's mkdir of the folder failed with `File name too long`, a traceback; a
    sweep's read of its multirun.yaml too."""
    folder = tmp_path / ("e" * 300)
    where = ["-m", "seed=0,1", f"hydra.sweep.dir={folder}"] if sweep else [f"hydra.run.dir={folder}"]
    result = forked_cli([*where, f"cache_dir={tmp_path / 'cache'}"], cwd=ROOT)
    key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    said = "past 255 bytes (this system's limit)" if sweep else "past 255 bytes or its path past 4096 (File"
    one_line_error(result, f"{key}={folder}: a name in it {said}")
    assert result.stderr.rstrip().endswith("; choose a shorter path")


@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_a_run_folder_that_cannot_be_made_is_one_line_naming_its_key(sweep, tmp_path, forked_cli):
    """/proc/x: Hydra's mkdir raised FileNotFoundError, a traceback."""
    where = ["-m", "seed=0,1", "hydra.sweep.dir=/proc/x"] if sweep else ["hydra.run.dir=/proc/x"]
    result = forked_cli([*where, f"cache_dir={tmp_path / 'cache'}"], cwd=ROOT)
    key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    one_line_error(result, f"cannot make /proc/x (No such file or directory); choose a writable {key}")


KEPT = {  # what a sweep keeps in its folder, as misplaced() says it
    "multirun.yaml": "where Hydra writes the sweep's record",
    "study.json": "where align_lab writes the study's",
    ".slots": "where a local sweep keeps its slots (a folder)",
    ".submitit": "where submitit keeps the jobs' files (a folder)",
}


@pytest.mark.parametrize(
    "name, kind",
    [
        ("multirun.yaml", "a folder"),
        ("multirun.yaml", "a named pipe"),
        ("study.json", "a folder"),
        ("study.json", "a named pipe"),
        (".slots", "a file"),
        (".submitit", "a named pipe"),
    ],
)
def test_a_sweeps_record_of_the_wrong_kind_is_one_line(name, kind, tmp_path, forked_cli):
    """Third hunt of 2026-12-04, n46b: `<sweep>/multirun.yaml` a folder: Hydra's sweeper wrote it in a 30-line
    IsADirectoryError traceback; a named pipe would hang its read. Fourth hunt, re_B2: study.json a folder,
    a traceback after the jobs were submitted; re_B9: a file at .slots failed every local run, said as
    "ended without a result" with the cause in the jobs' logs."""
    sweep = tmp_path / "s"
    sweep.mkdir()
    record = sweep / name
    {"a folder": record.mkdir, "a named pipe": lambda: os.mkfifo(record), "a file": record.touch}[kind]()
    result = forked_cli(["-m", "seed=0,1", f"hydra.sweep.dir={sweep}", f"cache_dir={tmp_path / 'cache'}"])
    one_line_error(
        result,
        f"hydra.sweep.dir={sweep}: {record} is {kind} {KEPT[name]}; move it away, or choose another "
        "hydra.sweep.dir",
    )


def test_compare_out_naming_a_file_is_one_line(tmp_path, forked_cli):
    afile = tmp_path / "report"
    afile.write_text("mine")
    result = forked_cli([str(tmp_path), "--out", str(afile)], module="align_lab.compare")
    one_line_error(result, f"align_lab.compare: error: --out {afile}: {afile} is a file; choose a folder")
    assert afile.read_text() == "mine"


def test_compare_out_naming_a_run_folder_is_one_line(tmp_path, forked_cli):
    """Fifth hunt of 2026-12-04: `--out <a run folder>` wrote report.md, runs.csv and the figures beside its
    summary.json and checkpoints, rc 0 and no word."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text('{"status": "completed"}')
    result = forked_cli([str(tmp_path), "--out", str(run)], module="align_lab.compare")
    one_line_error(
        result,
        f"align_lab.compare: error: --out {run}: a run folder, whose own files the report's would lie among; "
        "choose another folder",
    )
    assert sorted(p.name for p in run.iterdir()) == ["summary.json"]
    (run / "checkpoints").mkdir()  # sixth hunt of 2026-12-04: the report went into <run>/checkpoints/rep
    result = forked_cli(
        [str(tmp_path), "--out", str(run / "checkpoints" / "rep")], module="align_lab.compare"
    )
    one_line_error(
        result,
        f"align_lab.compare: error: --out {run / 'checkpoints' / 'rep'}: inside {run / 'checkpoints'}, a "
        "run's own; choose another folder",
    )
    os.mkfifo(tmp_path / "pipe")  # the same hunt: "is a file"
    result = forked_cli([str(tmp_path), "--out", str(tmp_path / "pipe")], module="align_lab.compare")
    one_line_error(
        result, f"align_lab.compare: error: --out {tmp_path / 'pipe'}: {tmp_path / 'pipe'} is a named pipe; "
    )
    assert sorted(p.name for p in run.rglob("*")) == ["checkpoints", "summary.json"]


# ---------------------------------------------------------------- a stopped run's folder
@pytest.fixture(scope="module")
def finished(tmp_path_factory, forked_cli) -> tuple[Path, list[str]]:
    """A small completed run on one thread, checkpointed every step: (folder, its command's arguments)."""
    root = tmp_path_factory.mktemp("entrance")
    args = [*SMALL, "hardware.num_threads=1", f"cache_dir={root / 'cache'}", f"hydra.run.dir={root / 'run'}"]
    result = forked_cli(args, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run", args


def interrupted_copy(finished, tmp_path, summary: dict | None = None) -> tuple[Path, list[str]]:
    """A copy of the finished run whose summary says it was interrupted (it can be resumed and extended)."""
    run_dir, args = finished
    mine = tmp_path / "run"
    shutil.copytree(run_dir, mine)
    old = json.loads((mine / "summary.json").read_text())
    (mine / "summary.json").write_text(json.dumps({**old, "status": "interrupted", **(summary or {})}))
    return mine, [a if not a.startswith("hydra.run.dir=") else f"hydra.run.dir={mine}" for a in args]


def files(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "change,message",
    [
        (["seed=1"], "seed=1: the checkpoint in {ckpt} was trained by a run of seed=0; resume with seed=0"),
        (["sft.lr=0.001"], "hydra.run.dir={run}: the checkpoint in {ckpt} was trained with another config"),
    ],
)
def test_a_folder_holding_only_another_runs_checkpoint_is_refused_in_one_line(
    finished, tmp_path, change, message, forked_cli
):
    """Its summary and config gone (copied, or left after the config was deleted): the identity inside
    the checkpoint still refuses another seed or config; it was resumed silently under seed=1."""
    run_dir, args = finished
    mine = tmp_path / "run"
    shutil.copytree(run_dir / "checkpoints", mine / "checkpoints")
    before = files(mine)
    args = [a if not a.startswith("hydra.run.dir=") else f"hydra.run.dir={mine}" for a in args]
    result = forked_cli([*args, *change], cwd=ROOT)
    one_line_error(result, message.format(run=mine, ckpt=mine / "checkpoints"))
    assert files(mine) == before, "a refused attempt writes nothing (no .hydra/, no summary, no time)"


def test_a_users_notes_in_an_interrupted_run_folder_do_not_block_its_resume(finished, tmp_path, forked_cli):
    run_dir, args = interrupted_copy(finished, tmp_path)
    (run_dir / "notes.txt").write_text("lr looked high")
    result = forked_cli([*args, "train.steps=4"], cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert (run_dir / "notes.txt").read_text() == "lr looked high" and metric_lines(run_dir) == 4


def test_a_resume_with_other_threads_loads_the_stages_it_was_trained_on(finished, tmp_path, forked_cli):
    """hardware may change on resume, as the refusal of other keys says: with hardware.num_threads=2 the
    run loads the stages its checkpoint trained on (built with 1 thread), then trains with 2. It was
    refused after every stage was rebuilt, its .hydra/ rewritten and the run marked failed."""
    run_dir, args = interrupted_copy(finished, tmp_path)
    result = forked_cli([*args, "train.steps=4", "hardware.num_threads=2"], cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["threads"] == 2 and summary["stage_threads"] == 1
    assert all(stage["hit"] for stage in summary["stages"].values()), summary["stages"]
    # what the numbers came from (issue 59): each segment's threads, the stages' and the rollouts' (the
    # 4th step's and the final evaluation's, on the 1 thread the run started with: rollout.threads=auto
    # keeps the recorded count, issue 72); and one warning line that training's changed
    assert summary["segment_threads"] == [1, 2] and summary["sampling_threads"] == 1
    numerics = summary["numerics"]
    assert (numerics["threads"], numerics["stage_threads"], set(numerics["rollout_threads"])) == (2, 1, {"1"})
    assert "warning: torch threads: this run trained on 1 until its checkpoint at step 3" in result.stderr
    assert metric_lines(run_dir) == 4


def test_a_torn_middle_line_of_metrics_is_one_line_before_any_stage_loads(finished, tmp_path, forked_cli):
    run_dir, args = interrupted_copy(finished, tmp_path)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines[1] = lines[1][:15] + "\n"
    (run_dir / "metrics.jsonl").write_text("".join(lines))
    before = files(run_dir)
    result = forked_cli(args, cwd=ROOT)
    one_line_error(result, f"{run_dir / 'metrics.jsonl'}:2: not a JSON line", "delete that line")
    assert files(run_dir) == before


def test_a_run_started_again_from_step_0_counts_only_its_own_time(finished, tmp_path, forked_cli):
    """After the "delete checkpoints to start again" hint, the abandoned run's time is not the new one's."""
    run_dir, args = interrupted_copy(finished, tmp_path, {"segments_s": [1000.0]})
    shutil.rmtree(run_dir / "checkpoints")
    result = forked_cli(args, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["time/segments"] == 1 and summary["time/total_s"] < 1000


def test_deleting_run_lock_does_not_let_a_second_run_into_a_live_folder(tmp_path, cache_dir, forked_cli):
    """Both ran and exited 0 "completed", a step of metrics.jsonl lost: the folder itself is locked."""
    from align_lab.folder import LOCK, holder

    run_dir = tmp_path / "run"
    # long enough that the first is still running as the second is admitted (CI of 7cc8e57: 6 steps had
    # completed by then, and the second said "already completed")
    args = [*SMALL, "train.steps=30", f"cache_dir={cache_dir}", f"hydra.run.dir={run_dir}"]
    first = start(args)
    try:
        wait_for(lambda: holder(run_dir) is not None or first.poll() is not None)
        (run_dir / LOCK).unlink()
        assert holder(run_dir) is not None
        second = forked_cli(args, cwd=ROOT)
        one_line_error(second, f"hydra.run.dir={run_dir}: in use by a run of ")
        _, err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0, err[-3000:]
    assert metric_lines(run_dir) == 30 and holder(run_dir) is None


DELETE_SFT_AFTER_ITS_STAGE = """
import shutil

import align_lab.cache as cache

get = cache.StageCache.get


def get_then_delete(self, stage, *args, **kwargs):
    result = get(self, stage, *args, **kwargs)
    if stage == "sft":  # the user deletes the entry while the next stage is about to load it
        shutil.rmtree(result.path)
    return result


cache.StageCache.get = get_then_delete
"""


def test_a_cache_entry_deleted_between_stages_is_one_line_and_a_rerun_rebuilds_it(tmp_path, forked_cli):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    args = [*SMALL, f"hydra.run.dir={run_dir}", f"cache_dir={cache}"]
    result = run_cli(args, cwd=ROOT, env=_inject(tmp_path, DELETE_SFT_AFTER_ITS_STAGE))
    lines = [line for line in result.stderr.splitlines() if line.startswith("align_lab:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines[-1].startswith(f"align_lab: error: {cache / 'sft'}/"), lines[-1]
    assert "the saved model is gone" in lines[-1] and "rerun the same command" in lines[-1]
    rerun = forked_cli(args, cwd=ROOT)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


COUNT_CHECKS = """
import atexit
import sys
from collections import Counter

import align_lab.run.admission as admission
import align_lab.run.cross_checks as cross_checks
import align_lab.run.folder_checks as folder_checks
import align_lab.run.summary as summary

calls = Counter()


def counted(module, name):
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls[name] += 1
        return original(*args, **kwargs)

    setattr(module, name, wrapper)


for module, name in ((admission, "spec_from_config"), (cross_checks, "check_run"),
                     (folder_checks, "check_folder"), (cross_checks, "check_machine"),
                     (summary, "check_same_config")):
    counted(module, name)
atexit.register(lambda: print("CALLS", sorted(calls.items()), file=sys.stderr))
"""


@pytest.mark.parametrize("sweep", full_but([False, True], {False}), ids=["run", "sweep"])
def test_each_check_runs_once_per_job(sweep, tmp_path, cache_dir):
    """The entrance was walked three times (the app's callback, the launcher's plan, the run itself); the
    same command again finds each run completed, its folder's config checked once (not again by the run)."""
    where = (
        ["seed=0,1", f"hydra.sweep.dir={tmp_path / 's'}"] if sweep else [f"hydra.run.dir={tmp_path / 'r'}"]
    )
    args = [
        *(["-m"] if sweep else []),
        *SMALL,
        "train.steps=1",
        "hardware.num_threads=1",
        f"cache_dir={cache_dir}",
        *where,
    ]
    n = 2 if sweep else 1
    expected = [
        ("check_folder", n),
        ("check_machine", n),
        ("check_run", n),
        ("check_same_config", n),
        ("spec_from_config", n),
    ]
    env = _inject(tmp_path, COUNT_CHECKS)
    for _ in ("run", "again"):
        result = run_cli(args, cwd=ROOT, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        line = next(line for line in result.stderr.splitlines() if line.startswith("CALLS"))
        assert line == f"CALLS {expected}", line
    assert "this run was already completed; nothing to do" in result.stderr


# ---------------------------------------------------------------- settings far outside the machine
def test_settings_far_outside_the_machine_warn_in_one_line_each(tmp_path, caplog):
    from align_lab.run.admission import admit_spec, spec_from_config
    from align_lab.run.machine_fit import machine_warnings
    from align_lab.run.resources import machine

    cores, _ = machine()
    many = 2 * cores + 1
    cfg, names = compose(
        [f"hardware.num_threads={many}", "hardware.memory_gb=0.001", f"cache_dir={tmp_path}"]
    )
    spec = spec_from_config(cfg, names)
    lines = machine_warnings(spec)
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert lines[0].startswith(f"hardware.num_threads={many}: this machine gives the run {cores} cores")
    assert lines[1].startswith("hardware.memory_gb=0.001: micro-batches of a row or so")
    cfg, names = compose(
        ["hardware.memory_gb=0.3", f"cache_dir={tmp_path}"]
    )  # 193 s, not 8 (hunt of 2026-12-04)
    assert machine_warnings(spec_from_config(cfg, names))[0].startswith(
        "hardware.memory_gb=0.3: micro-batches of a row or so (many times slower) on a machine of "
    )
    with caplog.at_level("WARNING", logger="align_lab"):
        admit_spec(spec, tmp_path / "run")
    assert [r.getMessage() for r in caplog.records] == [f"align_lab: warning: {line}" for line in lines]
    cfg, names = compose([f"cache_dir={tmp_path}"])
    assert machine_warnings(spec_from_config(cfg, names)) == []  # the defaults fit any machine


def test_a_nearly_full_temp_folder_is_warned_of_before_the_run(tmp_path, monkeypatch):
    """Hunt of 2026-12-04, c35: TMPDIR with 8 KiB free: all 20 steps and the evaluation ran, then wandb's
    table (a temporary file) met the full device and the run stopped, its steps lost, said "a file"."""
    import shutil
    import tempfile
    from collections import namedtuple

    from align_lab.run.admission import spec_from_config
    from align_lab.run.machine_fit import machine_warnings

    cfg, names = compose([f"cache_dir={tmp_path}"])
    spec = spec_from_config(cfg, names)
    usage, real = namedtuple("usage", "total used free"), shutil.disk_usage
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(
        shutil, "disk_usage", lambda p: usage(1, 1, 8192) if str(p) == str(tmp_path) else real(p)
    )
    assert machine_warnings(spec) == [
        f"TMPDIR: the temp folder {tmp_path} has 8 KiB free; the libraries write their temporary files there "
        "(wandb's tables at each evaluation), and a run that meets a full one stops; free space there or set "
        "TMPDIR to a folder with room"
    ]


def test_a_command_with_its_output_closed_or_hydras_short_errors_asked_ends_as_it_would(tmp_path, forked_cli):
    """Hunt of 2026-12-04 (env/cwd, c49, c43): `python -m align_lab >&-` (a launcher that closes stdout)
    completed the run, then `'NoneType' object has no attribute 'flush'` and rc 1; an exported
    HYDRA_FULL_ERROR=0 turned a bad choice's one line into Hydra's 47-line report and rc 1."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "align_lab", *SMALL, "train.steps=2", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        timeout=600,
        preexec_fn=lambda: os.close(1),
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"
    result = forked_cli(["algo=nope"], cwd=tmp_path, env={"HYDRA_FULL_ERROR": "0"})
    one_line_error(result, "algo=nope: unknown choice; allowed: ")
