"""Issue 59 item 4: every hint names the right key and works when followed; every printed command
survives a path with a space and names the interpreter that runs align_lab."""

from __future__ import annotations

import os
import shlex
import shutil

import pytest

from align_lab.config import ConfigError, build
from tests.conftest import compose


@pytest.fixture
def streams(monkeypatch):
    """capsys's readouterr() on fresh streams of this test's own: a wandb import earlier in the process
    (tests/unit/results) patches the sys.stdout/sys.stderr of its day, a closed capture later."""
    import io
    import sys
    from types import SimpleNamespace

    out, err = io.StringIO(), io.StringIO()

    def start():  # in the test's body: pytest puts its own streams back between setup and call
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)

    def readouterr():
        result = SimpleNamespace(out=out.getvalue(), err=err.getvalue())
        for stream in (out, err):
            stream.seek(0)
            stream.truncate()
        return result

    return SimpleNamespace(start=start, readouterr=readouterr)


def test_the_sft_hint_names_task_sft_and_following_it_builds(tmp_path):
    """It said `set sft=true`: `sft` is the root's SFT-stage config, the switch is task.sft."""
    cfg, _ = compose(["task=arith_word", "task.demonstrations_env=calculator", f"cache_dir={tmp_path}"])
    with pytest.raises(ConfigError) as e:
        build(cfg.task, "task")
    assert str(e.value).endswith("; set task.sft=true"), e.value
    hint = str(e.value).rsplit("set ", 1)[1]
    cfg, _ = compose(["task=arith_word", "task.demonstrations_env=calculator", hint, f"cache_dir={tmp_path}"])
    assert build(cfg.task, "task").sft is True


def test_a_file_in_the_cache_is_blamed_on_cache_dir_and_moving_it_away_works(tmp_path):
    """A file where the stage cache keeps a stage's folder was reported as `choose another
    hydra.run.dir` (Hydra's mkdir error's line): changing the run folder changed nothing."""
    from align_lab.cache import StageCache

    (tmp_path / "sft").write_text("not a folder")
    cache = StageCache(tmp_path)
    build = lambda out: (out / "model.bin").write_text("w")  # noqa: E731
    with pytest.raises(ConfigError) as e:
        cache.get("sft", 1, {"seed": 0}, build)
    assert str(e.value) == (
        f"cache_dir={tmp_path}: {tmp_path / 'sft'} is a file where the stage cache keeps a folder; "
        "move it away, or choose another cache_dir"
    )
    (tmp_path / "sft").rename(tmp_path / "moved")  # the hint, followed
    assert (cache.get("sft", 1, {"seed": 0}, build).path / "model.bin").read_text() == "w"


def test_a_file_at_a_stage_entrys_name_is_replaced_and_a_cache_from_the_environment_is_named(
    tmp_path, monkeypatch
):
    """Sixth hunt of 2026-12-04: a stage's entry swapped for a file: the stage trained (27 s), then
    "<entry>.tmp-N: is a file, not a folder; choose another hydra.run.dir"; ALIGN_LAB_CACHE naming a file
    was said as a cache_dir never typed, with "or null", which reads ALIGN_LAB_CACHE again."""
    from align_lab.cache import StageCache, usable_cache_dir

    cache = StageCache(tmp_path / "cache")
    build = lambda out: (out / "model.bin").write_text("w")  # noqa: E731
    entry = cache.get("sft", 1, {"seed": 0}, build).path
    shutil.rmtree(entry)
    entry.write_text("not a stage")
    assert (cache.get("sft", 1, {"seed": 0}, build).path / "model.bin").read_text() == "w"
    afile = tmp_path / "afile"
    afile.write_text("mine")
    monkeypatch.setenv("ALIGN_LAB_CACHE", str(afile))
    with pytest.raises(ConfigError) as e:
        usable_cache_dir(None)
    assert str(e.value) == (
        f"ALIGN_LAB_CACHE={afile} (cache_dir=null): is a file; must be a folder (unset it, or set "
        "cache_dir=<a folder>)"
    )
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(
        ConfigError, match=r": is a named pipe; must be a folder \(or null: the user cache dir\)$"
    ):
        usable_cache_dir(str(tmp_path / "pipe"))
    assert afile.read_text() == "mine"


