"""--wandb: its choice of mode (W&B only when configured, never online without a login), and the W&B
dashboard built with wandb_workspaces and serialised with no network."""

from __future__ import annotations

import dataclasses
import json
import shlex
import socket
from pathlib import Path

import pytest

from align_lab.results.wandb_report import wandb_mode
from tests.integration.test_compare import CLAIMS, STUDY

EXTRA_CLAIM = "rloo > reinforce_pp on eval/kl"  # a claim given at compare time, with a third metric


def test_wandb_mode_is_a_runs_auto_mode_and_never_online_without_a_login(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}  # no ~/.netrc there
    assert wandb_mode(home) == "offline"  # as a run's tracker (mode auto): offline files
    assert wandb_mode({**home, "WANDB_MODE": "offline"}) == "offline"
    assert wandb_mode({**home, "WANDB_MODE": "online"}) is None  # online without credentials
    assert wandb_mode({**home, "WANDB_API_KEY": "k"}) == "online"
    assert wandb_mode({**home, "WANDB_API_KEY": "k", "WANDB_MODE": "disabled"}) is None
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    assert wandb_mode(home) == "online"


def test_the_wandb_group_is_the_runs_own_study_else_the_unnamed_runs_own_ids() -> None:
    from align_lab.results.wandb_report import wandb_scope

    # a study's runs beside unnamed ones: its group, nothing more to scope
    assert wandb_scope(["toy", "default", "toy", None], ["a", "b", "c", None]) == ("toy", ())
    # a sweep run the README's way (no study=): the shared `default` group, scoped by the runs' own W&B
    # ids (before: refused, "rerun the study with study=NAME")
    assert wandb_scope(["default", "default", None], ["b2", "a1", None]) == ("default", ("a1", "b2"))
    for groups in ([], [None], ["default", "default"], ["", None]):  # and never logged to W&B: refused
        with pytest.raises(ValueError, match=r"^--wandb: the runs name no study \(study=default") as e:
            wandb_scope(groups, [None] * len(groups))
        assert "\n" not in str(e.value) and "none logged to W&B" in str(e.value)


def test_a_dashboard_of_an_unnamed_study_shows_its_own_runs_and_compare_run(
    comparison_args, no_network
) -> None:
    from align_lab.results.wandb_dashboard import build_report, build_workspace, dashboard_json, run_id

    c, _ = comparison_args
    ids = ("a1", "b2")
    saved = dashboard_json(
        build_report(c, "p", "default", "", {"algo"}, ids), build_workspace(c, "p", "default")
    )
    saved = json.loads(json.dumps(saved))
    runsets = [
        b["metadata"]["runSets"][0]
        for b in saved["report_spec"]["spec"]["blocks"]
        if b["type"] == "panel-grid"
    ]
    mine = run_id("p", "default", c, ids)
    assert mine != run_id("p", "default", c, ("c3",))  # two unnamed studies never share a compare run
    for runset in runsets:
        (group, scope, job) = runset["filters"]["filters"]
        assert group["value"] == "default" and scope["key"]["name"] == "name" and scope["op"] == "IN"
        assert scope["value"] == ([mine] if job["value"] == "compare" and job["op"] == "=" else list(ids))


# --- the dashboard (wandb_workspaces Report + Workspace), built and serialised offline ---------------


def _walk(node):
    """Every dict inside a JSON value."""
    if isinstance(node, dict):
        yield node
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            yield from _walk(child)


@pytest.fixture(scope="module")
def comparison_args(tmp_path_factory):
    """The toy study of tests/integration/test_compare.py (3 algorithms x 3 seeds, its two saved claims)."""
    from align_lab.compare import compare, parse_args
    from tests.integration.test_compare import make_sweep

    tmp = tmp_path_factory.mktemp("wandb_dashboard")
    make_sweep(tmp)
    args = parse_args([str(tmp / "multirun"), "--baseline", "ppo", "--claim", EXTRA_CLAIM])
    comparison, _, _ = compare(args)
    return comparison, args


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test; W&B offline, its server an unused port."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network used: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")


