"""Env construction: fixed-length episodes, the true reward in info, simulator state for clips, users' own envs,
bad inputs as one line, Gymnasium's and SB3's env checkers, and the spec round trip."""

from __future__ import annotations

import importlib.util
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from pbrl.envs import EnvSpecError, FrozenTerminalState, make_env
from pbrl.envs.wrappers import STATE_KEY, TRUE_REWARD_KEY
from tests.custom_env_module import ReachEnv  # importable from the repository root (pyproject: pythonpath)


def _episode_length(env: gym.Env, seed: int = 0) -> int:
    env.reset(seed=seed)
    n, done = 0, False
    while not done:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        n += 1
        done = term or trunc
    return n


@pytest.mark.parametrize("env_id", ["Hopper-v5", "InvertedPendulum-v5", "CartPole-v1"])
def test_episodes_run_to_the_time_limit(env_id):
    env = make_env(env_id, seed=0)
    # a random policy falls early in all three; the episode must still last the full time limit
    assert _episode_length(env) == env.spec.max_episode_steps
    raw = gym.make(env_id)
    raw.action_space.seed(0)
    assert _episode_length(raw) < raw.spec.max_episode_steps


def test_frozen_terminal_state_repeats_last_obs_and_pays_terminal_reward():
    env = FrozenTerminalState(gym.make("CartPole-v1"), terminal_reward=-1.0)
    env.reset(seed=0)
    while True:
        obs, _, term, _, _ = env.step(0)  # always push left: falls in a few steps
        assert not term
        if env._frozen_obs is not None:
            break
    frozen, seen = obs.copy(), [obs]
    for _ in range(5):
        obs, r, term, trunc, info = env.step(1)
        assert np.array_equal(obs, frozen) and r == -1.0 and not term and info["frozen"]
        seen.append(obs)
    seen[0][:] = 99.0  # each step returns its own array: editing one leaves the others (and the env) alone
    assert all(np.array_equal(o, frozen) for o in seen[1:]) and np.array_equal(env.step(1)[0], frozen)


def test_hopper_true_reward_has_no_torque_penalty_and_is_in_info():
    env = make_env("Hopper-v5", seed=0)
    env.reset(seed=0)
    _, r, _, _, info = env.step(np.ones(3, dtype=np.float32))
    assert info[TRUE_REWARD_KEY] == pytest.approx(r)
    assert r == pytest.approx(info["reward_forward"] + info["reward_survive"])


def test_mujoco_state_recorded_for_rendering():
    env = make_env("Hopper-v5", seed=0)
    _, info = env.reset(seed=0)
    data = env.unwrapped.data
    assert np.allclose(info[STATE_KEY], np.concatenate([data.qpos, data.qvel]))
    _, _, _, _, info = env.step(env.action_space.sample())
    assert np.allclose(info[STATE_KEY], np.concatenate([data.qpos, data.qvel]))


@pytest.mark.parametrize("env_id, message", [
    ("Hoper-v5", "unknown env id"),
    ("NoSuchEnv-v0", "unknown env id"),
    ("ALE/Tetris-v5", "not one of the Atari games"),
])
def test_bad_env_ids_raise_one_clear_error(env_id, message):
    with pytest.raises(EnvSpecError, match=message):
        make_env(env_id)


@pytest.mark.parametrize("env_id, steps", [("Hopper-v5", 120), ("CartPole-v1", 60), ("Pendulum-v1", 30)])
def test_fixed_episode_length_knob(env_id, steps):
    assert _episode_length(make_env(env_id, seed=0, max_episode_steps=steps)) == steps


# -- users' own envs, bad inputs as one line, and Gymnasium's / SB3's env checkers ----------------------------------

REACH = "tests.custom_env_module:PbrlTestReach-v0"
needs_atari = pytest.mark.skipif(importlib.util.find_spec("ale_py") is None or importlib.util.find_spec("cv2") is None,
                                 reason="needs the atari extra")
