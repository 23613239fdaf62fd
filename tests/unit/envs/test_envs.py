"""The environment contract: the calculator's hand cases (safe `ast` evaluation, no eval), its episodes,
and run_step turning every misbehaviour of a step into one line naming the environment and the turn."""

from __future__ import annotations

import time

import numpy as np
import pytest

from align_lab.envs.base import (
    EnvError,
    Step,
    check_environment,
    close_episode,
    close_episodes,
    episode_answer,
    run_step,
    start_episode,
)
from align_lab.envs.calculator import Calculator, calculate
from align_lab.envs.guess_number import GuessNumberEnv
from align_lab.envs.single_turn import SingleTurn


@pytest.mark.parametrize(
    "expression,result",
    [
        ("13+7", "20"),
        ("(2+3)*4", "20"),
        (" 20 - 3 * 4 ", "8"),
        ("3-10", "-7"),
        ("-4+1", "-3"),
        ("6/3", "2"),
        ("7/2", "3.5"),
        ("1/3", "0.333333"),
        ("(1/3)*3", "1"),  # exact fractions: no 0.999999
        ("10/0", "error: division by zero"),
        ("2**3", "error: only integers, + - * / and parentheses"),
        ("1.5+1", "error: only integers, + - * / and parentheses"),
        ("x+1", "error: only integers, + - * / and parentheses"),
        ('__import__("os").system("true")', "error: only integers, + - * / and parentheses"),
        ("(1+", "error: not an arithmetic expression"),
        ("", "error: not an arithmetic expression"),
        ("9" * 20 + "*" + "9" * 20, "error: result too large"),
        ("1+" * 150 + "1", "error: longer than 200 characters"),
    ],
)
def test_the_calculator_on_hand_cases(expression, result):
    assert calculate(expression) == result


def test_a_calculator_episode_answers_calls_and_ends_on_the_first_turn_without_one():
    episode = Calculator().start("What is 13 plus 7? Answer with just the number.")
    first = episode.step("let me see <calc>13+7</calc>")
    assert first == Step(observation="20", reward=0.0, done=False, tool_call=True)
    assert episode.step("<calc>1/0</calc>").observation == "error: division by zero"
    assert episode.step("20") == Step(done=True)
    assert episode.answer() == "20"


def test_calculator_keys_are_checked():
    with pytest.raises(ValueError, match=r"^max_turns=0: must be >= 1$"):
        Calculator(max_turns=0)
    with pytest.raises(ValueError, match=r"observation_template='x': must hold \{observation\}"):
        Calculator(observation_template="x")


def test_guess_number_keys_are_checked():
    with pytest.raises(ValueError, match=r"^max_conversation_tokens=0: must be >= 1 or null$"):
        GuessNumberEnv(max_conversation_tokens=0)
    assert GuessNumberEnv(max_conversation_tokens=None).max_conversation_tokens is None


def test_single_turn_is_not_multi_turn_and_answers_its_one_turn():
    env = SingleTurn()
    assert env.multi_turn is False and env.max_turns == 1
    episode = env.start("p")
    assert episode.step("r").done and episode.answer() == "r"


PAST = "past float32's range (|x| <= 3.4e38), where training holds it as infinity"


RAISES = f"{__file__}:{next(i for i, x in enumerate(open(__file__), 1) if '# RAISES_' + 'LINE' in x)}"


class Bad:
    def __init__(self, returns=None, raises=None, sleeps=0.0):
        self.returns, self.raises, self.sleeps = returns, raises, sleeps

    def step(self, turn):
        time.sleep(self.sleeps)
        if self.raises:
            raise self.raises  # RAISES_LINE
        return self.returns

    def answer(self):
        return 42