def test_the_dashboard_is_built_and_serialised_offline(comparison_args, no_network) -> None:
    from align_lab.results.wandb_dashboard import build_report, build_workspace, dashboard_json

    c, _ = comparison_args
    report = build_report(c, "align_lab", STUDY, "", {"algo", "task"})
    saved = dashboard_json(report, build_workspace(c, "align_lab", STUDY, "", {"algo", "task"}))
    saved = json.loads(json.dumps(saved))  # what wandb_report.json holds
    grids = [b["metadata"] for b in saved["report_spec"]["spec"]["blocks"] if b["type"] == "panel-grid"]
    study = {"key": {"section": "run", "name": "group"}, "op": "=", "value": STUDY, "disabled": False}
    compare_run = {"key": {"section": "run", "name": "jobType"}, "op": "=", "value": "compare"}
    for grid in grids:
        (runset,) = grid["runSets"]
        assert runset["filters"]["filters"][0] == study
        is_compare = compare_run.items() <= runset["filters"]["filters"][1].items()
        # the arms: grouped by the algorithm, which is each run's W&B job type
        assert runset["grouping"] == ([] if is_compare else [{"section": "run", "name": "jobType"}])
    runsets = [rs for b in saved["report"]["blocks"] for rs in b.get("runsets", [])]
    assert {rs["project"] for rs in runsets} == {"align_lab"} and len(runsets) == len(grids) == 5
    # one line plot and one bar chart per claim metric (the two saved claims' and the --claim's)
    panels = [p for g in grids for p in g["panelBankSectionConfig"]["panels"]]
    claimed = ["eval/gold_reward", "time/total_s", "eval/kl"]
    for view in ("Run History Line Plot", "Bar Chart"):
        assert [p["config"]["metrics"] for p in panels if p["viewType"] == view] == [[m] for m in claimed]
    # the claim table: as in test_compare, 3 paired seeds give p >= 2/2^3 = 0.25 (each Holm p >= 0.5 over
    # 3 claims; the extra claim: final KL rloo 0.5 vs reinforce_pp 0.8 at every seed) -> all inconclusive
    blocks = saved["report_spec"]["spec"]["blocks"]
    (table,) = [b["content"] for b in blocks if "| claim |" in b.get("content", "")]
    rows = table.splitlines()[2:]
    assert [r.split(" | ")[0].strip("| ") for r in rows] == [*CLAIMS, EXTRA_CLAIM]
    assert all(" | **inconclusive** | " in r for r in rows)
    # the samples panel reads each run's `eval/samples` table; the compare run's panels its tables
    keys = [d["val"] for d in _walk(saved["report_spec"]) if d.get("nodeType") == "const" and "val" in d]
    assert keys == ["eval/samples", "compare/claims", "compare/groups", "compare/paired"]
    # the workspace: the same runs, a section per claim metric, the samples
    section = saved["workspace_spec"]["spec"]["section"]
    assert [s["name"] for s in section["panelBankConfig"]["sections"]] == ["claims", *claimed, "samples"]
    assert section["runSets"][0]["filters"]["filters"][0] == study


def test_the_arms_group_where_the_runs_w_and_b_record_holds_them(comparison_args, no_network) -> None:
    from align_lab.results.wandb_dashboard import build_report, dashboard_json, wandb_groupby

    assert wandb_groupby("algo", {"algo"}) == "JobType"
    assert wandb_groupby("arm", {"algo", "arm"}) == "config.choices.arm"  # tracker logs `choices`
    assert wandb_groupby("algo.kl_coef", {"algo"}) == "config.algo.kl_coef"
    c = dataclasses.replace(comparison_args[0], by=["arm"])
    spec = dashboard_json(build_report(c, "p", STUDY, "", {"arm"}), build_workspace_for(c))["report_spec"]
    grids = [b["metadata"]["runSets"][0] for b in spec["spec"]["blocks"] if b["type"] == "panel-grid"]
    # W&B stores a nested config key `choices: {arm: ...}` as choices.value.arm
    assert grids[0]["grouping"] == [{"section": "config", "name": "choices.value.arm"}]


def build_workspace_for(c):
    from align_lab.results.wandb_dashboard import build_workspace

    return build_workspace(c, "p", STUDY, "", {"arm"})


def test_dashboard_json_refuses_a_report_with_an_entity(comparison_args, no_network) -> None:
    from align_lab.results.wandb_dashboard import build_report, build_workspace, dashboard_json

    c, _ = comparison_args
    with pytest.raises(ValueError, match="entity='me'"):  # its runsets would look their project up in W&B
        dashboard_json(build_report(c, "p", STUDY, "me"), build_workspace(c, "p", STUDY))


def test_the_online_command_repeats_the_comparison(comparison_args, monkeypatch) -> None:
    from align_lab.results.wandb_report import online_command

    _, args = comparison_args
    monkeypatch.delenv("PYTHONPATH", raising=False)
    import sys

    words = shlex.split(online_command(args))  # this interpreter's absolute path, not a bare python
    assert words[:4] == [
        str(Path(sys.executable).absolute()),
        "-m",
        "align_lab.compare",
        str(args.folders[0]),
    ]
    assert words[words.index("--claim") + 1] == EXTRA_CLAIM
    assert words[words.index("--baseline") + 1] == "ppo" and words[-1] == "--wandb"


def test_the_online_command_keeps_the_pythonpath_compare_ran_with(comparison_args, monkeypatch) -> None:
    """Fifty-first hunt, case 30: compare run with PYTHONPATH=<a checkout> printed its --wandb command
    without it; typed as printed, it ran the venv's installed align_lab, another checkout's code."""
    from align_lab.results.wandb_report import online_command

    monkeypatch.setenv("PYTHONPATH", "checkout")
    words = shlex.split(online_command(comparison_args[1]))
    assert words[0] == f"PYTHONPATH={Path('checkout').absolute()}" and words[2:4] == [
        "-m",
        "align_lab.compare",
    ]


