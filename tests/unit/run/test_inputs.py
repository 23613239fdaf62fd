"""run/inputs.py: which of a config's values are the user's inputs a resume checks (issue 73 item 1): an
environment class of the user's by its module's file, a remote reward by its URL, a file by its bytes;
never align_lab's own code, an installed package, or the cache folder a run writes."""

from __future__ import annotations

import hashlib
import importlib
import sys

import pytest

from align_lab.run.inputs import changed_inputs, run_inputs


def test_an_env_class_of_yours_and_a_remote_url_are_inputs_and_align_labs_code_is_not(tmp_path, monkeypatch):
    (tmp_path / "maze_env_of_yours.py").write_text("class Maze:\n    pass\n")
    (tmp_path / "notes.txt").write_text("a file\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("maze_env_of_yours")  # the run's build imported it
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "config.json").write_text("{}")  # a model saved by save_pretrained
    (tmp_path / "plain").mkdir()  # any other folder is not read whole
    config = {
        "env": {"_target_": "maze_env_of_yours.Maze"},
        "reward": {"_target_": "align_lab.rewards.remote.RemoteReward", "url": "http://scorer:8000/score"},
        "task": {"_target_": "align_lab.tasks.toy_arith.ToyArith", "path": str(tmp_path / "notes.txt")},
        "algo": {"_target_": "torch.nn.Linear"},  # installed: its version is the stage keys'
        "cache_dir": str(tmp_path),  # written, not read
        "model": {"cache_dir": str(tmp_path), "name_or_path": str(tmp_path / "saved")},
        "sft": {"folder": str(tmp_path / "plain")},
    }
    found = run_inputs(config)
    assert sorted(found) == ["env._target_", "model.name_or_path", "reward.url", "task.path"]
    source = (tmp_path / "maze_env_of_yours.py").read_bytes()
    assert found["env._target_"] == {
        "file": str(tmp_path / "maze_env_of_yours.py"),
        "sha256": hashlib.sha256(source).hexdigest()[:16],
    }
    url = b"http://scorer:8000/score"
    assert found["reward.url"] == {"file": url.decode(), "sha256": hashlib.sha256(url).hexdigest()[:16]}
    assert found["task.path"]["sha256"] == hashlib.sha256(b"a file\n").hexdigest()[:16]


def test_a_folder_a_component_of_yours_names_is_an_input_by_its_files_names_sizes_and_times(
    tmp_path, monkeypatch
):
    """Thirty-seventh hunt, case 49: a scorer class of the user's reading a partitioned parquet folder its
    config names (`source: {_target_: mod.Scorer, table: /data/cfgdir}`), a file in it rewritten between a
    kill and the resume: resumed on the new table in silence, where a file named so is refused. A folder
    under another key (sft.folder, a cache) is not read; one of more than MAX_FILES files neither."""
    import os

    from align_lab import user_folders

    table = tmp_path / "cfgdir"
    (table / "year=2024").mkdir(parents=True)
    (table / "year=2024" / "part-0.parquet").write_bytes(b"PAR1 one")
    config = {"reward": {"components": {"x": {"source": {"table": str(table)}}}}, "sft": {"x": str(table)}}
    before = run_inputs(config)
    assert sorted(before) == ["reward.components.x.source.table"]
    assert before["reward.components.x.source.table"]["file"] == str(table)
    (table / "year=2024" / "part-0.parquet").write_bytes(b"PAR1 two")
    os.utime(table / "year=2024" / "part-0.parquet", ns=(1, 1))
    assert changed_inputs(before, run_inputs(config)) != {}
    monkeypatch.setattr(user_folders, "MAX_FILES", 0)  # a dataset's tree: not listed at each resume
    assert run_inputs(config) == {}


def test_only_inputs_both_name_with_other_digests_are_changed():
    a, b = {"file": "f", "sha256": "aaaa"}, {"file": "f", "sha256": "bbbb"}
    assert changed_inputs(None, {"task.path": a}) == {}  # a checkpoint written before input digests
    assert changed_inputs({"task.path": a}, {"task.path": a, "reward.url": b}) == {}
    assert changed_inputs({"task.path": a, "x": a}, {"task.path": b}) == {"task.path": (a, b)}