CHECKED_ENVS = ["Hopper-v5", "InvertedPendulum-v5", pytest.param("ALE/Pong-v5", marks=needs_atari),
                "pbrl/HopperBackflip-v0", "pbrl/HalfCheetahOneLeg-v0", REACH]


class _OddReach(ReachEnv):
    """The test env with another observation or action space, remembering whether it was closed."""

    made: list[_OddReach] = []

    def __init__(self, observation_space: gym.Space | None = None, action_space: gym.Space | None = None, **kwargs):
        super().__init__(**kwargs)
        self.observation_space = observation_space or self.observation_space
        self.action_space = action_space or self.action_space
        self.closed = False
        _OddReach.made.append(self)

    def close(self):
        self.closed = True


_ODD_SPACES = {
    "PbrlTestPixels-v0": {"observation_space": gym.spaces.Box(0, 255, (16, 16, 3), dtype=np.uint8)},
    "PbrlTestDict-v0": {"observation_space": gym.spaces.Dict({"point": gym.spaces.Box(-1, 1, (2,))})},
    "PbrlTestMultiDiscrete-v0": {"action_space": gym.spaces.MultiDiscrete([3, 3])},
    "PbrlTestDiscreteFrom1-v0": {"action_space": gym.spaces.Discrete(3, start=1)},
    "PbrlTestNoTimeLimit-v0": {},
}


@pytest.fixture
def odd_envs(monkeypatch):
    """Test envs pbrl refuses (odd spaces, no time limit), registered for one test."""
    for env_id, kwargs in _ODD_SPACES.items():
        steps = None if "NoTimeLimit" in env_id else 5
        monkeypatch.setitem(gym.registry, env_id, gym.envs.registration.EnvSpec(
            env_id, entry_point=_OddReach, max_episode_steps=steps, kwargs=kwargs))
    _OddReach.made.clear()
    return _OddReach.made


@pytest.fixture
def without_box2d(monkeypatch):
    """Box2D missing, whether or not it is installed: its import fails and gymnasium's box2d envs load afresh."""
    monkeypatch.setitem(sys.modules, "Box2D", None)
    for name in [m for m in sys.modules if m.startswith("gymnasium.envs.box2d")]:
        monkeypatch.delitem(sys.modules, name)


def _wrapper_chain(env: gym.Env) -> list[str]:
    names = [type(env).__name__]
    while isinstance(env, gym.Wrapper):
        env = env.env
        names.append(type(env).__name__)
    return names


@pytest.mark.parametrize("env_id, env_kwargs, words", [
    ("FrozenLake-v1", None, ["'FrozenLake-v1'", "Discrete(16) observation space", "flat Box observations"]),
    ("Blackjack-v1", None, ["Tuple(Discrete(32), Discrete(11), Discrete(2)) observation space", "flat Box"]),
    ("CarRacing-v3", None, ["'CarRacing-v3' needs 'Box2D'", 'pip install "gymnasium[box2d]"']),
    ("nonexistent_mod:Foo-v0", None, ["cannot import module 'nonexistent_mod'", "'nonexistent_mod:Foo-v0'",
                                      "ModuleNotFoundError", "PYTHONPATH"]),
    ("tests.custom_env_module:NoSuch-v0", None,
     ["module 'tests.custom_env_module' imports but does not register 'NoSuch-v0'"]),
    ("tests.custom_env_module:PbrlTestRaech-v0", None, ["does not register", "did you mean PbrlTestReach-v0"]),
    (REACH, {"tagret": 2.0}, ["PbrlTestReach-v0'", "keyword argument 'tagret'", "env_kwargs", "did you mean 'target'"]),
    (REACH, {"target": 99.0}, ["cannot build", "{'target': 99.0}", "ValueError: target must be in"]),
    (REACH, {"max_episode_steps": 10}, ["'max_episode_steps' is not an env kwarg"]),
    ("Hopper-v5", {"ctrl_cost_weigth": 0.1}, ["'Hopper-v5' does not take the keyword argument 'ctrl_cost_weigth'",
                                              "did you mean 'ctrl_cost_weight'"]),
    ("PbrlTestPixels-v0", None, ["3-D Box observations (16, 16, 3)", "Atari games it prepares"]),
    ("PbrlTestDict-v0", None, ["Dict('point'", "observation space", "flat Box observations"]),
    ("PbrlTestMultiDiscrete-v0", None, ["MultiDiscrete([3 3]) action space", "Box or Discrete actions"]),
    ("PbrlTestDiscreteFrom1-v0", None, ["starting at 1", "must start at 0"]),
    ("PbrlTestNoTimeLimit-v0", None, ["has no time limit", "max_episode_steps"]),
])
def test_every_bad_input_is_one_line_that_names_it(odd_envs, without_box2d, env_id, env_kwargs, words):
    with pytest.raises(EnvSpecError) as err:
        make_env(env_id, env_kwargs=env_kwargs)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    assert all(env.closed for env in odd_envs)  # an env refused for its spaces is closed before the error


