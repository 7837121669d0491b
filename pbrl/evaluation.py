"""Policy evaluation: true returns of a policy's (or a random policy's) episodes, with the behaviour counted in them.

``policy_report`` is what ``pbrl eval``, a run's own evaluations and its final one report; ``selection_score`` ranks
a run's evaluations when it keeps its best policy. How the reward model's returns follow the true ones is
``pbrl.reward.diagnostics``'s.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from pbrl.envs import make_env
from pbrl.envs.atari import GAME_SCORE_KEY
from pbrl.families import family_of

if TYPE_CHECKING:
    from pbrl.config import TrainConfig
    from pbrl.run_dir import RunDir

def load_obs_rms(path: str | Path) -> RunningMeanStd:
    """The observation statistics saved with a run's VecNormalize (what ``VecNormalize.load`` unpickles)."""
    with open(path, "rb") as fh:
        return pickle.load(fh).obs_rms


def load_saved_policy(run: RunDir) -> tuple[TrainConfig, BaseAlgorithm, RunningMeanStd | None]:
    """A run directory's config, saved policy (on the CPU) and the observation statistics it was trained
    with (None without observation normalisation): what ``pbrl eval``, ``pbrl video`` and the scripts replay."""
    from pbrl.config import TrainConfig
    from pbrl.rollout import RelabelingPPO

    run.check_existing()
    cfg = TrainConfig.load(run.config)
    run = run.pinned()  # the policy and its statistics from one checkpoint, even while the run writes the next
    run.verify_checkpoint()
    model = RelabelingPPO.load(str(run.policy), device="cpu")
    obs_rms = load_obs_rms(run.vecnormalize) if cfg.ppo.settings.get("normalize", True) else None
    return cfg, model, obs_rms


def eval_venv(env_id: str, seed: int, obs_rms: RunningMeanStd | None, max_episode_steps: int | None = None,
              env_kwargs: dict[str, Any] | None = None) -> VecNormalize:
    """One env copy with the training run's observation statistics, frozen."""
    env_fn = lambda: Monitor(make_env(env_id, seed=seed, max_episode_steps=max_episode_steps,  # noqa: E731
                                      env_kwargs=env_kwargs, for_evaluation=True))
    venv = VecNormalize(DummyVecEnv([env_fn]), training=False,
                        norm_obs=obs_rms is not None, norm_reward=False)
    if obs_rms is not None:
        venv.obs_rms = obs_rms
    return venv


def true_returns(model: BaseAlgorithm, env_id: str, n_episodes: int, seed: int,
                 obs_rms: RunningMeanStd | None, deterministic: bool = True,
                 max_episode_steps: int | None = None, env_kwargs: dict[str, Any] | None = None) -> np.ndarray:
    """True (oracle) returns of ``n_episodes`` of ``model``'s policy.  # (n_episodes,)"""
    venv = eval_venv(env_id, seed, obs_rms, max_episode_steps, env_kwargs)
    try:
        rets, _ = evaluate_policy(model, venv, n_eval_episodes=n_episodes, deterministic=deterministic,
                                  return_episode_rewards=True)
    finally:
        venv.close()
    return np.asarray(rets, dtype=np.float64)


def rollout_infos(model: BaseAlgorithm, env_id: str, n_episodes: int, seed: int, obs_rms: RunningMeanStd | None,
                  keys: Sequence[str], deterministic: bool = True, max_episode_steps: int | None = None,
                  env_kwargs: dict[str, Any] | None = None) -> list[dict[str, np.ndarray]]:
    """Per episode of ``model``'s policy: the ``info`` values under ``keys`` at every step, and ``return``."""
    venv = eval_venv(env_id, seed, obs_rms, max_episode_steps, env_kwargs)
    episodes: list[dict[str, np.ndarray]] = []
    try:
        obs = venv.reset()
        steps: dict[str, list] = {k: [] for k in keys}
        total = 0.0
        while len(episodes) < n_episodes:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, _, dones, infos = venv.step(action)
            for k in keys:  # a key an env gives only on some steps (a game's score when it ends) is NaN on others
                steps[k].append(infos[0].get(k, np.nan))
            total += float(infos[0].get("true_reward", 0.0))
            if dones[0]:
                episodes.append({"return": np.float64(total), **{k: np.asarray(v) for k, v in steps.items()}})
                steps, total = {k: [] for k in keys}, 0.0
    finally:
        venv.close()
    return episodes