def test_status_of_a_died_single_run_names_the_command_that_resumes_it(tmp_path, streams):
    """`study status` on a single run suggested `python -m align_lab.study resume`, which refuses a
    folder without a study manifest; the hint is now the run's own command, with its folder."""
    streams.start()
    from align_lab.study.__main__ import main
    from tests.unit.test_rerun import hydra_yaml

    run_dir = tmp_path / "my runs" / "0_grpo"  # a space: the printed command must survive it
    hydra_yaml(run_dir, tmp_path, task=["algo=grpo", "train.steps=3"])
    (run_dir / "summary.json").write_text('{"status": "running"}')
    (run_dir / "run.lock").touch()  # nobody holds it: the process died
    assert main(["status", str(run_dir)]) == 1
    line = streams.readouterr().out.splitlines()[0]
    assert "study resume" not in line
    command = line.split("to continue from its last checkpoint: ", 1)[1].split("]", 1)[0]
    cd, command = command.split(" && ", 1)  # run in the folder it was typed in
    assert shlex.split(cd) == ["cd", str(tmp_path)]
    args = shlex.split(command)  # the shell reads it as it was meant
    assert args[1:4] == ["-m", "align_lab", "algo=grpo"] and args[-2] == "train.steps=3"
    assert tmp_path / args[-1].removeprefix("hydra.run.dir=") == run_dir
    assert main(["resume", str(run_dir)]) == 2  # the old hint: no manifest here


def test_a_run_outside_hydra_names_its_folder_quoted(tmp_path):
    from align_lab.rerun import resume_command

    bare = tmp_path / "a b"
    hint = resume_command(bare).removeprefix("rerun the same command with ")
    assert shlex.split(hint) == [f"hydra.run.dir={bare}"]


def without_venv_python(monkeypatch):
    """A shell whose `python` is not this interpreter (the venv not activated): the bare `python` the
    hints printed is another one, without align_lab."""
    monkeypatch.setattr("shutil.which", lambda name: None)


def test_the_compare_hint_after_a_run_runs_this_interpreter_on_a_folder_with_a_space(tmp_path, monkeypatch):
    import subprocess
    import sys
    from pathlib import Path

    from align_lab.run.summary import result_lines

    without_venv_python(monkeypatch)
    run_dir = tmp_path / "my outputs" / "12-00-00_ppo_seed0"
    run_dir.mkdir(parents=True)
    hint = result_lines({"algo": "ppo", "seed": 0}, run_dir)[-1].removeprefix("  compare:    ")
    args = shlex.split(hint)
    assert args[1:] == ["-m", "align_lab.compare", str(run_dir)]
    assert Path(args[0]).absolute() == Path(sys.executable).absolute()
    followed = subprocess.run([*args[:3], "--help"], capture_output=True, text=True, timeout=120)
    assert followed.returncode == 0 and "usage: python -m align_lab.compare" in followed.stdout


def test_printed_sweep_commands_survive_a_folder_with_a_space(tmp_path, monkeypatch, streams):
    streams.start()
    import sys
    from pathlib import Path

    from align_lab.study.outcome import Outcomes
    from align_lab.study.submission import status_command

    without_venv_python(monkeypatch)
    sweep_dir = tmp_path / "my sweeps" / "s"
    args = shlex.split(status_command(sweep_dir))
    assert args[1:] == ["-m", "align_lab.study", "status", str(sweep_dir)]
    assert Path(args[0]).absolute() == Path(sys.executable).absolute()
    outcomes = Outcomes([{"num": 0, "overrides": ["seed=0"], "run_dir": str(sweep_dir / "0")}], sweep_dir)
    outcomes.failed({"num": 0, "overrides": ["seed=0"], "run_dir": str(sweep_dir / "0")}, "boom")
    with pytest.raises(SystemExit):
        outcomes.finish()
    last = streams.readouterr().err.strip().splitlines()[-1]
    again = last.split("to rerun only the others: rerun the sweep's command with ", 1)[1]  # no multirun.yaml
    assert shlex.split(again) == [f"hydra.sweep.dir={sweep_dir}"]