def test_the_error_comes_before_anything_else_is_done_with_the_env(odd_envs):
    with pytest.raises(EnvSpecError):
        make_env("PbrlTestPixels-v0", seed=0)
    assert len(odd_envs) == 1 and odd_envs[0].closed and odd_envs[0]._np_random is None  # never reset


def test_a_users_own_env_is_built_from_its_module_with_its_kwargs():
    env = make_env(REACH, seed=0, env_kwargs={"target": 2.0})
    assert env.unwrapped.target == 2.0 and env.spec.id == "PbrlTestReach-v0" and env.spec.kwargs["target"] == 2.0
    obs, _ = env.reset(seed=0)
    assert obs[2] == pytest.approx(2.0 - obs[0])
    _, reward, _, _, info = env.step(np.zeros(2, dtype=np.float32))
    assert info[TRUE_REWARD_KEY] == reward == pytest.approx(-np.hypot(2.0 - obs[0], obs[1]))
    assert _episode_length(env) == 50  # the module's registered time limit


def test_env_kwargs_go_over_pbrls_own():
    env = make_env("Hopper-v5", env_kwargs={"ctrl_cost_weight": 0.5})
    assert env.spec.kwargs["ctrl_cost_weight"] == 0.5 and env.spec.kwargs["terminate_when_unhealthy"] is False
    assert "FrozenTerminalState" not in _wrapper_chain(env)
    # a body that may fall again ends its episodes early, so the frozen terminal state comes back
    env = make_env("Hopper-v5", env_kwargs={"terminate_when_unhealthy": True})
    assert "FrozenTerminalState" in _wrapper_chain(env)
    assert _episode_length(env) == env.spec.max_episode_steps


# pbrl checks the env it hands out, wrappers and all (Gymnasium would rather see env.unwrapped)
@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
@pytest.mark.parametrize("env_id", CHECKED_ENVS)
def test_gymnasium_check_env_passes(env_id):
    env = make_env(env_id, seed=0, render_mode="rgb_array")
    # "human" rendering needs a display; every other render mode the env declares is made and checked
    env.metadata = {**env.metadata, "render_modes": [m for m in env.metadata["render_modes"] if m != "human"]}
    try:
        gymnasium_check_env(env, skip_render_check=False)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", CHECKED_ENVS)
def test_sb3_check_env_passes(env_id):
    env = make_env(env_id, seed=0)
    try:
        sb3_check_env(env, warn=False)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", CHECKED_ENVS)
def test_the_spec_rebuilds_the_same_wrapper_stack(env_id):
    env = make_env(env_id, seed=0, max_episode_steps=40)
    again = gym.make(env.spec)
    try:
        assert _wrapper_chain(again) == _wrapper_chain(env)
        assert again.spec == env.spec and again.spec.max_episode_steps == 40
        np.testing.assert_array_equal(again.reset(seed=3)[0], env.reset(seed=3)[0])
        assert _episode_length(again) == 40
    finally:
        env.close()
        again.close()