def behaviour_keys(env_id: str) -> list[str]:
    """The ``info`` keys the behaviour envs are judged by, and Atari runs' scores per game (none for other envs)."""
    return list(family_of(env_id).eval_keys)


def behaviour_summary(env_id: str, episodes: list[dict[str, np.ndarray]]) -> dict[str, object]:
    """Backflips per episode on HopperBackflip, and on Atari the score of each game finished inside the fixed-length
    episodes (what papers report as the score), from episodes recorded with ``behaviour_keys``; empty elsewhere."""
    keys = behaviour_keys(env_id)
    if not keys:
        return {}
    if keys == [GAME_SCORE_KEY]:
        games = [float(g) for e in episodes for g in e[GAME_SCORE_KEY] if not np.isnan(g)]
        return {"game_scores": games, "game_score_mean": float(np.mean(games)) if games else None}
    from pbrl.envs.behaviours import count_backflips

    flips = [count_backflips(e["torso_angle"], e["feet_down"]) for e in episodes]
    # how far back it got (radians from the start, 2π a whole turn): the progress of a policy that does not flip yet
    turned = [round(float(max(0.0, -np.min(e["torso_angle"]))), 2) for e in episodes]
    return {"flips_per_episode": flips, "episodes_with_a_flip": sum(f >= 1 for f in flips),
            "n_behaviour_episodes": len(flips), "furthest_back_turn_per_episode": turned}


def policy_report(model: BaseAlgorithm, env_id: str, n_episodes: int, seed: int, obs_rms: RunningMeanStd | None,
                  deterministic: bool = True, max_episode_steps: int | None = None,
                  env_kwargs: dict[str, Any] | None = None) -> dict[str, object]:
    """What ``pbrl eval`` and a run's own evaluations report of a policy: its true returns over ``n_episodes``
    episodes from ``seed`` and, on the behaviour envs, the behaviour counted in the same episodes (one rollout of
    them gives both)."""
    behaviour: dict[str, object] = {}
    keys = behaviour_keys(env_id)
    if keys:
        eps = rollout_infos(model, env_id, n_episodes, seed, obs_rms, keys, deterministic, max_episode_steps,
                            env_kwargs)
        rets = np.array([e["return"] for e in eps], dtype=np.float64)
        behaviour = behaviour_summary(env_id, eps)
    else:
        rets = true_returns(model, env_id, n_episodes, seed, obs_rms, deterministic, max_episode_steps, env_kwargs)
    return {"n_eval_episodes": len(rets), "eval_true_return_mean": float(rets.mean()),
            "eval_true_return_std": float(rets.std()), "returns": [round(float(r), 3) for r in rets], **behaviour}


def selection_score(report: dict[str, object], env_id: str | None = None) -> tuple[float, ...]:
    """How a run's evaluations are ranked when it keeps its best policy (by the ``ranking`` of ``env_id``'s family;
    without an env, by what the report holds): "backflips" ranks the episodes with a flip, then the flips, then how
    far back the episodes turned (progress before the first flip), then the true return; "return" the mean true
    return."""
    ret = float(report["eval_true_return_mean"])  # type: ignore[arg-type]
    ranking = family_of(env_id).ranking if env_id is not None else "backflips"
    if ranking == "backflips" and "flips_per_episode" in report:
        turned = float(np.mean(report.get("furthest_back_turn_per_episode", [0.0])))  # type: ignore[arg-type]
        return (float(report["episodes_with_a_flip"]), float(sum(report["flips_per_episode"])), turned,  # type: ignore
                ret)
    return (ret,)


def random_returns(env_id: str, n_episodes: int, seed: int, max_episode_steps: int | None = None,
                   env_kwargs: dict[str, Any] | None = None) -> np.ndarray:
    """True returns of a uniformly random policy.  # (n_episodes,)"""
    env = make_env(env_id, seed=seed, max_episode_steps=max_episode_steps, env_kwargs=env_kwargs, for_evaluation=True)
    env.action_space.seed(seed)
    rets = []
    for _ in range(n_episodes):
        env.reset()
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            total += float(r)
            done = term or trunc
        rets.append(total)
    env.close()
    return np.asarray(rets)