def test_the_wandb_command_compare_prints_names_this_interpreter(tmp_path, monkeypatch):
    import argparse
    import sys
    from pathlib import Path

    from align_lab.results.wandb_report import online_command

    without_venv_python(monkeypatch)
    args = argparse.Namespace(
        folders=[tmp_path / "a b"], by=None, metric=None, budget=None, baseline=None, out=None, claim=[]
    )
    printed = shlex.split(online_command(args))
    assert Path(printed[0]).absolute() == Path(sys.executable).absolute()
    assert printed[1:] == ["-m", "align_lab.compare", str(tmp_path / "a b"), "--wandb"]


def test_a_group_list_says_a_sweep_is_a_comma_list_with_m_and_that_sweep_builds(tmp_path):
    """`algo=[ppo,rloo]` (no -m) was reported as `algo.critic_lr: unknown key` (Hydra merged both
    configs); the hint's sweep expands to one algo a job, each of which builds."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from align_lab.app import check_group_overrides

    with pytest.raises(ConfigError) as e:
        check_group_overrides(["seed=1", "algo=[ppo, rloo]"])
    assert str(e.value) == (
        "algo=[ppo, rloo]: a run takes one algo; a list sweeps only as a comma list with -m: "
        "python -m align_lab -m algo=ppo,rloo"
    )
    args = shlex.split(str(e.value).rsplit(": ", 1)[1])
    assert args[:4] == ["python", "-m", "align_lab", "-m"]
    (sweep,) = OverridesParser.create().parse_overrides(args[4:])
    jobs = [f"algo={v}" for v in sweep.sweep_string_iterator()]
    assert jobs == ["algo=ppo", "algo=rloo"]
    built = [build(compose([job, f"cache_dir={tmp_path}"])[0].algo, "algo") for job in jobs]
    assert len({type(algo) for algo in built}) == 2
    check_group_overrides(["seed=[1,2]", "algo=ppo", "--config-dir", "sweeps"])  # not a group: its own line


@pytest.mark.parametrize(
    "bad,expected,fixed",
    [
        ("stages=abc", "stages=abc: must be a mapping, e.g. {seed: shared}", "stages={seed:shared}"),
        ("study=[a]", "study=['a']: must be a name (a string)", "study=a"),  # was tracker.group's error
        (
            "compare_by=[algo]",
            "compare_by=['algo']: must be a key or group name, or several comma-separated",
            "compare_by=algo",
        ),
        (
            "claims=abc",
            'claims=abc: must be a list of claims, e.g. ["rloo > ppo on eval/gold_reward"]',
            "claims=[]",
        ),
        (
            "normalise=abc",
            "normalise=abc: must be null or a mapping of task to {metric, low, high}",
            "normalise=null",
        ),
        (
            "resume_changed_code=abc",
            "resume_changed_code=abc: must be true or false",
            "resume_changed_code=true",
        ),
        (
            "resume_changed_inputs=abc",
            "resume_changed_inputs=abc: must be true or false",
            "resume_changed_inputs=true",
        ),
        ("cache_dir=[a]", "cache_dir=['a']: must be null or a folder path", "cache_dir=c"),
        # 1e30 > 2^64 = 1.8e19; a float with an integer value skipped the range check, then int() took it
        ("seed=1e30", "seed=1e+30: must be an integer in [-2^63, 2^64) (torch's seed range)", "seed=3"),
    ],
)
def test_a_wrong_type_at_the_top_level_is_one_line_naming_the_key(
    bad, expected, fixed, tmp_path, monkeypatch
):
    """Each was read later: a traceback (stages=abc), another key's error (study=[a] as tracker.group),
    or a silent truth (resume_changed_code=abc resumed changed code as true)."""
    from align_lab.run.admission import spec_from_config

    monkeypatch.chdir(tmp_path)  # cache_dir=c: a folder here
    cache = [] if bad.startswith("cache_dir") else [f"cache_dir={tmp_path / 'cache'}"]
    with pytest.raises(ConfigError) as e:
        spec_from_config(*compose([*cache, bad]))
    assert str(e.value) == expected
    cache = [] if fixed.startswith("cache_dir") else cache
    spec_from_config(*compose([*cache, fixed]))  # the allowed value builds


def test_compare_over_files_of_the_wrong_shape_notes_each_and_reports_the_rest(tmp_path, streams):
    """Valid YAML/JSON of another shape (a list for a mapping) was read on as a mapping: a traceback
    (AttributeError: 'list' object has no attribute 'get'); now a note naming the file, as for a torn
    one."""
    streams.start()
    from align_lab.compare import main
    from tests.integration.test_compare import make_sweep

    sweep = make_sweep(tmp_path)
    first, second, third = sorted(p for p in sweep.iterdir() if p.is_dir())[:3]
    (first / ".hydra" / "config.yaml").write_text("- 1\n- 2\n")
    (second / "summary.json").write_text("[1, 2]")
    (third / ".hydra" / "overrides.yaml").write_text("algo: ppo\n")
    (sweep / "study.json").write_text("[]")
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    out = streams.readouterr().out
    for note in (
        f"{first}: .hydra/config.yaml: not a mapping (a list), left out",
        f"{third}: .hydra/overrides.yaml: not a list (a dict), left out",
        f"{sweep / 'study.json'}: study manifest: not a mapping (a list), left out",
    ):
        assert f"note: {note}" in out, note
    assert "summary.json: not a mapping (a list), left out" in (tmp_path / "out" / "report.md").read_text()


def test_an_out_folder_that_cannot_be_made_is_one_line_and_a_writable_one_works(tmp_path, streams):
    streams.start()
    from align_lab.compare import main
    from tests.integration.test_compare import make_sweep

    sweep = make_sweep(tmp_path)
    assert main([str(sweep), "--out", "/proc/align_lab_out"]) == 2  # was FileNotFoundError's traceback
    err = streams.readouterr().err
    assert err == (
        "align_lab.compare: error: --out /proc/align_lab_out: cannot write there (No such file or "
        "directory); choose a writable folder\n"
    )
    assert main([str(sweep), "--out", str(tmp_path / "writable")]) == 0  # the hint, followed
    assert (tmp_path / "writable" / "report.md").is_file()


@pytest.mark.parametrize("bad,fixed", [("train=null", "train.steps=5"), ("sft=3", "sft.epochs=5")])
def test_a_section_set_to_a_value_is_one_line_and_setting_its_keys_builds(bad, fixed, tmp_path):
    """`train=null` was a TypeError traceback; `train=abc` was told to 'pick a choice of the train
    group', which does not exist."""
    from align_lab.run.admission import spec_from_config

    key = bad.split("=")[0]
    with pytest.raises(ConfigError) as e:
        spec_from_config(*compose([bad, f"cache_dir={tmp_path}"]))
    value = bad.split("=")[1]  # as written: null, not Python's None
    assert (
        str(e.value) == f"{key}={value}: a section of settings, not a value; set its keys ({key}.<key>=...)"
    )
    spec = spec_from_config(*compose([fixed, f"cache_dir={tmp_path}"]))  # the hint, followed
    assert spec.config[key][fixed.split(".")[1].split("=")[0]] == 5