@pytest.mark.parametrize(
    "episode,message",
    [
        (
            Bad(raises=RuntimeError("no\nsuch")),
            f"env=game: turn 2: step raised RuntimeError: no such at {RAISES}",
        ),
        (Bad(returns="higher"), "env=game: turn 2: step returned str; must return envs.base.Step"),
        (Bad(returns=Step(observation=5)), "env=game: turn 2: step's observation is a int; must be a string"),
        (
            Bad(returns=Step(reward=float("nan"))),
            "env=game: turn 2: step's reward is nan; must be a finite number",
        ),
        (Bad(returns=Step(), sleeps=5), "env=game: turn 2: step took longer than env.step_timeout_s=0.2"),
        # the second fresh hunt (issue 73): 1e39 trained as infinity ("diverged ... lower algo.lr"),
        # 10**400 an OverflowError traceback
        # the fourth hunt: done="no" read as True, the episode ended in silence
        (Bad(returns=Step(done="no")), "env=game: turn 2: step's done is 'no'; must be True or False"),
        (Bad(returns=Step(tool_call=1)), "env=game: turn 2: step's tool_call is 1; must be True or False"),
        (
            Bad(returns=Step(reward=1e39)),
            f"env=game: turn 2: step's reward is 1e+39, {PAST}; must be a finite number",
        ),
        (
            Bad(returns=Step(reward=-(10**400))),
            f"env=game: turn 2: step's reward is an integer of 1329 bits, {PAST}; must be a finite number",
        ),
    ],
)
def test_a_bad_step_is_one_line_naming_the_env_and_the_turn(episode, message):
    start = time.perf_counter()
    with pytest.raises(EnvError) as e:
        run_step("game", episode, "five", 2, 0.2)
    assert str(e.value) == message and "\n" not in str(e.value)
    assert time.perf_counter() - start < 2  # a hung step is not waited for


@pytest.mark.parametrize("reward", [np.float32(0.5), np.int64(2), np.float64(-1.0), 3])
def test_a_numpy_number_is_a_reward(reward):
    """Ninth hunt: a step's reward np.float32(0.0) was refused as "must be a finite number"."""
    step = run_step("game", Bad(returns=Step(reward=reward)), "five", 2, 1.0)
    assert float(step.reward) == float(reward)


def test_a_numpy_bool_is_no_reward():
    with pytest.raises(EnvError, match="step's reward is .*True.*; must be a finite number"):
        run_step("game", Bad(returns=Step(reward=np.bool_(True))), "five", 2, 1.0)


def test_start_and_answer_failures_are_one_line():
    class Env:
        def start(self, prompt):
            raise RuntimeError("no game")  # NO_GAME_LINE

    at = next(i for i, x in enumerate(open(__file__), 1) if "# NO_GAME" + "_LINE" in x)
    with pytest.raises(EnvError, match=rf"^env=game: turn 0: start raised RuntimeError: no game at .*:{at}$"):
        start_episode("game", Env(), "p", 1.0)
    # it said "a int" (fifth hunt of 2026-12-04)
    said = r"^env=game: turn 3: answer\(\) returned a value of type int; must be a string$"
    with pytest.raises(EnvError, match=said):
        episode_answer("game", Bad(), 3, 1.0)


def test_an_episode_whose_close_or_answer_hangs_is_one_line_after_the_steps_timeout():
    """Twenty-fourth hunt, case 28: an episode's close() that hung held the run 3.6 minutes with no word
    (its step and start were under env.step_timeout_s, close and answer not)."""
    import threading
    import time

    gate = threading.Event()

    class Hanging:
        def close(self):
            gate.wait()

        def answer(self):
            gate.wait()
            return "x"

    start = time.monotonic()
    failed = close_episode("game", Hanging(), 4, 0.2)
    assert str(failed) == "env=game: turn 4: close() took longer than env.step_timeout_s=0.2"
    with pytest.raises(
        EnvError, match=r"^env=game: turn 4: answer\(\) took longer than env.step_timeout_s=0.2$"
    ):
        episode_answer("game", Hanging(), 4, 0.2)
    assert time.monotonic() - start < 5
    gate.set()


def test_once_an_episodes_close_runs_past_the_bound_the_others_are_not_waited_for():
    """Thirty-second hunt, case 23: a close() that hung in each of 64 episodes held the run 64 x
    env.step_timeout_s (195 s) with no word, each close waited for in turn, then named the bound."""
    import threading
    import time

    gate, called = threading.Event(), []

    class Hanging:
        def __init__(self, k):
            self.k = k

        def close(self):
            called.append(self.k)
            if self.k > 0:
                gate.wait()

    start = time.monotonic()
    failed = close_episodes("game", [(Hanging(k), 4) for k in range(8)], 0.2)
    waited = time.monotonic() - start
    gate.set()
    assert called == [0, 1] and waited < 1.5  # one bound, not 7
    assert str(failed) == (
        "env=game: turn 4: close() took longer than env.step_timeout_s=0.2 (6 other episodes left unclosed)"
    )
    assert close_episodes("game", [(Hanging(0), 2)] * 3, 0.2) is None


