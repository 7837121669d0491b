"""Getting the learned reward to PPO in one batched pass per rollout.

``RolloutRecorder`` sits directly on the DummyVecEnv (below observation normalisation) and records the raw
observations, actions, true rewards and simulator states of every step; a NaN or inf observation or reward stops
the run at that step (``NonFiniteError``) instead of being fitted, stored and handed to PPO. ``RelabelingPPO`` is
SB3's PPO with one change: when a rollout is complete it replaces the env's reward in the rollout buffer by
``reward_fn(obs, acts)`` (the ensemble, evaluated on the whole rollout at once), keeps SB3's timeout bootstrap term,
applies the same return-based reward scaling in both modes, and recomputes returns and advantages. With
``reward_fn=None`` it trains on the true reward through exactly the same path, which makes the two runs comparable.
A non-finite learned reward raises ``NonFiniteError`` before PPO sees it. What it calls (the recorder, the return
scaling, the reward and the loop's ``on_rollout``) is given at construction as ``RolloutHooks``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from pbrl.envs.make import obs_action_dims
from pbrl.envs.wrappers import STATE_KEY
from pbrl.finite import NonFiniteError, can_be_nonfinite, describe_nonfinite, first_nonfinite
from pbrl.segments import RolloutRecord

RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # obs (T, n_envs, ...), acts (T, n_envs, A) -> (T, n_envs)


def encode_actions(actions: np.ndarray, space: gym.Space) -> np.ndarray:
    """A batch of N actions as the reward model sees them: floats, one-hot for Discrete.  # (N, act_dim)"""
    actions = np.asarray(actions)
    if isinstance(space, gym.spaces.Discrete):
        return np.eye(int(space.n), dtype=np.float32)[actions.reshape(-1).astype(np.int64)]
    return actions.reshape(len(actions), -1).astype(np.float32)