def test_a_helper_your_module_imports_is_digested_with_it(tmp_path, monkeypatch):
    """Issue 73 hunt: reward.path=hunt_reward_of_yours:score whose module does `from hunt_helper_of_yours
    import SCALE`; the helper edited (SCALE 10 -> 1), the same command resumed in silence (only the
    module's own file was digested). Its helpers are digested with it, and a change of either is one."""
    import sys

    (tmp_path / "hunt_helper_of_yours.py").write_text("SCALE = 10\n")
    (tmp_path / "hunt_reward_of_yours.py").write_text(
        "import json\n\nfrom hunt_helper_of_yours import SCALE\n\n"
        "def score(prompts, responses):\n    return [len(r) / SCALE for r in responses]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("hunt_reward_of_yours", "hunt_helper_of_yours"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.import_module("hunt_reward_of_yours")
    config = {"reward": {"path": "hunt_reward_of_yours:score"}}
    before = run_inputs(config)["reward.path"]
    assert before["file"] == f"{tmp_path / 'hunt_reward_of_yours.py'} (and hunt_helper_of_yours.py)"
    (tmp_path / "hunt_helper_of_yours.py").write_text("SCALE = 1\n")
    monkeypatch.delitem(sys.modules, "hunt_helper_of_yours")  # the resume's new process imports it anew
    after = run_inputs(config)["reward.path"]
    assert changed_inputs({"reward.path": before}, {"reward.path": after}) == {"reward.path": (before, after)}
    # a module using no module of yours keeps the digest of its own file (checkpoints written before)
    (tmp_path / "hunt_alone_of_yours.py").write_text("import json\n\ndef score(p, r):\n    return r\n")
    importlib.import_module("hunt_alone_of_yours")
    alone = run_inputs({"reward": {"path": "hunt_alone_of_yours:score"}})["reward.path"]
    source = (tmp_path / "hunt_alone_of_yours.py").read_bytes()
    assert alone["sha256"] == hashlib.sha256(source).hexdigest()[:16]


def test_a_module_and_its_helper_replaced_by_links_to_identical_copies_are_the_same_input(
    tmp_path, monkeypatch
):
    """51st hunt, case 32: a verifier module with a helper, replaced between a kill and the resume by a
    link to an identical copy elsewhere, was refused as changed (the digest held where links led); a copy
    that differs still is one."""
    (tmp_path / "hunt_link_helper.py").write_text("SCALE = 10\n")
    (tmp_path / "hunt_link_mod.py").write_text(
        "from hunt_link_helper import SCALE\n\ndef score(p, r):\n    return [len(x) / SCALE for x in r]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("hunt_link_mod", "hunt_link_helper"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.import_module("hunt_link_mod")
    config = {"task": {"verifier": "hunt_link_mod:score"}}
    before = run_inputs(config)
    (tmp_path / "elsewhere").mkdir()
    for name in ("hunt_link_mod.py", "hunt_link_helper.py"):
        copy = tmp_path / "elsewhere" / name
        copy.write_bytes((tmp_path / name).read_bytes())
        (tmp_path / name).unlink()
        (tmp_path / name).symlink_to(copy)
    for name in ("hunt_link_mod", "hunt_link_helper"):  # the resume's new process imports them anew
        monkeypatch.delitem(sys.modules, name)
    importlib.import_module("hunt_link_mod")
    assert changed_inputs(before, run_inputs(config)) == {}
    (tmp_path / "elsewhere" / "hunt_link_helper.py").write_text("SCALE = 1\n")
    monkeypatch.delitem(sys.modules, "hunt_link_helper")
    assert list(changed_inputs(before, run_inputs(config))) == ["task.verifier"]


@pytest.mark.parametrize(
    "body",
    [
        "    import hunt_lazy_helper\n    return [len(r) / hunt_lazy_helper.SCALE for r in responses]\n",
        "    import importlib\n    h = importlib.import_module('hunt_lazy_helper')\n"
        "    return [len(r) / h.SCALE for r in responses]\n",
    ],
)
def test_a_helper_imported_in_the_functions_body_is_digested_before_its_first_call(
    tmp_path, monkeypatch, body
):
    """Issue 73 fourth hunt: a reward function that imports its helper inside its body (`import helper`,
    or importlib.import_module('helper')); the helper edited between a kill and the same command, the run
    resumed in silence (0.29 -> 3.38 reward): the helper, not imported when the inputs are digested, was
    not one the run used. It is found where it would be imported from, without running it."""
    import sys

    (tmp_path / "hunt_lazy_helper.py").write_text("SCALE = 10\n")
    (tmp_path / "hunt_lazy_reward.py").write_text(f"def score(prompts, responses):\n{body}")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("hunt_lazy_reward", "hunt_lazy_helper"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.import_module("hunt_lazy_reward")
    config = {"reward": {"path": "hunt_lazy_reward:score"}}
    before = run_inputs(config)["reward.path"]
    assert before["file"] == f"{tmp_path / 'hunt_lazy_reward.py'} (and hunt_lazy_helper.py)"
    assert "hunt_lazy_helper" not in sys.modules  # found, not run
    (tmp_path / "hunt_lazy_helper.py").write_text("SCALE = 1\n")
    assert run_inputs(config)["reward.path"]["sha256"] != before["sha256"]


def test_a_module_imported_from_a_zip_is_digested_by_its_archive(tmp_path, monkeypatch):
    """Issue 73 eighth hunt: a reward module in a zip on PYTHONPATH: its path (<lib>.zip/mod.py) read as a
    file said `<lib>.zip/rz8.py: is a file, not a folder; choose another hydra.run.dir`."""
    import zipfile

    from align_lab.user_code import user_module_file

    archive = tmp_path / "lib8.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zipped_reward8.py", "W = 1.0\n")
    monkeypatch.syspath_prepend(str(archive))
    importlib.import_module("zipped_reward8")
    try:
        assert user_module_file("zipped_reward8") == archive.resolve()
    finally:
        sys.modules.pop("zipped_reward8", None)


def test_a_data_file_given_by_a_link_is_named_by_the_link(tmp_path):
    """Ninth hunt: task.path=qlink9.jsonl, a link swapped from q7 to q20, was refused naming q20.jsonl,
    which did not change."""
    for name in ("q7.jsonl", "q20.jsonl"):
        (tmp_path / name).write_text(f'{{"q": "{name}"}}\n')
    link = tmp_path / "qlink9.jsonl"
    link.symlink_to("q7.jsonl")
    before = run_inputs({"task": {"path": str(link)}})["task.path"]
    link.unlink()
    link.symlink_to("q20.jsonl")
    after = run_inputs({"task": {"path": str(link)}})["task.path"]
    assert before["file"] == after["file"] == str(link) and before["sha256"] != after["sha256"]


def test_a_relative_name_that_now_names_another_file_says_so_not_that_it_changed():
    """Eleventh hunt: `task.path=q.jsonl` started in dA, resumed from dB (another q.jsonl): refused with
    "task.path: /dB/q.jsonl (sha256 199e94ab, now fa293546) changed ... put it back as it was", of a file
    that never changed. The line names both files and where the run started."""
    from align_lab.run.inputs import describe_change

    old = {"file": "/dA/q.jsonl", "sha256": "199e94ab" * 2}
    new = {"file": "/dB/q.jsonl", "sha256": "fa293546" * 2}
    assert describe_change("task.path", old, new) == (
        "task.path: names /dB/q.jsonl now (sha256 fa293546), not /dA/q.jsonl (sha256 199e94ab) as when the "
        "run started (a name read from another folder or PYTHONPATH, or a link pointing elsewhere now: run "
        "the command as it started, with its folder and PYTHONPATH)"
    )
    same_file = {"file": "/dA/q.jsonl", "sha256": "fa293546" * 2}
    assert (
        describe_change("task.path", old, same_file)
        == "task.path: /dA/q.jsonl (sha256 199e94ab, now fa293546)"
    )


def test_a_refusal_for_a_name_that_moved_says_neither_changed_nor_put_it_back(tmp_path):
    """Twelfth hunt: the relative task.path's clause was spliced into "... changed since the checkpoint
    ...; put it back as it was", though neither file changed."""
    from align_lab.config import ConfigError
    from align_lab.run.inputs import check_inputs

    saved = {"task.path": {"file": "/dA/q.jsonl", "sha256": "199e94ab" * 2}}
    mine = {"task.path": {"file": "/dB/q.jsonl", "sha256": "fa293546" * 2}}
    with pytest.raises(ConfigError) as e:
        check_inputs(saved, mine, tmp_path)
    assert str(e.value) == (
        "resume_changed_inputs=false: task.path: names /dB/q.jsonl now (sha256 fa293546), not /dA/q.jsonl "
        "(sha256 199e94ab) as when the run started (a name read from another folder or PYTHONPATH, or a link "
        "pointing elsewhere now: run the command as it started, with its folder and PYTHONPATH), and a "
        "resume would train and evaluate one run on two versions of it; set resume_changed_inputs=true to "
        "resume anyway, or choose another hydra.run.dir"
    )


def test_a_changed_judge_is_said_to_score_the_evaluations_not_to_train(tmp_path):
    """Hunt of 2026-12-04, c56: a judge's weights replaced between a kill and the resume were said as "a
    resume would train one run on two versions of it"; a judge only scores the evaluations."""
    from align_lab.config import ConfigError
    from align_lab.run.inputs import check_inputs

    saved = {"judge.name_or_path": {"file": "/rm", "sha256": "1cee177f" * 2}}
    mine = {"judge.name_or_path": {"file": "/rm", "sha256": "fe4eb198" * 2}}
    with pytest.raises(
        ConfigError, match="a resume would score one run's evaluations on two versions of it; "
    ):
        check_inputs(saved, mine, tmp_path)


def test_a_judges_address_may_change_on_resume_and_an_older_checkpoint_still_resumes(tmp_path):
    """reward.url (and a combined source's) is no part of a run's identity since the thirteenth hunt (a
    moved judge is asked the checkpoint's rows instead); a checkpoint written before, whose config digest
    held the URL, is still the same run's."""
    from types import SimpleNamespace

    from align_lab.config import ConfigError
    from align_lab.run.folder_checks import check_identity
    from align_lab.run.resumable import DIGESTED_BEFORE, resumable_part
    from align_lab.run.summary import config_digest, run_identity

    def config(port: int, combined: bool = False) -> dict:
        url = {"url": f"http://127.0.0.1:{port}/score", "timeout_s": 30}
        reward = {"components": {"judge": {"weight": 1.0, "source": url}}} if combined else url
        return {"algo": {"lr": 1e-3}, "reward": reward, "tracker": "none"}

    for combined in (False, True):
        a, b = (run_identity(SimpleNamespace(config=config(p, combined), seed=0)) for p in (1, 2))
        assert a["config"] == b["config"] and not [k for k in b["inputs"] if k.endswith("url")], combined
    here, there = (run_identity(SimpleNamespace(config=config(p), seed=0)) for p in (1, 2))
    check_identity(here, there, tmp_path)  # the same run, its judge moved
    for digested in DIGESTED_BEFORE:  # before 06f07c6 (the URL in the digest), before the fifteenth hunt
        older = here | {"config": config_digest(resumable_part(config(1), digested=digested))}
        check_identity(older, run_identity(SimpleNamespace(config=config(1), seed=0)), tmp_path)
    slower = config(2) | {"reward": config(2)["reward"] | {"timeout_s": 60, "retries": 5}}
    check_identity(here, run_identity(SimpleNamespace(config=slower, seed=0)), tmp_path)  # fifteenth hunt
    with pytest.raises(ConfigError, match="was trained with another config"):
        check_identity(
            here, run_identity(SimpleNamespace(config=config(1) | {"algo": {"lr": 1.0}}, seed=0)), tmp_path
        )


def test_a_spawned_rank_refuses_a_module_edited_since_the_run_started(tmp_path, monkeypatch):
    """Sixteenth hunt: a reward module edited while rank 0 built the stages was loaded again by name on
    rank 1, which trained on the edit (rank 0 on the original), rc 0."""
    import importlib

    from align_lab.run.inputs import check_same_inputs, run_inputs
    from align_lab.value_checks import UserCodeError

    (tmp_path / "rw16.py").write_text(
        "W = 1.0\n\n\ndef score(prompts, responses):\n    return [W] * len(responses)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("rw16")
    monkeypatch.delitem(sys.modules, "rw16")
    config = {"reward": {"path": "rw16:score"}}
    started = run_inputs(config)
    check_same_inputs(started, config)  # as it was: nothing said
    (tmp_path / "rw16.py").write_text(
        "W = 10.0\n\n\ndef score(prompts, responses):\n    return [W] * len(responses)\n"
    )
    with pytest.raises(UserCodeError) as e:
        check_same_inputs(started, config)
    assert str(e.value).startswith(f"reward.path: {tmp_path / 'rw16.py'} (sha256 ")
    assert str(e.value).endswith(
        "changed since this run started, before its other processes loaded it: one run would train on two "
        "versions of it; put it back as it was"
    )


def test_a_module_moved_with_the_same_bytes_to_a_folder_on_the_path_is_the_same_input(tmp_path, monkeypatch):
    """Seventeenth hunt: a verifier module moved, byte for byte, to a folder on PYTHONPATH was refused as
    `module ver: <old> (sha256 ..., now gone) changed`, though the resume imported the same code."""
    from align_lab.run.inputs import changed_inputs, modules_now
    from align_lab.user_code import file_digest

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    text = "def ver(response, answer, prompt):\n    return 1.0\n"
    (tmp_path / "a" / "mv17.py").write_text(text)
    saved = {
        "module mv17": {
            "file": str(tmp_path / "a" / "mv17.py"),
            "sha256": file_digest(tmp_path / "a" / "mv17.py"),
        }
    }
    (tmp_path / "a" / "mv17.py").rename(tmp_path / "b" / "mv17.py")
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    monkeypatch.delitem(sys.modules, "mv17", raising=False)
    assert changed_inputs(saved, modules_now(saved)) == {}
    (tmp_path / "b" / "mv17.py").write_text(text.replace("1.0", "10.0"))  # moved and changed: still a change
    ((old, new),) = changed_inputs(saved, modules_now(saved)).values()
    assert new["file"] == str(tmp_path / "b" / "mv17.py") and new["sha256"] != old["sha256"]


def test_a_module_edited_after_this_process_imported_it_is_refused_not_digested_as_it_is_now(
    tmp_path, monkeypatch
):
    """Twenty-sixth hunt, case 34: a sweep in one process (Hydra's basic launcher), the reward module
    edited between its runs: the later runs ran the module as first imported (SCALE 1) while recording the
    digest of the edited file (SCALE -100), rc 0. Imported anew (a new process), it is digested as it is."""
    import sys

    from align_lab.value_checks import UserCodeError

    module = tmp_path / "hunt_sweep_reward.py"
    module.write_text("SCALE = 1.0\ndef score(p, r):\n    return [SCALE] * len(r)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hunt_sweep_reward", raising=False)
    importlib.import_module("hunt_sweep_reward")
    config = {"reward": {"path": "hunt_sweep_reward:score"}}
    first = run_inputs(config)["reward.path"]
    module.write_text(module.read_text().replace("1.0", "-100.0"))
    with pytest.raises(UserCodeError) as e:
        run_inputs(config)
    assert str(e.value).startswith(
        f"reward.path=hunt_sweep_reward:score: {module} changed since this process imported it (sha256 "
        f"{first['sha256'][:8]} then, "
    )
    monkeypatch.delitem(sys.modules, "hunt_sweep_reward")
    importlib.import_module("hunt_sweep_reward")  # imported anew: the file as it is now is what runs
    assert run_inputs(config)["reward.path"]["sha256"] != first["sha256"]


def test_a_changed_data_file_a_checkpoints_stages_were_built_from_offers_no_flag_that_fails(tmp_path):
    """Twenty-sixth hunt, case 49: with task.sft=true, an edited data file's refusal offered
    resume_changed_inputs=true, which then ended in the SFT stage's own refusal (the stage is built from
    the file). Where the checkpoint records stages, the line says the resume cannot go on; without, it
    offers the flag, which works."""
    from align_lab.config import ConfigError
    from align_lab.run.inputs import check_inputs

    then = {"task.path": {"file": "/d/q.jsonl", "sha256": "5d684cdb6bab23da"}}
    now = {"task.path": {"file": "/d/q.jsonl", "sha256": "c8dcaa51bc9e982c"}}
    with pytest.raises(ConfigError) as e:
        check_inputs(then, now, tmp_path, allow=True, stages=("sft",))
    assert str(e.value).endswith(
        f"changed since the checkpoint in {tmp_path} was written; a resume keeps the stages its checkpoint "
        "was trained on, and task.path is an input of them (sft), whatever resume_changed_inputs says: put "
        "it back as it was, or choose another hydra.run.dir"
    )
    with pytest.raises(ConfigError, match="set resume_changed_inputs=true to resume anyway"):
        check_inputs(then, now, tmp_path, allow=False, stages=())
    assert check_inputs(then, now, tmp_path, allow=True, stages=()) == {
        "task.path": (then["task.path"], now["task.path"])
    }


def test_a_verifier_that_raised_in_a_run_with_stages_is_not_told_to_resume_after_its_fix(tmp_path):
    """Twenty-seventh hunt, case 13: with task.sft=true a verifier that raised said "fix it, then resume
    from step 25 with: ... resume_changed_inputs=true", which the fix then made a refusal (the SFT stage is
    built from the task's verifier). The stages it records name why a fix needs another run folder."""
    import torch

    from align_lab.run.inputs import stages_from_the_task

    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    torch.save({"stage_keys": {"sft": "c879"}}, ckpt / "state-00000025.pt")
    (ckpt / "last").write_text("state-00000025.pt")
    assert stages_from_the_task("task.verifier=vr:check: raised RuntimeError: down", ckpt) == "sft"
    assert stages_from_the_task("reward.path=r:f: raised RuntimeError: down", ckpt) == ""
    torch.save({"stage_keys": {}}, ckpt / "state-00000025.pt")
    assert stages_from_the_task("task.verifier=vr:check: raised RuntimeError: down", ckpt) == ""


def test_a_reward_package_you_installed_is_an_input_by_its_record(tmp_path, monkeypatch):
    """Thirty-ninth hunt, case 12: `pip install .` of a reward package, reinstalled with other code between
    a kill and the resume: `reward.path=pkg:f` named no input (installed code is not the user's), resumed on
    the new reward in silence. The distribution's RECORD (each file's sha256) is its input."""
    site = tmp_path / "site"
    (site / "rw39pkg").mkdir(parents=True)
    (site / "rw39pkg" / "__init__.py").write_text("def f(p, r):\n    return [1.0] * len(r)\n")
    info = site / "rw39pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rw39pkg\nVersion: 1.0\n")
    (info / "RECORD").write_text("rw39pkg/__init__.py,sha256=one,40\n")
    (info / "top_level.txt").write_text("rw39pkg\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    importlib.import_module("rw39pkg")
    try:
        before = run_inputs({"reward": {"path": "rw39pkg:f"}})
        assert before["reward.path"]["file"].endswith("(installed: rw39pkg)"), before
        (info / "RECORD").write_text("rw39pkg/__init__.py,sha256=two,41\n")  # reinstalled, other code
        assert changed_inputs(before, run_inputs({"reward": {"path": "rw39pkg:f"}})), "not seen"
        assert run_inputs({"task": {"verifier": "json:loads"}}) == {}  # Python's own
    finally:
        sys.modules.pop("rw39pkg", None)