def test_a_start_that_returns_no_episode_is_one_line_saying_so():
    """Issue 73 hunt: start() returning None read 'turn 1: step raised AttributeError: 'NoneType' object
    has no attribute 'step'', blaming a step the environment never had."""

    class Env:
        def start(self, prompt):
            return None

    with pytest.raises(EnvError) as e:
        start_episode("game", Env(), "p", 1.0)
    assert str(e.value) == "env=game: turn 0: start returned None, not an episode with a step(turn) method"


@pytest.mark.parametrize(
    "turns,timeout,message",
    [
        (0, 1.0, r"^env.max_turns=0: must be an integer >= 1 \(env=mine\)$"),
        (2.5, 1.0, r"^env.max_turns=2.5: must be an integer >= 1 \(env=mine\)$"),
        (2, 0, r"^env.step_timeout_s=0: must be a number > 0 and at most 1e8 \(env=mine\)$"),
        (2, 1e12, r"^env.step_timeout_s=1000000000000.0: must be a number > 0 and at most 1e8 \(env=mine\)$"),
    ],
)
def test_a_user_environment_keys_are_checked(turns, timeout, message):
    class Mine:
        multi_turn, max_turns, step_timeout_s = True, turns, timeout

        def start(self, prompt):
            return None

    with pytest.raises(EnvError, match=message):
        check_environment(Mine(), "mine")


def test_the_default_env_leaves_a_runs_config_digest_and_resume_check_as_before(tmp_path):
    """Run folders written before `env` existed (a study's finished runs) keep their identity."""
    import yaml

    from align_lab import registry
    from align_lab.run.resumable import DEFAULT_ENV, config_digest
    from align_lab.run.summary import check_resume_config

    assert DEFAULT_ENV == {"_target_": registry.target("env", "single_turn")}
    before = {"seed": 0, "algo": {"lr": 1.0}}
    assert config_digest({**before, "env": DEFAULT_ENV}) == config_digest(before)
    calculator = {"_target_": registry.target("env", "calculator"), "max_turns": 3}
    assert config_digest({**before, "env": calculator}) != config_digest(before)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.resolved.yaml").write_text(yaml.safe_dump(before))
    check_resume_config(tmp_path, {**before, "env": DEFAULT_ENV})  # resumes
    with pytest.raises(ValueError, match=r"^env=\{'_target_': 'align_lab.envs.calculator.Calculator'"):
        check_resume_config(tmp_path, {**before, "env": calculator})


def test_online_pairwise_sampling_with_a_multi_turn_env_is_refused_before_any_compute():
    from align_lab.config import ConfigError
    from align_lab.run.admission import spec_from_config
    from align_lab.run.cross_checks import check_sampled_pairs
    from tests.conftest import compose

    game = ["task=guess_number", "env=guess_number", "reward=verifier", "cache_dir=/nonexistent"]
    for algo in ("online_dpo", "sail_pr"):
        spec = spec_from_config(*compose([f"algo={algo}", *game]))
        with pytest.raises(ConfigError, match=r"^env=guess_number: \w+ samples pairs online, one response"):
            check_sampled_pairs(spec)
    for algo in ("dpo", "simpo"):  # the preferences stage's conversation pairs: admitted
        check_sampled_pairs(spec_from_config(*compose([f"algo={algo}", *game])))
    check_sampled_pairs(
        spec_from_config(*compose(["algo=online_dpo", "cache_dir=/nonexistent"]))
    )  # single turn


@pytest.mark.parametrize(
    "overrides,message",
    [
        (  # the game reads its secret from a game's prompt: on toy_prefs it raised after the SFT stage
            ["env=guess_number"],
            r"^env=guess_number: plays task=guess_number only, not task=toy_prefs; use task=guess_number or "
            r"env=single_turn$",
        ),
        (  # the calculator on the game: every turn without a call ended the episode, a one-turn game
            ["task=guess_number", "env=calculator", "reward=verifier"],
            r"^env=calculator: plays task=arith_word only, not task=guess_number; ",
        ),
        (  # the reward model's stage raised on the conversation pairs (models/sequences.py)
            ["task=guess_number", "env=guess_number"],
            r"^reward=learned_rm: a learned reward model trains on and scores single responses; "
            r"env=guess_number plays conversations \(multi-turn\); use reward=verifier, gold or function$",
        ),
        (  # the SFT stage refused the conversations, after the tokenizer stage
            ["task=guess_number", "reward=verifier"],
            r"^task=guess_number: its demonstrations are conversations, which need a multi-turn env "
            r"\(env=guess_number\), not env=single_turn$",
        ),
        (
            [
                *["task=guess_number", "env=guess_number", "reward=verifier"],
                "env.observation_template='a {b} {observation}'",
            ],
            r"^env.observation_template='a \{b\} \{observation\}': unknown field \{b\}; the only field is ",
        ),
    ],
)
def test_an_env_task_and_reward_that_do_not_fit_are_one_line_at_admission(overrides, message):
    from align_lab.config import ConfigError
    from align_lab.run.admission import spec_from_config
    from align_lab.run.cross_checks import check_run
    from tests.conftest import compose

    spec = spec_from_config(*compose([*overrides, "cache_dir=/nonexistent"]))
    with pytest.raises(ConfigError, match=message):
        check_run(spec, here=False)


