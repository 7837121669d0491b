"""Gymnasium wrappers that keep episode ends from leaking the reward and record simulator state.

``FrozenTerminalState`` turns termination into a frozen state that runs to the time limit; ``TrueRewardInInfo``
keeps the env's own reward in ``info``; ``RecordSimulatorState`` puts the MuJoCo state (qpos, qvel) into ``info`` so
that clips of a segment can be re-rendered later. All three record their constructor arguments
(``gymnasium.utils.RecordConstructorArgs``), so ``gym.make(env.spec)`` rebuilds the env ``make_env`` built.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

STATE_KEY = "pbrl_state"
TRUE_REWARD_KEY = "true_reward"


class FrozenTerminalState(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Replace termination by a frozen terminal state that lasts until the time limit.

    After the wrapped env terminates, every further step returns the terminal observation and
    ``terminal_reward`` (0 by default: a penalty relative to staying alive in envs that pay for it), so all
    episodes have the length of the time limit and the episode end says nothing about the reward.
    """

    def __init__(self, env: gym.Env, terminal_reward: float = 0.0):
        gym.utils.RecordConstructorArgs.__init__(self, terminal_reward=terminal_reward)
        super().__init__(env)
        if env.spec is None or env.spec.max_episode_steps is None:
            raise ValueError(
                f"FrozenTerminalState needs a time limit on {env}; register the env with max_episode_steps"
            )
        self.terminal_reward = float(terminal_reward)
        self.max_episode_steps = int(env.spec.max_episode_steps)
        self._elapsed = 0
        self._frozen_obs: Any = None
        self._frozen_info: dict[str, Any] = {}

    def reset(self, **kwargs):
        self._frozen_obs, self._frozen_info = None, {}
        self._elapsed = 0
        return self.env.reset(**kwargs)

    def step(self, action) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        self._elapsed += 1
        if self._frozen_obs is not None:
            # the inner TimeLimit no longer sees steps, so the time limit is kept here
            truncated = self._elapsed >= self.max_episode_steps
            # copies: a caller that keeps (or edits) one step's data must not change the next step's
            obs, info = deepcopy(self._frozen_obs), deepcopy(self._frozen_info)
            return obs, self.terminal_reward, False, truncated, {**info, "frozen": True}
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            self._frozen_obs, self._frozen_info = deepcopy(obs), deepcopy(info)
            terminated = False
        return obs, reward, terminated, truncated, info


class RestartAfterEnd(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """After the wrapped env terminates, start the task again inside the same episode, which lasts until the time
    limit; with ``hold_steps`` > 0, first show the terminal state for that many steps, paying ``terminal_reward``.

    For tasks whose end is a failure (a pendulum's pole has fallen): a terminal state frozen until the time limit
    leaves most of each episode's steps without signal, while a restart keeps the steps informative and every
    episode the length of the time limit. Without a hold, the step that ends the task returns its own reward and the
    new start's observation; a hold makes a fall cost that many more steps of reward. The first observation of the
    new task comes with ``info["task_ended"]``. The restart is seeded from the episode's own random stream
    (``reset()`` without a seed), so seeded episodes stay reproducible.
    """

    def __init__(self, env: gym.Env, hold_steps: int = 0, terminal_reward: float = 0.0):
        gym.utils.RecordConstructorArgs.__init__(self, hold_steps=hold_steps, terminal_reward=terminal_reward)
        super().__init__(env)
        if env.spec is None or env.spec.max_episode_steps is None:
            raise ValueError(f"RestartAfterEnd needs a time limit on {env}; register the env with max_episode_steps")
        self.max_episode_steps = int(env.spec.max_episode_steps)
        self.hold_steps, self.terminal_reward = int(hold_steps), float(terminal_reward)
        self._elapsed, self._held = 0, -1
        self._frozen: tuple[Any, dict[str, Any]] | None = None

    def reset(self, **kwargs):
        self._elapsed, self._held, self._frozen = 0, -1, None
        return self.env.reset(**kwargs)

    def step(self, action) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        self._elapsed += 1
        truncated = self._elapsed >= self.max_episode_steps  # the inner time limit restarts with the task
        if self._frozen is not None:
            self._held += 1
            if self._held < self.hold_steps:
                obs, info = deepcopy(self._frozen[0]), deepcopy(self._frozen[1])
                return obs, self.terminal_reward, False, truncated, {**info, "frozen": True}
            self._frozen = None
            obs, info = self.env.reset()
            return obs, self.terminal_reward, False, truncated, {**info, "task_ended": True}
        obs, reward, terminated, _, info = self.env.step(action)
        if terminated and self.hold_steps == 0:
            obs, start_info = self.env.reset()
            info = {**start_info, **info, "task_ended": True}
        elif terminated:
            self._frozen, self._held = (deepcopy(obs), deepcopy(info)), 0
        return obs, reward, False, truncated, info


class RecordSimulatorState(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Add the MuJoCo state ``concat(qpos, qvel)`` before the next step to ``info[STATE_KEY]``.

    The state is the one the returned observation was taken in, so a segment's states line up with its
    observations and a clip can be rendered by setting each state in turn.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        if not hasattr(env.unwrapped, "data"):
            raise ValueError(f"RecordSimulatorState needs a MuJoCo env, got {env.unwrapped}")

    def _state(self) -> np.ndarray:
        data = self.env.unwrapped.data  # type: ignore[attr-defined]
        return np.concatenate([data.qpos, data.qvel]).astype(np.float32)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        info[STATE_KEY] = self._state()
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info[STATE_KEY] = self._state()
        return obs, reward, terminated, truncated, info


class TrueRewardInInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Copy the env's reward into ``info[TRUE_REWARD_KEY]`` so it stays visible whatever PPO is paid."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info[TRUE_REWARD_KEY] = float(reward)
        return obs, reward, terminated, truncated, info