class RolloutRecorder(VecEnvWrapper):
    """Record raw steps in a ring of ``capacity`` rows; ``take(n)`` returns the last ``n`` in order.

    Every observation (reset, stepped and terminal) and reward is checked for NaN and inf before it is recorded;
    ``NonFiniteError`` names ``env_id``, the env copy, the step (vector steps since the recorder was made, each one
    step of every copy), the step of its episode, and the value. Integer observations (uint8 frames) are not checked.
    """

    def __init__(self, venv: VecEnv, capacity: int, env_id: str = ""):
        super().__init__(venv)
        self.capacity = capacity
        self.env_id = env_id
        self._check_obs = can_be_nonfinite(venv.observation_space.dtype)
        n = venv.num_envs
        self._obs = np.zeros((capacity, n, *venv.observation_space.shape), dtype=venv.observation_space.dtype)
        _, act_dim = obs_action_dims(venv.observation_space, venv.action_space)
        self._acts = np.zeros((capacity, n, act_dim), dtype=np.float32)
        self._rews = np.zeros((capacity, n), dtype=np.float32)
        self._dones = np.zeros((capacity, n), dtype=bool)
        self._episodes = np.zeros((capacity, n), dtype=np.int64)
        self._env_steps = np.zeros((capacity, n), dtype=np.int64)
        self._states: np.ndarray | None = None
        self._count = 0
        self._episode = np.zeros(n, dtype=np.int64)
        self._t = np.zeros(n, dtype=np.int64)
        self._ep_return = np.zeros(n, dtype=np.float64)
        self.finished_returns: list[float] = []  # true returns of episodes finished since last drained
        self._last_obs: np.ndarray | None = None
        self._last_states: np.ndarray | None = None
        self._actions: np.ndarray | None = None

    def _reset_states(self) -> np.ndarray | None:
        infos = getattr(self.venv, "reset_infos", None)
        if not infos or STATE_KEY not in infos[0]:
            return None
        return np.stack([info[STATE_KEY] for info in infos])

    def _finite_obs(self, obs: np.ndarray) -> bool:
        return not self._check_obs or bool(np.isfinite(obs).all())

    def _nonfinite(self, i: int, step: int, episode_step: int, what: str) -> NonFiniteError:
        return NonFiniteError(f"non-finite value from {self.env_id or 'the env'}, env copy {i}, step {step} "
                              f"(episode step {episode_step}): {what}")

    def _check_step(self, obs: np.ndarray, rews: np.ndarray, dones: np.ndarray, infos: list[dict],
                    any_done: bool) -> None:
        """Raise on the first non-finite value of this step (by env copy): reward, terminal or next observation."""
        if np.isfinite(rews).all() and self._finite_obs(obs) and (not any_done or all(
                self._finite_obs(infos[i].get("terminal_observation", 0.0)) for i in np.flatnonzero(dones))):
            return
        step = self._count + 1
        for i in range(self.num_envs):  # only on failure: find and describe the first bad value
            t = int(self._t[i]) + 1
            if not np.isfinite(rews[i]):
                raise self._nonfinite(i, step, t, describe_nonfinite("reward", rews[i]))
            if dones[i] and not self._finite_obs(infos[i].get("terminal_observation", 0.0)):
                raise self._nonfinite(i, step, t, describe_nonfinite("terminal observation",
                                                                     infos[i]["terminal_observation"]))
            if not self._finite_obs(obs[i]):  # after a done, the first observation of the next episode
                raise self._nonfinite(i, step, 0 if dones[i] else t, describe_nonfinite(
                    "reset observation" if dones[i] else "observation", obs[i]))

    def reset(self):
        obs = self.venv.reset()
        if not self._finite_obs(obs):
            i = first_nonfinite(obs)[0]  # type: ignore[index]
            raise self._nonfinite(i, self._count, 0, describe_nonfinite("reset observation", obs[i]))
        self._last_obs = np.array(obs)
        self._last_states = self._reset_states()
        self._episode[self._t > 0] += 1  # a reset in mid-episode starts a new one
        self._t[:] = 0
        self._ep_return[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions
        self.venv.step_async(actions)

    def step_wait(self):
        obs, rews, dones, infos = self.venv.step_wait()
        any_done = bool(dones.any())
        self._check_step(obs, rews, dones, infos, any_done)  # before anything is recorded
        row = self._count % self.capacity
        self._obs[row] = self._last_obs
        self._acts[row] = encode_actions(self._actions, self.venv.action_space)
        self._rews[row] = rews
        self._dones[row] = dones
        self._episodes[row] = self._episode
        self._env_steps[row] = self._t
        if self._last_states is not None:
            if self._states is None:
                self._states = np.zeros((self.capacity, *self._last_states.shape), dtype=self._last_states.dtype)
            self._states[row] = self._last_states
            self._last_states = np.stack([
                self.venv.reset_infos[i][STATE_KEY] if d else info[STATE_KEY]  # type: ignore[attr-defined]
                for i, (d, info) in enumerate(zip(dones, infos, strict=True))
            ])
        self._count += 1
        self._ep_return += rews
        self._t += 1
        if any_done:
            self.finished_returns.extend(self._ep_return[dones].tolist())
            self._ep_return[dones] = 0
            self._episode[dones] += 1
            self._t[dones] = 0
        self._last_obs = np.array(obs)
        return obs, rews, dones, infos

    def take(self, n_steps: int, policy_step: int) -> RolloutRecord:
        """The last ``n_steps`` recorded steps, oldest first (copies)."""
        if n_steps > min(self._count, self.capacity):
            raise ValueError(f"only {min(self._count, self.capacity)} steps recorded, asked for {n_steps}")
        rows = (np.arange(self._count - n_steps, self._count)) % self.capacity
        return RolloutRecord(
            obs=self._obs[rows], acts=self._acts[rows], true_rews=self._rews[rows], dones=self._dones[rows],
            episodes=self._episodes[rows], env_steps=self._env_steps[rows],
            states=None if self._states is None else self._states[rows], policy_step=policy_step,
        )

    def drain_finished_returns(self) -> list[float]:
        out, self.finished_returns = self.finished_returns, []
        return out


class ReturnNormalizer:
    """Scale rewards by the running std of the discounted return (as VecNormalize does), batched over a rollout."""

    def __init__(self, n_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8):
        self.rms = RunningMeanStd(shape=())
        self.ret = np.zeros(n_envs, dtype=np.float64)
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon

    def __call__(self, rews: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """rews, dones (T, n_envs) -> scaled rewards (T, n_envs)."""
        rets = np.empty_like(rews, dtype=np.float64)
        for t in range(len(rews)):
            self.ret = self.ret * self.gamma + rews[t]
            rets[t] = self.ret
            self.ret[dones[t]] = 0.0
        self.rms.update(rets.reshape(-1))
        return np.clip(rews / np.sqrt(self.rms.var + self.epsilon), -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": float(self.rms.mean), "var": float(self.rms.var), "count": float(self.rms.count),
                "ret": self.ret.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rms.mean, self.rms.var, self.rms.count = state["mean"], state["var"], state["count"]
        self.ret = np.asarray(state["ret"], dtype=np.float64)


@dataclass
class RolloutHooks:
    """What ``RelabelingPPO`` calls once a rollout is complete."""

    recorder: RolloutRecorder  # the raw steps, below observation normalisation
    return_normalizer: Callable[[np.ndarray, np.ndarray], np.ndarray]  # a ReturnNormalizer: (rews, dones) -> scaled
    reward_fn: RewardFn | None = None  # the learned reward; None: the true reward
    on_rollout: Callable[[RolloutRecord], None] | None = None  # the loop's: cut the rollout into segments


class RelabelingPPO(PPO):
    """SB3 PPO whose rollout rewards are replaced, once per rollout, by ``hooks.reward_fn`` (or kept true if None).

    ``hooks`` are given at construction, and to ``load`` (``RelabelingPPO.load(path, env=venv, hooks=...)``); they
    are not saved. A policy loaded without them predicts and evaluates, but cannot learn."""

    def __init__(self, *args, hooks: RolloutHooks | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.hooks = hooks

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "hooks"]

    def restart_episodes(self) -> None:
        """Start the next ``learn`` from a fresh reset of the env: after the env was stepped outside PPO."""
        self._last_obs = None  # SB3's _setup_learn resets the env when there is no last observation

    def collect_rollouts(self, env, callback, rollout_buffer, n_rollout_steps: int) -> bool:
        if not super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps):
            return False
        assert self.hooks is not None, "RelabelingPPO needs its RolloutHooks to learn"
        hooks = self.hooks
        rec = hooks.recorder.take(n_rollout_steps, self.num_timesteps)
        # what SB3 added on top of the env's reward: gamma * V(terminal obs) at time-limit truncations
        bootstrap = rollout_buffer.rewards - rec.true_rews  # (T, n_envs)
        base = rec.true_rews if hooks.reward_fn is None else hooks.reward_fn(rec.obs, rec.acts)  # (T, n_envs)
        if hooks.reward_fn is not None and not np.isfinite(base).all():
            t, i = first_nonfinite(base)  # type: ignore[misc]
            raise NonFiniteError(
                f"the learned reward is non-finite at step {t + 1} of the {len(base)}-step rollout ending at agent "
                f"step {self.num_timesteps}, env copy {i}: {describe_nonfinite('reward', base[t, i])}")
        rollout_buffer.rewards[:] = hooks.return_normalizer(base, rec.dones) + bootstrap
        with th.no_grad():
            last_values = self.policy.predict_values(obs_as_tensor(self._last_obs, self.device))  # type: ignore[arg-type]
        rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=self._last_episode_starts)  # type: ignore[arg-type]
        if hooks.on_rollout is not None:
            hooks.on_rollout(rec)
        return True
