"""Issue 73 item 2: a teacher is a finished run, read as one. A run folder given as algo.teacher that has
not completed, whose final checkpoint is missing or damaged, or that holds no checkpoint, is refused at
admission in one line naming the folder and what is wrong with it, never with the hint to delete its
checkpoints (which would destroy the teacher), and the folder is left as it was; a student stopped and
resumed after its teacher changed is refused, naming the teacher and its digests."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import pytest

from align_lab.config import ConfigError
from align_lab.folder import claim, holder
from tests.conftest import dies_after_step_2, run_in_process

STUDENT = ["algo=opd", "reward=gold"]


class Interrupt(BaseException):
    pass


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, cache_dir):
    """A completed run folder (SMALL: 3 steps, a checkpoint every step, the last one kept)."""
    folder = tmp_path_factory.mktemp("teacher") / "run"
    assert run_in_process(["algo=reinforce_pp", "reward=gold"], folder, cache_dir)["status"] == "completed"
    return folder


def files(folder) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def set_status(folder, status):
    set_summary(folder, status=status)


def set_summary(folder, **said):
    path = folder / "summary.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | said))


def truncate(path):
    path.write_bytes(path.read_bytes()[:1000])


def no_checkpoint(folder):
    """As train.keep_checkpoint=false leaves a completed run."""
    shutil.rmtree(folder / "checkpoints")
    path = folder / "summary.json"
    summary = json.loads(path.read_text()) | {"checkpoint": "deleted (train.keep_checkpoint=false)"}
    path.write_text(json.dumps(summary))


RETRAIN = "retrain the teacher in another folder, or choose another teacher"
# the run's command (run_in_process keeps no Hydra record: the rule; twenty-first hunt, case 23: none said)
FINISH = "rerun the same command with hydra.run.dir={}"
HELD: list = []  # the folder locks the "live" case holds, as a running teacher's process does
CASES = {  # name -> (what is done to a copy of the teacher, the line after "algo.teacher=<folder>: ")
    "running": (
        lambda t: set_status(t, "running"),
        lambda t: (
            "that run has not completed (its summary.json says running); a teacher is a finished run: "
            f"finish it ({FINISH.format(t)}), or choose a completed run"
        ),
    ),
    "interrupted": (
        lambda t: set_status(t, "interrupted"),
        lambda t: (
            "that run has not completed (its summary.json says interrupted); a teacher is a finished "
            f"run: finish it ({FINISH.format(t)}), or choose a completed run"
        ),
    ),
    # fifty-first hunt, case 42: stopped by the user's reward, whose fix a plain resume refuses
    "failed_in_your_code": (
        lambda t: set_summary(
            t,
            status="failed",
            error="reward.path=late:fn: raised ValueError; fix it, then "
            "rerun the same command with hydra.run.dir=x resume_changed_inputs=true",
        ),
        lambda t: (
            "that run has not completed (its summary.json says failed); a teacher is a finished "
            f"run: finish it ({FINISH.format(t)} resume_changed_inputs=true), or choose a completed run"
        ),
    ),
    "no_summary": (
        lambda t: (t / "summary.json").unlink(),
        lambda t: (
            "that run has not completed (it has no summary.json); a teacher is a finished "
            "run: finish it with its own command, or choose a completed run"
        ),
    ),
    # fourth hunt: a torn summary.json said "finish it with its own command", which refuses the folder
    "summary_torn": (
        lambda t: (t / "summary.json").write_text("{garbage"),
        lambda t: (
            "its summary.json is damaged (Expecting property name enclosed in double quotes: line 1 column "
            f"2 (char 1)), so whether the run completed is unknown; a teacher is a finished run: {RETRAIN}"
        ),
    ),
    # eighth hunt: a summary.json that is a folder said "it has no summary.json ... finish it"
    "summary_folder": (
        lambda t: ((t / "summary.json").unlink(), (t / "summary.json").mkdir()),
        lambda t: (
            "its summary.json is damaged (a folder, not a file), so whether the run completed is unknown; "
            f"a teacher is a finished run: {RETRAIN}"
        ),
    ),
    # eleventh hunt: a torn config.resolved.yaml was a 29-frame yaml.parser.ParserError; one deleted or a
    # folder read as "its checkpoint's policy does not fit this run's model"
    "config_torn": (
        lambda t: (t / "config.resolved.yaml").write_text("model: [unclosed"),
        lambda t: (
            "that run's config.resolved.yaml is damaged (ParserError: while parsing a flow sequence), so "
            "whether it trained this run's model and task is unknown; put it back, or distil from a model "
            "folder saved by save_pretrained"
        ),
    ),
    # twelfth hunt: one without its task read as "its checkpoint's policy does not fit this run's model"
    "config_no_task": (
        lambda t: (t / "config.resolved.yaml").write_text("model: {}\nseed: 0\n"),
        lambda t: (
            "that run's config.resolved.yaml is damaged (it records no task), so whether it trained this "
            "run's model and task is unknown; put it back, or distil from a model folder saved by "
            "save_pretrained"
        ),
    ),
    "config_gone": (
        lambda t: (t / "config.resolved.yaml").unlink(),
        lambda t: (
            "that run's config.resolved.yaml is gone, so whether it trained this run's model and task is "
            "unknown; put it back, or distil from a model folder saved by save_pretrained"
        ),
    ),
    "config_folder": (
        lambda t: ((t / "config.resolved.yaml").unlink(), (t / "config.resolved.yaml").mkdir()),
        lambda t: (
            "that run's config.resolved.yaml is a folder, not a file, so whether it trained this run's model "
            "and task is unknown; put it back, or distil from a model folder saved by save_pretrained"
        ),
    ),
    "checkpoint_missing": (
        lambda t: state(t).unlink(),
        lambda t: (
            f"its final checkpoint {state_name(t)} (named by {t / 'checkpoints' / 'last'}) is missing; "
            f"the teacher's policy is lost with it: {RETRAIN}"
        ),
    ),
    "checkpoint_damaged": (
        lambda t: truncate(state(t)),
        lambda t: (
            f"its final checkpoint {state_name(t)} is unreadable (File is not a zip file); the "
            f"teacher's policy is lost with it: {RETRAIN}"
        ),
    ),
    # twentieth hunt, case 16: "has no checkpoint ... retrain the teacher" for a pointer lost
    "pointer_gone": (
        lambda t: (t / "checkpoints" / "last").unlink(),
        lambda t: (
            f"{t / 'checkpoints' / 'last'} is missing, but state-00000003.pt, the checkpoint of its final "
            f"step, is there: point at it (echo state-00000003.pt > {t / 'checkpoints' / 'last'}), then rerun"
        ),
    ),
    # fifth hunt of 2026-12-04: with its config's train.steps unreadable too, "that run folder
    # has no checkpoint ... train.keep_checkpoint=true keeps it" beside state-00000003.pt
    "pointer_gone_steps_unreadable": (
        lambda t: (
            (t / "checkpoints" / "last").unlink(),
            (t / "config.resolved.yaml").write_text(
                (t / "config.resolved.yaml").read_text().replace("  steps: 3\n", "  steps: three\n", 1)
            ),
        ),
        lambda t: (
            f"{t / 'checkpoints' / 'last'} is missing, but {t / 'checkpoints'} holds state-00000003.pt: "
            f"point at the final step's (echo state-00000003.pt > {t / 'checkpoints' / 'last'}), then rerun"
        ),
    ),
    # thirty-ninth hunt, case 16: "the teacher's policy is lost with it: retrain" for a pointer of bytes
    "pointer_not_text": (
        lambda t: (t / "checkpoints" / "last").write_bytes(b"\xff\xfe garbage\n"),
        lambda t: (
            f"{t / 'checkpoints' / 'last'} holds bytes that are not text, but state-00000003.pt, the "
            f"checkpoint of its final step, is there: point at it (echo state-00000003.pt > "
            f"{t / 'checkpoints' / 'last'}), then rerun"
        ),
    ),
    "pointer_empty": (
        lambda t: (t / "checkpoints" / "last").write_text(""),
        lambda t: (
            f"{t / 'checkpoints' / 'last'} is empty, but state-00000003.pt, the checkpoint of its final "
            f"step, is there: point at it (echo state-00000003.pt > {t / 'checkpoints' / 'last'}), then rerun"
        ),
    ),
    "pointer_wrong": (
        lambda t: (t / "checkpoints" / "last").write_text("state-00000002.pt"),
        lambda t: (
            f"{t / 'checkpoints' / 'last'} names state-00000002.pt, which is gone, but state-00000003.pt, "
            f"the checkpoint of its final step, is there: point at it (echo state-00000003.pt > "
            f"{t / 'checkpoints' / 'last'}), then rerun"
        ),
    ),
    # thirty-third hunt, case 26: an earlier step's checkpoint named (restored from a backup): it taught
    "pointer_earlier": (
        lambda t: (
            shutil.copy(state(t), t / "checkpoints" / "state-00000002.pt"),
            (t / "checkpoints" / "last").write_text("state-00000002.pt"),
        ),
        lambda t: (
            f"{t / 'checkpoints' / 'last'} names the checkpoint of step 2, but the run completed 3 steps: a "
            f"teacher's policy is its final checkpoint; point at it (echo state-00000003.pt > "
            f"{t / 'checkpoints' / 'last'}), then rerun"
        ),
    ),
    # thirty-fourth hunt, case 23: running now, its folder held: its command would be refused ("in use")
    "live": (
        lambda t: (set_status(t, "running"), HELD.append(claim(t))),
        lambda t: (
            f"that run is running now ({holder(t)}); a teacher is a finished run: wait for it to complete, "
            "then rerun this command, or choose a completed run"
        ),
    ),
    # thirty-fourth hunt, case 17: that file restored under the final step's name (`last` as it was)
    "file_earlier": (
        lambda t: restored_earlier(state(t)),
        lambda t: (
            f"{state_name(t)} holds the checkpoint of step 2, not of step 3 its name says (a file restored "
            f"over it?): a teacher's policy is its final checkpoint; {RETRAIN}"
        ),
    ),
    # fifty-first hunt, case 24: another run's checkpoint of the same step copied in (its seed 1): it taught
    "another_runs": (
        lambda t: another_runs(state(t)),
        lambda t: (
            f"{state_name(t)} was trained by another run (seed 1, config digest 0123456789abcdef) than "
            f"the one this folder records ({t / 'config.resolved.yaml'}): a teacher's policy is its own "
            f"run's final checkpoint; put that run's back, or {RETRAIN}"
        ),
    ),
    # hunt of 2026-12-04, c72: a named pipe where the run wrote its summary.json: the student hung
    "summary_pipe": (
        lambda t: ((t / "summary.json").unlink(), os.mkfifo(t / "summary.json")),
        lambda t: f"{t / 'summary.json'} is a named pipe, where a run writes a file; name a run folder",
    ),
    "last_pipe": (
        lambda t: ((t / "checkpoints" / "last").unlink(), os.mkfifo(t / "checkpoints" / "last")),
        lambda t: (
            f"{t / 'checkpoints' / 'last'} is a named pipe, where a run writes a file; name a run folder"
        ),
    ),
    "no_checkpoint": (
        no_checkpoint,
        lambda t: (
            f"that run folder has no checkpoint ({t / 'checkpoints' / 'last'} is missing: it completed "
            "with train.keep_checkpoint=false, which deletes it); a teacher's policy is its final "
            f"checkpoint: {RETRAIN} (train.keep_checkpoint=true keeps it)"
        ),
    ),
}


def restored_earlier(file):
    """The final checkpoint as an earlier step's file restored under its name would hold it: step 2's."""
    import torch

    saved = torch.load(file, weights_only=False)
    torch.save(saved | {"step": 2}, file)


def another_runs(file):
    """The final checkpoint as another run's of the same step would hold it: its seed and config digest."""
    import torch

    saved = torch.load(file, weights_only=False)
    torch.save(saved | {"identity": saved["identity"] | {"seed": 1, "config": "0123456789abcdef"}}, file)