def test_a_dashboard_that_cannot_be_saved_is_one_line(comparison_args, no_network, monkeypatch) -> None:
    from align_lab.results.wandb_report import create_dashboard

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # "logged in": save() goes as far as the network
    (line,) = create_dashboard(comparison_args[0], "align_lab", STUDY, "me", {"algo"})
    assert line.startswith("align_lab.compare: W&B dashboard not created (")


@pytest.mark.slow  # fresh interpreters or a whole W&B run: CI's tier (docs/testing.md)
def test_the_online_command_runs_from_another_folder_without_the_venv(tmp_path, monkeypatch) -> None:
    import subprocess
    import sys

    from align_lab.compare import parse_args
    from align_lab.results.wandb_report import online_command
    from tests.integration.test_compare import make_sweep

    # `compare multirun --out report` typed in the study's folder, the venv active: "log in and run:
    # python -m align_lab.compare multirun --out report --wandb", which from `/` with no venv on PATH finds
    # no `python` (and a relative venv path, when it printed one, nothing): now absolute, all of it
    monkeypatch.setattr("shutil.which", lambda name: sys.executable)
    monkeypatch.chdir(tmp_path)
    make_sweep(tmp_path)
    command = online_command(parse_args(["multirun", "--baseline", "ppo", "--out", "report"]))
    words = shlex.split(command)
    assert words[3] == str(tmp_path / "multirun") and words[words.index("--out") + 1] == str(
        tmp_path / "report"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[3])}
    env |= {"HOME": str(tmp_path), "WANDB_MODE": "offline", "WANDB_BASE_URL": "http://127.0.0.1:9"}
    done = subprocess.run(
        ["bash", "-c", command], cwd="/", env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report" / "wandb").is_dir() and not Path("/report").exists()


def test_a_run_whose_own_wandb_file_is_gone_or_cut_short_is_a_note(tmp_path: Path) -> None:
    """Seventh hunt of 2026-12-04, w2, w3: `rm -rf <run>/wandb` (or its .wandb cut to 100 bytes), then
    `compare --wandb`: rc 0 and the usual offline lines, no word that wandb sync can never upload the run."""
    import wandb

    from align_lab.results.runs import Run
    from align_lab.results.wandb_report import unsynced

    def logged_run(name: str) -> Run:
        folder = tmp_path / name
        folder.mkdir()
        w = wandb.init(
            dir=str(folder), mode="offline", project="p", settings=wandb.Settings(silent=True, console="off")
        )
        w.log({"x": 1})
        (folder / "wandb_run_id.txt").write_text(w.id)
        w.finish()
        return Run(folder=folder, status="completed")

    whole, gone, cut = logged_run("whole"), logged_run("gone"), logged_run("cut")
    from align_lab.tracking.wandb_reader import wait_until_complete

    for run in (whole, gone, cut):
        (path,) = (run.folder / "wandb").glob("offline-run-*/run-*.wandb")
        assert wait_until_complete(path)
    g, c = ((r.folder / "wandb_run_id.txt").read_text() for r in (gone, cut))
    import shutil

    shutil.rmtree(gone.folder / "wandb")
    (path,) = (cut.folder / "wandb").glob("offline-run-*/run-*.wandb")
    path.write_bytes(path.read_bytes()[:100])
    running = Run(folder=cut.folder, status="running")  # a run still writing: its file is not whole yet
    assert unsynced([whole, gone, cut, running]) == [
        f"align_lab.compare: note: {gone.folder}: its W&B file (wandb/*-{g}/run-{g}.wandb) "
        "is gone: if it ran offline, wandb sync cannot upload it and the dashboard lacks it",
        f"align_lab.compare: note: {cut.folder}: its W&B file (wandb/*-{c}/run-{c}.wandb) "
        "is cut short: if it ran offline, wandb sync cannot upload it and the dashboard lacks it",
    ]


@pytest.mark.slow  # a fresh interpreter and a whole W&B run: CI's tier (docs/testing.md)
def test_compare_wandb_with_no_home_keeps_wandbs_service_log_off_the_terminal(tmp_path) -> None:
    """Second done-when hunt of 2026-12-04, s4_cmpw: `env -i ... compare <sweep> --wandb` (no HOME) wrote
    11 lines of wandb-core's INFO and ERROR around compare's own; they go to the compare folder's log."""
    import subprocess
    import sys

    from tests.integration.test_compare import make_sweep

    make_sweep(tmp_path)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[3]), "WANDB_MODE": "offline"}
    args = [
        sys.executable,
        "-m",
        "align_lab.compare",
        str(tmp_path / "multirun"),
        "--out",
        "report",
        "--wandb",
    ]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert all(line.startswith("align_lab.compare: ") for line in done.stderr.splitlines()), done.stderr
    assert "failed to get logger path" in (tmp_path / "report" / "wandb" / "wandb-core.log").read_text()