def test_a_group_set_to_null_lists_its_choices_and_one_of_them_builds(tmp_path):
    """`tracker=null` was Hydra's ValueError traceback."""
    from align_lab.app import check_group_overrides
    from align_lab.registry import choices

    with pytest.raises(ConfigError) as e:
        check_group_overrides(["tracker=null"])
    assert str(e.value) == f"tracker=null: every run needs tracker; allowed: {', '.join(choices('tracker'))}"
    cfg, _ = compose([f"tracker={choices('tracker')[0]}", f"cache_dir={tmp_path}"])
    build(cfg.tracker, "tracker")


@pytest.mark.parametrize(
    "text,said",
    [
        ("[]", "not a study manifest (a JSON object with cluster and runs, as written)"),
        (
            '{"cluster": "local", "runs": [{"num": 0}]}',
            "not a study manifest (runs[0] lacks overrides, run_dir)",
        ),
        ('{"runs": [', "cannot be read as a study manifest (Expecting value: line 1 column 11 (char 10))"),
        (  # fourth hunt of 2026-12-04, st_B7: a 31-line TypeError traceback
            '{"cluster": "local", "runs": [{"num": 0, "overrides": [], "run_dir": 5}]}',
            "not a study manifest as written (runs[0].run_dir=5: not a path)",
        ),
        (
            '{"cluster": "local", "runs": [{"num": "one", "overrides": [], "run_dir": "r"}]}',
            "not a study manifest as written (runs[0].num='one': not a whole number)",
        ),
    ],
    ids=["a_list", "an_entry_short", "torn", "a_run_dir_number", "a_num_word"],
)
def test_study_status_on_a_damaged_manifest_is_one_line_naming_it(text, said, tmp_path, streams):
    """A list, an entry without its keys, a torn write: TypeError, KeyError, JSONDecodeError tracebacks."""
    streams.start()
    from align_lab.study.__main__ import main

    (tmp_path / "study.json").write_text(text)  # '{"runs": [' is 10 characters: nothing at char 10
    for command in ("status", "resume"):
        assert main([command, str(tmp_path)]) == 2
        assert streams.readouterr().err == f"align_lab.study: error: {tmp_path / 'study.json'}: {said}\n"