def test_the_envs_that_fit_are_admitted():
    from align_lab.run.admission import spec_from_config
    from align_lab.run.cross_checks import check_run
    from tests.conftest import compose

    for overrides in (
        ["task=guess_number", "env=guess_number", "reward=verifier"],
        ["task=toy_arith", "reward=gold", "env._target_=tests.integration.test_multi_turn.Probe"],  # any task
        [],  # single_turn: any task, the learned reward model
    ):
        check_run(spec_from_config(*compose([*overrides, "cache_dir=/nonexistent"])), here=False)


@pytest.mark.parametrize(
    "template,message",
    [
        ("{} {observation}", r"unknown field \{\}"),
        ("{observation.x}", r"unknown field \{observation.x\}"),
        ("}{observation}", r"Single '\}' encountered"),
        ("{{observation}}", r"must hold \{observation\}"),
    ],
)
def test_an_observation_template_that_cannot_format_is_refused(template, message):
    class Mine:
        multi_turn, max_turns, step_timeout_s, observation_template = True, 2, 1.0, template

        def start(self, prompt):
            return None

    with pytest.raises(EnvError, match=r"^env.observation_template=.*" + message + r".*\(env=mine\)$"):
        check_environment(Mine(), "mine")
    Mine.observation_template = "[{observation}] {{x}}"
    check_environment(Mine(), "mine")


def test_env_openenv_without_its_package_is_one_line_naming_the_install(monkeypatch):
    """CI has no openenv-core (docs/environments.md, "Environment hubs"): the refusal, not a traceback."""
    import sys

    from align_lab.envs.openenv_hub import OpenEnv

    for name in ("openenv", "openenv.core", "openenv.core.env_server", "openenv.core.env_server.interfaces"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it raises ImportError, installed or not
    monkeypatch.setenv("OPENENV_DIR", "/nonexistent")  # nor in scripts/setup_openenv.sh's folder
    with pytest.raises(
        ValueError,
        match=r"^environment='m:C': the OpenEnv package is not installed: bash /\S+/scripts/setup_openenv",
    ):
        OpenEnv(environment="m:C")


def test_env_openenv_finds_the_package_where_scripts_setup_openenv_sh_put_it(tmp_path, monkeypatch):
    """Issue 73: after `bash scripts/setup_openenv.sh` (openenv-core into .openenv, beside .venv) the docs'
    env=openenv command said "pip install openenv-core": the adapter now appends that folder ($OPENENV_DIR,
    else the checkout's .openenv) to sys.path, after the running Python's packages, as the tests do. A
    stand-in package here: only where the adapter looks is under test."""
    import sys

    from align_lab.envs.openenv_hub import hub_base

    package = tmp_path / "site" / "openenv" / "core" / "env_server"
    package.mkdir(parents=True)
    (package / "interfaces.py").write_text("class Environment:\n    where = 'setup_openenv.sh'\n")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if ".openenv" not in p])
    for name in [m for m in sys.modules if m == "openenv" or m.startswith("openenv.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setenv("OPENENV_DIR", str(tmp_path / "site"))
    assert hub_base("m:C").where == "setup_openenv.sh"
    assert sys.path[-1] == str(tmp_path / "site")  # after every folder the running Python had


def test_a_numpy_bool_done_is_a_bool():
    """The fifth hunt: Step(done=np.True_) (a numpy comparison's result) was refused as not a bool."""
    import numpy as np

    step = run_step("game", Bad(returns=Step(done=np.True_, tool_call=np.False_)), "five", 2, 0.2)
    assert step.done and not step.tool_call
