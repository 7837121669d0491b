"""Env construction: fixed-length episodes, the true reward in info, simulator state for clips."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from pbrl.envs import EnvSpecError, FrozenTerminalState, make_env
from pbrl.envs.wrappers import STATE_KEY, TRUE_REWARD_KEY


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
    frozen = obs.copy()
    for _ in range(5):
        obs, r, term, trunc, info = env.step(1)
        assert np.array_equal(obs, frozen) and r == -1.0 and not term and info["frozen"]


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
