"""A user's own env, as pbrl sees one: a module that registers ``PbrlTestReach-v0`` when imported.

Tests build it with ``make_env("tests.custom_env_module:PbrlTestReach-v0")``, the form Gymnasium's ``gym.make`` takes.
A point in the plane is pushed by the action towards a target on the x axis; the reward is minus the distance to it,
something a reward model (and PPO) can learn in a few steps.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

ENV_ID = "PbrlTestReach-v0"
EPISODE_STEPS = 50
BOUND = 3.0  # the point stays in [-BOUND, BOUND]^2


class ReachEnv(gym.Env):
    """Observation ``(x, y, target - x, -y)``, action a 2-D push in [-1, 1]^2, reward ``-|target - point|``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, target: float = 1.0, render_mode: str | None = None):
        if not -BOUND <= target <= BOUND:
            raise ValueError(f"target must be in [-{BOUND}, {BOUND}], got {target}")
        self.target = float(target)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-2 * BOUND, 2 * BOUND, (4,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self._point = np.zeros(2)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._point, np.array([self.target, 0.0]) - self._point]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._point = self.np_random.uniform(-0.5, 0.5, size=2)
        return self._obs(), {}

    def step(self, action):
        push = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self._point = np.clip(self._point + 0.1 * push, -BOUND, BOUND)
        distance = float(np.linalg.norm(np.array([self.target, 0.0]) - self._point))
        return self._obs(), -distance, False, False, {"distance": distance}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        frame = np.full((64, 64, 3), 255, dtype=np.uint8)
        for xy, colour in (((self.target, 0.0), (0, 160, 0)), (self._point, (200, 0, 0))):  # target, then the point
            col, row = np.clip(((np.asarray(xy) + BOUND) / (2 * BOUND) * 63).astype(int), 2, 61)
            frame[61 - row:66 - row, col - 2:col + 3] = colour  # a 5x5 dot, y up
        return frame


class NaNEnv(ReachEnv):
    """An env that breaks: from step ``nan_at`` of each episode its observation holds a NaN."""

    def __init__(self, nan_at: int = 5, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.nan_at, self._t = nan_at, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._t = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self._t += 1
        if self._t >= self.nan_at:
            obs[1] = np.nan
        return obs, reward, terminated, truncated, info


# importing the module twice (or by two names) must not register twice
for _id, _entry in ((ENV_ID, "ReachEnv"), ("PbrlTestNaN-v0", "NaNEnv")):
    if _id not in gym.registry:
        gym.register(_id, entry_point=f"{__name__}:{_entry}", max_episode_steps=EPISODE_STEPS)