@pytest.mark.parametrize("kind", ["a folder", "a named pipe"])
def test_study_status_on_a_manifest_of_another_kind_is_one_line_naming_it(kind, tmp_path, streams):
    """Fourth hunt of 2026-12-04, st_B2-B3: study.json a folder was "cannot write ... (Is a directory); make
    it writable", a named pipe hung `study status` until a signal."""
    streams.start()
    from align_lab.study.__main__ import main

    manifest = tmp_path / "study.json"
    manifest.mkdir() if kind == "a folder" else os.mkfifo(manifest)
    for command in ("status", "resume"):
        assert main([command, str(tmp_path)]) == 2
        assert streams.readouterr().err == (
            f"align_lab.study: error: {manifest}: {kind}, where the study's manifest (a file) is; move it "
            "away\n"
        )


def test_study_status_on_a_run_whose_summary_is_not_a_mapping_says_so(tmp_path, streams):
    streams.start()
    from align_lab.study.__main__ import main

    (tmp_path / "summary.json").write_text("[1]")  # was AttributeError: 'list' object has no attribute 'get'
    assert main(["status", str(tmp_path)]) == 1
    line = streams.readouterr().out.splitlines()[0]
    assert f"failed     [{tmp_path / 'summary.json'}: cannot be read as a run summary]" in line


def test_study_status_on_a_run_whose_summary_is_a_folder_says_so(tmp_path, streams):
    """Eighteenth hunt: a 34-line IsADirectoryError traceback."""
    streams.start()
    from align_lab.study.__main__ import main

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (tmp_path / "summary.json").mkdir()
    assert main(["status", str(tmp_path)]) == 1
    line = streams.readouterr().out.splitlines()[0]
    assert (
        f"failed     [{tmp_path / 'summary.json'}: cannot be read as a run summary (a folder, not a file)]"
        in line
    )


def test_a_components_check_names_its_other_fields_with_their_key_and_following_it_builds(tmp_path):
    """RLOO's check said `... with token_level_kl=true`: typed as said, a new root key. The key the
    command line takes is algo.token_level_kl."""
    bad = ["algo=rloo", "algo.ratio=sequence", "algo.token_level_kl=true", f"cache_dir={tmp_path}"]
    with pytest.raises(ConfigError) as e:
        build(compose(bad)[0].algo, "algo")
    assert str(e.value).startswith(
        "algo.ratio=sequence: must be token or none with algo.token_level_kl=true (a sequence ratio"
    )
    assert build(compose([*bad, "algo.token_level_kl=false"])[0].algo, "algo").ratio == "sequence"


def test_the_note_on_a_run_without_samples_names_the_key_that_turns_them_off(tmp_path):
    from align_lab.results.samples import final_records

    _, note = final_records(tmp_path)
    assert note.endswith("or train.keep_eval_samples=false)")
    cfg, _ = compose(["train.keep_eval_samples=false", f"cache_dir={tmp_path}"])  # the key exists
    assert build(cfg.train, "train").keep_eval_samples is False