def as_trained_with(file, config):
    """The final checkpoint as a run of `config` would have saved it (its identity's config digest)."""
    import torch

    from align_lab.run.resumable import config_digest, resumable_part

    saved = torch.load(file, weights_only=False)
    identity = saved["identity"] | {"config": config_digest(resumable_part(config))}
    torch.save(saved | {"identity": identity}, file)


def state(folder):
    return folder / "checkpoints" / (folder / "checkpoints" / "last").read_text().strip()


def state_name(folder):
    return folder / "checkpoints" / "state-00000003.pt"


@pytest.mark.fast
@pytest.mark.parametrize("case", list(CASES))
def test_a_teacher_run_not_finished_or_without_its_checkpoint_is_one_line_naming_it(
    case, teacher, tmp_path, cache_dir
):
    """Before: a running teacher was accepted (another teacher for the same command later); a missing or
    damaged checkpoint said "delete <teacher>/checkpoints to start the run again"; none: a traceback."""
    copy = tmp_path / "teacher"
    shutil.copytree(teacher, copy)
    damage, line = CASES[case]
    damage(copy)
    kept = files(copy)
    with pytest.raises(ConfigError) as e:
        run_in_process([*STUDENT, f"algo.teacher={copy}"], tmp_path / "student", cache_dir)
    assert str(e.value) == f"algo.teacher={copy}: {line(copy)}"
    assert f"delete {copy}" not in str(e.value) and "\n" not in str(e.value)  # never: it is the teacher
    assert files(copy) == kept and not (tmp_path / "student").exists()  # nothing touched or written


