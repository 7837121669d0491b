"""``make_env``: the one place an env is built for pbrl, with every wrapper listed in order."""

from __future__ import annotations

import difflib

import gymnasium as gym
import numpy as np

from pbrl.envs.wrappers import FrozenTerminalState, RecordSimulatorState, TrueRewardInInfo


class EnvSpecError(ValueError):
    """An env id pbrl cannot build, with the reason and what to do instead."""


# Keyword arguments that make a MuJoCo v5 env run to its time limit (termination becomes the loss of the
# healthy reward: a penalty) and that remove torque penalties from the reward the oracle sees, as the paper did.
_MUJOCO_KWARGS: dict[str, dict[str, float | bool]] = {
    "Hopper": {"terminate_when_unhealthy": False, "ctrl_cost_weight": 0.0},
    "Walker2d": {"terminate_when_unhealthy": False, "ctrl_cost_weight": 0.0},
    "Ant": {"terminate_when_unhealthy": False, "ctrl_cost_weight": 0.0},
    "Humanoid": {"terminate_when_unhealthy": False, "ctrl_cost_weight": 0.0},
    "HalfCheetah": {"ctrl_cost_weight": 0.0},
    "Swimmer": {"ctrl_cost_weight": 0.0},
    "Reacher": {"reward_control_weight": 0.0},
}

_TRUE_REWARD_TEXT: dict[str, str] = {
    "Hopper": "forward velocity + 1 per step while healthy (no torque penalty); falling costs the healthy bonus",
    "Walker2d": "forward velocity + 1 per step while healthy (no torque penalty); falling costs the healthy bonus",
    "Ant": "forward velocity + 1 per step while healthy - contact cost (no torque penalty)",
    "Humanoid": "forward velocity + 5 per step while healthy - contact cost (no torque penalty)",
    "HalfCheetah": "forward velocity (no torque penalty)",
    "BeamRider": "the game score (unclipped)", "Breakout": "the game score (unclipped)",
    "Enduro": "the game score (unclipped)", "Pong": "the game score (unclipped)", "Qbert": "the game score (unclipped)",
    "Seaquest": "the game score (unclipped)", "SpaceInvaders": "the game score (unclipped)",
    "Swimmer": "forward velocity (no torque penalty)",
    "Reacher": "minus the fingertip's distance to the target (no torque penalty)",
    "HopperBackflip": "none: the env pays 0; a person (or the backflip judge) decides what is better",
    "HalfCheetahOneLeg": "none: the env pays 0; a person (or the one-leg judge) decides what is better",
    "InvertedPendulum": "+1 per step balanced; after the pole falls the state freezes and pays 0",
    "InvertedDoublePendulum": "the env's alive bonus minus distance and velocity penalties; frozen and 0 after a fall",
}


def _base_name(env_id: str) -> str:
    return env_id.split("/")[-1].split("-v")[0]


def validate_env_id(env_id: str) -> gym.envs.registration.EnvSpec | None:
    """Return the spec of ``env_id`` (None for the Atari games) or raise ``EnvSpecError`` with a reason and fix."""
    from pbrl.envs.atari import GAMES, game_of

    if env_id.startswith("ALE/") or "NoFrameskip" in env_id:
        if game_of(env_id) is None:
            raise EnvSpecError(f"{env_id!r} is not one of the Atari games pbrl prepares (score masks, no game-over "
                               f"signal): {', '.join(f'ALE/{g}-v5' for g in GAMES)}")
        return None
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.registry for the ids installed"
        raise EnvSpecError(f"unknown env id {env_id!r} ({type(exc).__name__}){hint}") from None
    return spec


def make_env(env_id: str, seed: int | None = None, render_mode: str | None = None,
             max_episode_steps: int | None = None) -> gym.Env:
    """Build ``env_id`` for pbrl, in this order:

    1. ``gym.make`` with the fixed-length / no-torque-penalty kwargs of ``_MUJOCO_KWARGS`` where they apply,
       and ``max_episode_steps`` (the fixed episode length) when given instead of the registered time limit;
    2. ``FrozenTerminalState`` for any env that can still terminate early (episodes run to the time limit);
    3. ``TrueRewardInInfo``: the oracle's reward is copied to ``info["true_reward"]``;
    4. ``RecordSimulatorState`` for MuJoCo envs: ``info["pbrl_state"]`` holds qpos/qvel for re-rendering clips.
    """
    validate_env_id(env_id)
    if env_id.startswith("ALE/"):
        return _make_atari(env_id, seed, render_mode, max_episode_steps)
    kwargs = dict(_MUJOCO_KWARGS.get(_base_name(env_id), {}))
    if max_episode_steps is not None:
        if max_episode_steps < 1:
            raise EnvSpecError(f"episode length must be >= 1, got {max_episode_steps}")
        kwargs["max_episode_steps"] = max_episode_steps
    env = gym.make(env_id, render_mode=render_mode, **kwargs)
    obs_space = env.observation_space
    if isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) >= 2:
        env.close()
        raise EnvSpecError(
            f"{env_id!r} has image observations {obs_space.shape}; pbrl's CNN reward model takes the Atari games "
            "it prepares (ALE/Pong-v5, ...); for other image envs use a state-based version"
        )
    if not isinstance(env.action_space, gym.spaces.Box | gym.spaces.Discrete):
        env.close()
        kind = type(env.action_space).__name__
        raise EnvSpecError(f"{env_id!r} has a {kind} action space; pbrl supports Box and Discrete")
    if "terminate_when_unhealthy" not in kwargs and env.spec is not None and env.spec.max_episode_steps:
        env = FrozenTerminalState(env)
    env = TrueRewardInInfo(env)
    if hasattr(env.unwrapped, "data") and hasattr(env.unwrapped, "model"):
        env = RecordSimulatorState(env)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def _make_atari(env_id: str, seed: int | None, render_mode: str | None, max_episode_steps: int | None) -> gym.Env:
    from pbrl.envs.atari import make_atari
    from pbrl.extras import MissingExtra

    try:
        env = TrueRewardInInfo(make_atari(env_id, max_episode_steps, render_mode))
    except MissingExtra as exc:
        raise EnvSpecError(str(exc)) from None
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def falls_over(env_id: str) -> bool:
    """A MuJoCo body whose termination pbrl turns into a penalty (it runs on, lying, after a fall)."""
    return bool(_MUJOCO_KWARGS.get(_base_name(env_id), {}).get("terminate_when_unhealthy") is False)


def describe_true_reward(env_id: str) -> str:
    """The true reward the synthetic oracle compares for ``env_id``, in words."""
    return _TRUE_REWARD_TEXT.get(_base_name(env_id), "the env's own reward, with episodes run to the time limit")


def obs_action_dims(observation_space: gym.Space, action_space: gym.Space) -> tuple[int, int]:
    """Flat observation size and reward-model action size (one-hot width for Discrete actions)."""
    obs_dim = int(np.prod(observation_space.shape))
    act_dim = int(action_space.n) if isinstance(action_space, gym.spaces.Discrete) else int(np.prod(action_space.shape))
    return obs_dim, act_dim
