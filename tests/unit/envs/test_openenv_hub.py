"""env=openenv (envs/openenv_hub.py) on the environment the OpenEnv package ships: `openenv init` writes its
echo environment (each step answers the message, reward 0.1 per character, never done), which the
adapter plays in-process. Hub environments that raise, hang or lack the observation field are one line
naming env=openenv and the turn, as ours are; a KeyboardInterrupt is not swallowed."""

from __future__ import annotations

import time

import pytest

from tests.conftest import openenv_site

openenv_site()  # .openenv where scripts/test.sh installed it (scripts/setup_openenv.sh)
pytest.importorskip(
    "openenv.core.env_server.interfaces", reason="env=openenv needs openenv-core (docs/environments.md)"
)

from openenv.core.env_server.interfaces import Environment  # noqa: E402
from openenv.core.env_server.types import Action, Observation, State  # noqa: E402

from align_lab.envs.base import EnvError, check_environment, run_step, start_episode  # noqa: E402
from align_lab.envs.openenv_hub import OpenEnv  # noqa: E402

ECHO = "echo_toy.server.echo_toy_environment:EchoToyEnvironment"


@pytest.fixture(scope="module")
def echo_dir(tmp_path_factory):
    """The package's own echo environment, written by its CLI's `openenv init echo_toy` (offline)."""
    from openenv.cli.commands.init import init

    root = tmp_path_factory.mktemp("openenv")
    init("echo_toy", output_dir=str(root))
    return root


@pytest.fixture
def echo(echo_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(echo_dir))
    return ECHO


def test_the_echo_environment_answers_each_turn_with_its_text_and_reward(echo):
    env = OpenEnv(environment=echo)
    check_environment(env, "openenv")
    episode = start_episode("openenv", env, "any prompt", env.step_timeout_s)
    step = run_step("openenv", episode, "hello", 1, env.step_timeout_s)
    # the echo environment: observation = the message, reward = 0.1 * len("hello") = 0.5, not done
    assert (step.observation, step.done) == ("hello", False)
    assert step.reward == pytest.approx(0.5)
    assert episode.answer() == "hello"


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"environment": "no_colon"}, "environment='no_colon': must be 'module:Class'"),
        ({"environment": "no_such_module:X"}, "environment='no_such_module:X': cannot import"),
        ({"environment": "align_lab.envs.calculator:Calculator"}, "not an OpenEnv Environment"),
        ({"action_field": "text"}, "action_field='text': EchoToyAction has the fields"),
    ],
)
def test_bad_keys_are_one_line_when_built(echo, keys, message):
    with pytest.raises(ValueError, match=message) as info:
        OpenEnv(**{"environment": echo, **keys})
    assert "\n" not in str(info.value)


class Say(Action):
    message: str


class Heard(Observation):
    echoed_message: str = ""


class Faulty(Environment):
    """A hub environment that misbehaves on its first step as `mode` says."""

    def __init__(self, mode: str = "raise") -> None:
        super().__init__()
        self.mode = mode

    def reset(self, seed=None, episode_id=None, **kwargs) -> Heard:
        return Heard()

    def step(self, action: Say, timeout_s=None, **kwargs) -> Heard:
        if self.mode == "raise":
            raise RuntimeError("sandbox died\nwith a traceback")
        if self.mode == "hang":
            time.sleep(30)
        if self.mode == "interrupt":
            raise KeyboardInterrupt
        return Observation(done=False, reward=1.0)  # no echoed_message

    @property
    def state(self) -> State:
        return State()


@pytest.mark.parametrize(
    "mode, message",
    [
        ("raise", "env=openenv: turn 1: step raised RuntimeError: sandbox died with a traceback"),
        ("hang", "env=openenv: turn 1: step took longer than env.step_timeout_s=0.2"),
        ("nofield", "env=openenv: turn 1: step raised AttributeError: Observation has no field"),
    ],
)
def test_a_hub_environment_that_crashes_or_hangs_is_one_line(mode, message):
    env = OpenEnv(environment=f"{__name__}:Faulty", kwargs={"mode": mode}, step_timeout_s=0.2)
    episode = start_episode("openenv", env, "p", env.step_timeout_s)
    with pytest.raises(EnvError) as info:
        run_step("openenv", episode, "hi", 1, env.step_timeout_s)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_a_keyboard_interrupt_in_a_hub_environment_is_not_swallowed():
    env = OpenEnv(environment=f"{__name__}:Faulty", kwargs={"mode": "interrupt"})
    episode = start_episode("openenv", env, "p", env.step_timeout_s)
    with pytest.raises(KeyboardInterrupt):
        run_step("openenv", episode, "hi", 1, env.step_timeout_s)


class Seeded(Faulty):
    """Records every instance's reset seed and close, and answers each step with that seed."""

    log: list = []

    def reset(self, seed=None, episode_id=None, **kwargs) -> Heard:
        self.seed = seed
        Seeded.log.append(("reset", seed))
        return Heard()

    def step(self, action: Say, timeout_s=None, **kwargs) -> Heard:
        return Heard(echoed_message=str(self.seed), done=False, reward=0.0)

    def close(self) -> None:
        Seeded.log.append(("close", self.seed))


def test_reset_is_seeded_by_the_prompt_and_the_seed_key_and_close_is_idempotent():
    import zlib

    Seeded.log = []
    env = OpenEnv(environment=f"{__name__}:Seeded")
    first, again, other = (start_episode("openenv", env, p, 1.0) for p in ("q1", "q1", "q2"))
    seed = zlib.crc32(b"q1")  # seed 0: crc32 of the prompt, below 2**31 (639,851,122 for q1)
    assert [s for _, s in Seeded.log] == [seed % 2**31, seed % 2**31, zlib.crc32(b"q2") % 2**31]
    assert run_step("openenv", first, "hi", 1, 1.0).observation == str(seed % 2**31)
    first.close()
    first.close()
    assert Seeded.log.count(("close", seed % 2**31)) == 1  # once, however often the loop asks
    Seeded.log = []
    start_episode("openenv", OpenEnv(environment=f"{__name__}:Seeded", seed=7), "q1", 1.0)
    start_episode("openenv", OpenEnv(environment=f"{__name__}:Seeded", seed=None), "q1", 1.0)
    assert Seeded.log == [("reset", (seed + 7) % 2**31), ("reset", None)]  # null: the environment's own
    with pytest.raises(ValueError, match=r"^seed=-1: must be an integer >= 0 or null$"):
        OpenEnv(environment=f"{__name__}:Seeded", seed=-1)
