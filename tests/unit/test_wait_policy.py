"""align_lab sets OpenMP's wait policy (align_lab.OMP_WAIT_POLICY) before torch's libgomp reads it, on
every entry point, and a user's own OMP_WAIT_POLICY wins (docs/scaling_out.md, "Beside another
process")."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import pytest

import align_lab
from align_lab import spin_count, wait_policy
from tests.conftest import ROOT

# what OMP_DISPLAY_ENV prints under each policy (unset and PASSIVE both print OMP_WAIT_POLICY = 'PASSIVE';
# their spin counts differ: libgomp's docs, GOMP_SPINCOUNT)
SHOWN = {
    None: "GOMP_SPINCOUNT = '300000'",
    "PASSIVE": "GOMP_SPINCOUNT = '0'",
    "ACTIVE": "OMP_WAIT_POLICY = 'ACTIVE'",
}


def fresh(code: str, **env: str) -> subprocess.CompletedProcess:
    """`code` in a new Python whose environment has no OpenMP setting but `env`'s (one process for each
    code and environment: two tests read the same one)."""
    return _fresh(code, tuple(sorted(env.items())))


@functools.cache
def _fresh(code: str, env: tuple[tuple[str, str], ...]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    base["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", code], env={**base, **dict(env)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_the_policy_goes_in_unless_the_user_set_one() -> None:
    environ: dict[str, str] = {}
    wait_policy(environ, "PASSIVE")
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    environ = {"OMP_WAIT_POLICY": "ACTIVE"}
    wait_policy(environ, "PASSIVE")
    assert environ == {"OMP_WAIT_POLICY": "ACTIVE"}
    environ = {}
    wait_policy(environ, None)
    assert environ == {}


def test_the_spin_count_goes_in_unless_the_user_set_it_or_a_policy() -> None:
    environ: dict[str, str] = {}
    spin_count(environ, "10000")
    assert environ == {"GOMP_SPINCOUNT": "10000"}
    for users in ({"GOMP_SPINCOUNT": "0"}, {"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "PASSIVE"}):
        environ = dict(users)
        spin_count(environ, "10000")
        assert environ == users
    environ = {}
    spin_count(environ, None)
    assert environ == {}


# slow (docs/testing.md, the fast tier): fresh interpreters importing torch to read libgomp's own report
# (about 5 s of CPU); the fast tier keeps the rules and that a fresh process has the policy before torch
@pytest.mark.slow
def test_libgomp_spins_align_labs_count_unless_the_user_chose() -> None:
    code = "import align_lab, torch; torch.ones(4).sum()"
    shown = fresh(code, OMP_DISPLAY_ENV="VERBOSE").stderr
    assert f"GOMP_SPINCOUNT = '{align_lab.GOMP_SPINCOUNT}'" in shown
    assert "GOMP_SPINCOUNT = '0'" in fresh(code, OMP_DISPLAY_ENV="VERBOSE", GOMP_SPINCOUNT="0").stderr
    assert "GOMP_SPINCOUNT = '0'" in fresh(code, OMP_DISPLAY_ENV="VERBOSE", OMP_WAIT_POLICY="PASSIVE").stderr


def test_a_fresh_process_sees_the_chosen_policy_before_torch() -> None:
    code = "import align_lab, os, sys; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    assert fresh(code).stdout.split() == [str(align_lab.OMP_WAIT_POLICY), "False"]


def test_a_users_policy_wins() -> None:
    user = "ACTIVE" if align_lab.OMP_WAIT_POLICY == "PASSIVE" else "PASSIVE"
    code = "import align_lab, os; print(os.environ.get('OMP_WAIT_POLICY'))"
    assert fresh(code, OMP_WAIT_POLICY=user).stdout.split() == [user]


@pytest.mark.slow  # fresh interpreters importing torch, as above
def test_torchs_libgomp_starts_with_it() -> None:
    code = "import align_lab, torch; torch.ones(4).sum()"
    assert f"OMP_WAIT_POLICY = '{align_lab.OMP_WAIT_POLICY}'" in fresh(code, OMP_DISPLAY_ENV="VERBOSE").stderr
    user = "ACTIVE" if align_lab.OMP_WAIT_POLICY == "PASSIVE" else "PASSIVE"
    assert SHOWN[user] in fresh(code, OMP_DISPLAY_ENV="VERBOSE", OMP_WAIT_POLICY=user).stderr


def test_a_submitit_job_imports_align_lab_before_torch() -> None:
    # a job unpickles align_lab's launcher (hydra_plugins.align_lab_launcher.launcher) in submitit's entry
    code = (
        "import sys, submitit.core._submit, hydra_plugins.align_lab_launcher.launcher; "
        "print('align_lab' in sys.modules, 'torch' in sys.modules)"
    )
    assert fresh(code).stdout.split() == ["True", "False"]