def test_a_folder_neither_a_run_nor_a_saved_model_is_one_line(tmp_path, cache_dir):
    """Before: admitted, then a traceback at the teacher stage."""
    (tmp_path / "notes").mkdir()
    with pytest.raises(ConfigError) as e:
        run_in_process([*STUDENT, f"algo.teacher={tmp_path / 'notes'}"], tmp_path / "student", cache_dir)
    assert str(e.value) == (
        f"algo.teacher={tmp_path / 'notes'}: the folder holds no checkpoint (no config.json or tokenizer "
        "files); pass a folder saved by save_pretrained"
    )
    (tmp_path / "notes" / "study.json").write_text("{}")  # a sweep's folder: said 'holds no checkpoint'
    with pytest.raises(ConfigError) as e:
        run_in_process([*STUDENT, f"algo.teacher={tmp_path / 'notes'}"], tmp_path / "student", cache_dir)
    assert (
        str(e.value)
        == f"algo.teacher={tmp_path / 'notes'}: a study folder, not a run; name one of its runs (none yet)"
    )
    # a README-style `-m` sweep's folder (Hydra's multirun.yaml, no study.json): the fourth hunt found it
    # said 'holds no checkpoint ... pass a folder saved by save_pretrained'
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    with pytest.raises(ConfigError) as e:
        run_in_process([*STUDENT, f"algo.teacher={sweep}"], tmp_path / "student", cache_dir)
    assert str(e.value) == f"algo.teacher={sweep}: a study folder, not a run; name one of its runs (none yet)"
    for i in range(4):  # its runs: three named, then how many more (it read as the whole list: t17)
        (sweep / f"{i}_ppo_seed{i}").mkdir()
        (sweep / f"{i}_ppo_seed{i}" / "summary.json").write_text("{}")
    with pytest.raises(ConfigError) as e:
        run_in_process([*STUDENT, f"algo.teacher={sweep}"], tmp_path / "student", cache_dir)
    assert str(e.value).endswith("name one of its runs (0_ppo_seed0, 1_ppo_seed1, 2_ppo_seed2 and 1 more)")
    # thirty-ninth hunt, case 46: a reward model's folder, distilled from with tied embeddings
    rm = tmp_path / "rm"
    rm.mkdir()
    (rm / "config.json").write_text('{"architectures": ["LlamaForSequenceClassification"]}')
    with pytest.raises(ConfigError) as e:
        run_in_process([*STUDENT, f"algo.teacher={rm}"], tmp_path / "student", cache_dir)
    assert str(e.value) == (
        f"algo.teacher={rm}: a model that scores (LlamaForSequenceClassification), not one that writes: a "
        "teacher is a language model (a run folder, or a ...ForCausalLM saved by save_pretrained); a reward "
        "model is reward=hf_rm's"
    )
    (tmp_path / "notes.txt").write_text("")  # a file: said 'no such directory' (second fresh hunt)
    with pytest.raises(ConfigError) as e:
        run_in_process([*STUDENT, f"algo.teacher={tmp_path / 'notes.txt'}"], tmp_path / "student", cache_dir)
    assert str(e.value) == (
        f"algo.teacher={tmp_path / 'notes.txt'}: a file, not a directory (a run folder, or a checkpoint "
        "saved by save_pretrained)"
    )