def test_a_died_run_of_a_study_names_the_resume_command_with_its_folder(tmp_path, monkeypatch, streams):
    """It said `python -m align_lab.study resume` (no folder, a bare python); compare said `rerun its
    command`, which one not said."""
    streams.start()
    import json
    import sys
    from pathlib import Path

    from align_lab.results.runs import load_run
    from align_lab.study.__main__ import main
    from tests.unit.test_rerun import hydra_yaml

    without_venv_python(monkeypatch)
    study = tmp_path / "my study"
    run_dir = study / "0_grpo"
    hydra_yaml(run_dir, tmp_path, task=["algo=grpo"])
    (run_dir / "summary.json").write_text('{"status": "running"}')
    (run_dir / "run.lock").touch()  # nobody holds it
    entry = {"num": 0, "overrides": ["algo=grpo"], "run_dir": str(run_dir)}
    (study / "study.json").write_text(json.dumps({"cluster": "local", "runs": [entry]}))
    assert main(["status", str(study)]) == 1
    line = streams.readouterr().out.splitlines()[0]
    args = shlex.split(line.split("to continue from its last checkpoint: ", 1)[1].split("]", 1)[0])
    assert args[1:] == ["-m", "align_lab.study", "resume", str(study)]
    assert Path(args[0]).absolute() == Path(sys.executable).absolute()
    error = load_run(run_dir).error  # what compare shows for it
    args = shlex.split(error.split("to continue from its checkpoint: ", 1)[1].split(" && ", 1)[1])
    assert args[1:3] == ["-m", "align_lab"] and tmp_path / args[-1].removeprefix("hydra.run.dir=") == run_dir


def test_a_sweep_of_no_value_is_one_line_and_leaves_no_folder(tmp_path, forked_cli):
    """`-m seed=range(0,0)` printed "Launching 0 jobs" and exited 0: nothing ran, nothing said."""
    from tests.conftest import ROOT

    where = [f"hydra.sweep.dir={tmp_path / 'sweep'}", f"cache_dir={tmp_path / 'cache'}"]
    result = forked_cli(["-m", "seed=range(0,0)", *where], cwd=ROOT)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "align_lab: error: seed=range(0,0): sweeps no value, so the sweep has no job; give each swept key "
        "at least one value (seed=range(0,3) is 0, 1, 2)"
    )
    assert not (tmp_path / "sweep").exists()


def test_a_run_that_completed_as_its_state_was_read_is_not_died(tmp_path):
    """Twenty-second hunt, case 12: `study status` read a run's summary (running), then found its lock
    free, because the run had completed and let go of it meanwhile: `died`, with a resume hint."""
    import json

    from align_lab.study.status import died

    (tmp_path / "run.lock").write_text('{"pid": 1, "host": "elsewhere"}')  # nobody holds it
    read_before = {"status": "running", "config_digest": "0123456789abcdef"}
    (tmp_path / "summary.json").write_text(json.dumps(read_before | {"status": "completed"}))
    assert not died(tmp_path, read_before)
    (tmp_path / "summary.json").write_text(json.dumps(read_before))
    assert died(tmp_path, read_before)


def test_a_slurm_preset_without_m_is_said_to_run_here(monkeypatch):
    """Thirty-eighth hunt, case 35: `python -m align_lab hardware=slurm_cpu` without -m ran on the machine
    it was typed on (Hydra's launchers submit sweeps only), its Slurm resources unused, no line."""
    from align_lab.__main__ import slurm_without_a_sweep

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert slurm_without_a_sweep(["hardware=slurm_cpu", "train.steps=2"]) == (
        "align_lab: note: hardware=slurm_cpu submits to Slurm with -m only (a sweep, of one run too: "
        "python -m align_lab -m ...); without it this run goes on here, on this machine"
    )
    assert slurm_without_a_sweep(["-m", "hardware=slurm_cpu"]) is None
    assert slurm_without_a_sweep(["hardware=cpu"]) is None


def test_a_slurm_preset_run_inside_a_slurm_job_says_nothing(monkeypatch):
    from align_lab.__main__ import slurm_without_a_sweep

    monkeypatch.setenv("SLURM_JOB_ID", "7")  # srun python -m align_lab hardware=slurm_multinode ...
    monkeypatch.setenv("SLURMD_NODENAME", "node1")  # slurmd's, in sbatch's script and srun's tasks
    assert slurm_without_a_sweep(["hardware=slurm_multinode"]) is None


def test_a_slurm_preset_in_a_salloc_shell_or_with_a_stray_job_id_is_still_said_to_run_here(monkeypatch):
    """Hunt of 2026-12-04, c85: a SLURM_JOB_ID alone (salloc's shell on the login node sets only it; a
    copied environment) hid the note, and the run went on the login node with no line."""
    from align_lab.__main__ import slurm_without_a_sweep

    monkeypatch.setenv("SLURM_JOB_ID", "123")
    monkeypatch.delenv("SLURMD_NODENAME", raising=False)
    assert "submits to Slurm with -m only" in slurm_without_a_sweep(["hardware=slurm_cpu"])