def saved_model(folder: Path, vocab_size: int, tokenizer=None) -> Path:
    """A small real Llama saved by save_pretrained (and `tokenizer` beside it, where given)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, **shape)).save_pretrained(str(folder))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))
    return folder


def test_a_saved_teacher_of_another_vocabulary_is_refused_at_admission_for_a_toy_world_student(tmp_path):
    """Hunt of 2026-12-04, t6: a toy-world student's teacher was checked at its stage, after the SFT and
    reward-model stages had trained (20 s; SmolLM2's folder: 49152 entries against the toy world's 45).
    Now at admission, against the tokenizer the stage trains from the task, with nothing built; a teacher
    of that very vocabulary is admitted."""
    from align_lab.models.tokenizer import word_level
    from align_lab.run.admission import admit_spec, spec_from_config
    from tests.conftest import SMALL, compose

    cache = tmp_path / "cache"
    small = [o for o in SMALL if not o.startswith("reward.")]  # as run_in_process: reward=gold has none

    def spec(teacher: Path):
        return spec_from_config(*compose([*small, f"cache_dir={cache}", *STUDENT, f"algo.teacher={teacher}"]))

    toy = word_level(spec(tmp_path).task.corpus())  # the student's tokenizer, as its stage trains it
    other = word_level(["words", "of", "another", "world"])
    cases = {  # teacher folder -> its vocabulary's problem
        saved_model(tmp_path / "other", len(other), other): f"its vocabulary has {len(other)} entries",
        saved_model(tmp_path / "no_tokenizer", 49152): "its vocabulary has 49152 entries",
    }
    for teacher, problem in cases.items():
        with pytest.raises(ConfigError) as e:
            admit_spec(spec(teacher), tmp_path / "student")
        assert str(e.value) == (
            f"algo.teacher={teacher}: the teacher does not share the policy's tokenizer ({problem}, the "
            f"policy's {len(toy)}); pick one that does"
        )
        assert not cache.exists() and not (tmp_path / "student").exists()  # nothing built, nothing written
    own = saved_model(tmp_path / "own", len(toy), toy)
    assert admit_spec(spec(own), tmp_path / "student") is not None  # a teacher of the toy world's tokens


def test_a_runs_checkpoints_folder_or_the_run_itself_as_teacher_is_one_line_naming_the_right_folder(
    tmp_path, cache_dir
):
    """Before: `<teacher>/checkpoints` (its run's checkpoints, not the run) and the student's own
    hydra.run.dir (a new run's empty folder, or its own run resumed) said `the folder holds no
    checkpoint`, or `that run has not completed`."""
    run = tmp_path / "teacher"
    (run / "checkpoints").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"status": "completed", "config_digest": "abc"}))
    (run / "checkpoints" / "last").write_text("state-00000003.pt")
    for given in (run / "checkpoints", f"{run}/checkpoints/"):
        with pytest.raises(ConfigError) as e:
            run_in_process([*STUDENT, f"algo.teacher={given}"], tmp_path / "student", cache_dir)
        assert str(e.value) == (
            f"algo.teacher={given}: the checkpoints folder of the run {run}; a teacher is named by its run "
            f"folder: pass algo.teacher={run}"
        )
    student = tmp_path / "student"
    student.mkdir()  # as Hydra makes it before the run is admitted
    for folder in (student, run):  # a new run's folder; a run of this command's there, stopped
        with pytest.raises(ConfigError) as e:
            run_in_process([*STUDENT, f"algo.teacher={folder}"], folder, cache_dir)
        assert str(e.value) == (
            f"algo.teacher={folder}: that is this run's own folder (hydra.run.dir); a run cannot be its own "
            "teacher: name another, completed run"
        )


@pytest.mark.fast
def test_a_student_resumed_after_its_teacher_changed_is_refused_naming_the_teacher(
    teacher, tmp_path, cache_dir
):
    """The student's checkpoint holds its teacher's digest (its final checkpoint's): a teacher trained
    again in its folder is another teacher, and a resume would distil from two."""
    import torch

    from align_lab.tracking import JsonlTracker

    copy = tmp_path / "teacher"
    shutil.copytree(teacher, copy)
    student = tmp_path / "student"
    keys = [*STUDENT, f"algo.teacher={copy}", "train.steps=4"]
    original = JsonlTracker.log

    def log_then_die(self, metrics, step):
        original(self, metrics, step)
        if step == 3:  # the student's last checkpoint is step 2's
            raise Interrupt

    JsonlTracker.log = log_then_die
    try:
        with pytest.raises(Interrupt):
            run_in_process(keys, student, cache_dir)
    finally:
        JsonlTracker.log = original
    saved = torch.load(state(student), weights_only=False)["identity"]["inputs"]["algo.teacher"]
    assert saved["file"] == str(copy / "checkpoints")
    checkpoint = torch.load(state(copy), weights_only=False)  # the teacher trained again: other weights
    weights = checkpoint["objects"]["policy"]
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0
    torch.save(checkpoint, state(copy))
    kept = files(student)
    # fifteenth hunt: the line offered resume_changed_inputs=true, which said "resuming", then the teacher
    # stage's check refused it: a student resumes on the teacher it began with, the flag or not
    for allowed in ([], ["resume_changed_inputs=true"]):
        with pytest.raises(ConfigError) as e:
            run_in_process([*keys, *allowed], student, cache_dir)
        message = str(e.value)
        was = saved["sha256"][:8]
        assert message.startswith(f"algo.teacher: {copy / 'checkpoints'} (sha256 {was}, now ")
        assert message.endswith(
            f"changed since the checkpoint in {student / 'checkpoints'} was written; a resume keeps the "
            "stages its checkpoint was trained on, and algo.teacher is one (the teacher stage: a student "
            "goes on learning from the teacher it began with), whatever resume_changed_inputs says: put it "
            "back as it was, or choose another hydra.run.dir"
        )
        assert files(student) == kept


def test_a_student_whose_teacher_moved_is_told_to_link_it_back_and_then_resumes(teacher, tmp_path, cache_dir):
    """Fifteenth hunt: the teacher folder moved between a kill and the resume; with the new path the line
    asked for the old one, which was gone, or to delete the student's checkpoints. The link it names now
    resumes the student."""
    copy, moved = tmp_path / "teacher", tmp_path / "moved"
    shutil.copytree(teacher, copy)
    student = tmp_path / "student"
    keys = [*STUDENT, "train.steps=4"]
    dies_after_step_2(lambda: run_in_process([*keys, f"algo.teacher={copy}"], student, cache_dir))
    copy.rename(moved)
    with pytest.raises(ConfigError) as e:
        run_in_process([*keys, f"algo.teacher={moved}"], student, cache_dir)
    assert str(e.value) == (
        f"algo.teacher={moved}: the checkpoint in {student / 'checkpoints'} was trained with "
        f"algo.teacher={copy}; {copy} is no longer there: to resume, move it back or link it there "
        f"(ln -s {moved} {copy}), or delete {student / 'checkpoints'} to start again"
    )
    copy.symlink_to(moved)
    assert run_in_process([*keys, f"algo.teacher={copy}"], student, cache_dir)["status"] == "completed"


@pytest.mark.fast
def test_a_teacher_named_by_a_hub_id_offline_is_one_line_at_admission(tmp_path, cache_dir, monkeypatch):
    """algo.teacher=nope (not a local path) with no network: a 56-line traceback at the teacher stage and
    a failed run folder (third fresh hunt, issue 73); now refused at admission as model.name_or_path is."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as e:
        run_in_process([*STUDENT, "algo.teacher=nope"], tmp_path / "student", cache_dir)
    assert str(e.value).startswith("algo.teacher=nope: not a local directory, and fetching it from the ")
    assert not (tmp_path / "student").exists()


@pytest.mark.fast
def test_a_teacher_run_of_another_model_size_names_the_key_that_differs(teacher, tmp_path, cache_dir):
    """Issue 73 fourth hunt: a teacher run of 3 layers for a 2-layer student said `does not share this
    run's tokenizer and model` (the tokenizer is shared: its checkpoint is read into the student's model)."""
    import yaml

    copy = tmp_path / "teacher"
    shutil.copytree(teacher, copy)
    config = yaml.safe_load((copy / "config.resolved.yaml").read_text())
    ours = config["model"]["num_layers"]
    config["model"]["num_layers"] = ours + 1
    (copy / "config.resolved.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as e:
        run_in_process([*STUDENT, f"algo.teacher={copy}"], tmp_path / "student", cache_dir)
    assert str(e.value) == (
        f"algo.teacher={copy}: that run's model.num_layers is {ours + 1}, this run's {ours}: a teacher run's "
        "checkpoint is read into this run's model (its size too); distil from a run of the same model, or "
        "from a model folder saved by save_pretrained"
    )
    # thirty-first hunt, case 50: a key of how the run uses the machine is no other model
    config["model"] |= {"num_layers": ours, "max_threads": config["model"]["max_threads"] + 1}
    (copy / "config.resolved.yaml").write_text(yaml.safe_dump(config))
    as_trained_with(state(copy), config)  # the checkpoint of a run at that max_threads records it too
    from align_lab.run.admission import spec_from_config
    from align_lab.run.teacher import check_teacher
    from tests.conftest import SMALL, compose

    small = [k for k in SMALL if not k.startswith("reward.")]  # STUDENT's reward=gold has none of them
    keys = [*small, *STUDENT, f"algo.teacher={copy}", f"cache_dir={cache_dir}"]
    check_teacher(spec_from_config(*compose(keys)))  # not refused


def test_a_lora_run_teaches_as_the_model_it_sampled_from(tmp_path, cache_dir):
    """Twentieth hunt, case 18: a LoRA run as the teacher was refused after the stages, "its checkpoint's
    policy does not fit this run's model" (its adapters' keys). Its base and adapters are merged now:
    the teacher stage's weights are W + (alpha / r) B A of the teacher's final checkpoint."""
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "lora_teacher"
    lora = ["algo=reinforce_pp", "reward=gold", "lora.enabled=true", "algo.lr=0.01"]
    assert run_in_process(lora, folder, cache_dir)["status"] == "completed"
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        summary = run_in_process([*STUDENT, f"algo.teacher={folder}"], tmp_path / "student", cache_dir)
    assert summary["status"] == "completed"
    # twenty-first hunt, case 11: transformers' two-line FutureWarning (peft reads a deprecated alias)
    assert not [w for w in said if "is_gradient_checkpointing" in str(w.message)], said
    policy = torch.load(state(folder), weights_only=False)["objects"]["policy"]
    layer = "base_model.model.model.layers.0.self_attn.q_proj"
    a, b = policy[f"{layer}.lora_A.default.weight"], policy[f"{layer}.lora_B.default.weight"]
    assert b.abs().max() > 0  # the adapters trained: a teacher without them would differ
    entry = Path(cache_dir) / "teacher" / summary["stages"]["teacher"]["key"]
    taught = load_file(entry / "model.safetensors")
    merged = policy[f"{layer}.base_layer.weight"] + (16.0 / 8) * b @ a
    torch.testing.assert_close(taught["model.layers.0.self_attn.q_proj.weight"], merged)


def test_a_deepspeed_run_teaches_with_the_weights_its_engine_saved(tmp_path, cache_dir, capfd):
    """Twentieth hunt, case 36: a DeepSpeed run as the teacher was refused after the stages, "its
    checkpoint's policy does not fit this run's model": its state holds the engine's tag, not weights.
    Its weights are read from the engine's checkpoint: the module's state (ZeRO-0, -2: compared here),
    the partitions gathered by DeepSpeed's zero_to_fp32 (ZeRO-3: the ZeRO-2 teacher's up to float order)."""
    import torch
    from safetensors.torch import load_file

    taught = {}
    for stage in (0, 2, 3):
        folder = tmp_path / f"ds{stage}"
        teacher = [
            "algo=reinforce_pp",
            "reward=gold",
            "hardware.backend=deepspeed",
            f"hardware.zero_stage={stage}",
        ]
        assert run_in_process(teacher, folder, cache_dir)["status"] == "completed"
        summary = run_in_process(
            [*STUDENT, f"algo.teacher={folder}"], tmp_path / f"student{stage}", cache_dir
        )
        assert summary["status"] == "completed"
        # twenty-first hunt, case 11: zero_to_fp32's "Reconstructed fp32 state dict with 20 params ..."
        assert "Reconstructed" not in capfd.readouterr().out
        entry = Path(cache_dir) / "teacher" / summary["stages"]["teacher"]["key"]
        taught[stage] = load_file(entry / "model.safetensors")
        if stage < 3:
            tag = torch.load(state(folder), weights_only=False)["objects"]["policy"]["tag"]
            saved = folder / "checkpoints" / "deepspeed" / tag / "mp_rank_00_model_states.pt"
            module = torch.load(saved, weights_only=False)["module"]
            for name, weight in taught[stage].items():
                torch.testing.assert_close(weight, module[name], rtol=0, atol=0, msg=name)
    for name, weight in taught[3].items():
        torch.testing.assert_close(weight, taught[2][name], rtol=1e-4, atol=1e-5, msg=name)
