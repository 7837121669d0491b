"""Which behaviour does a run's reward model pay for? Roll out policies on the run's training env and sum the
ensemble's mean normalised reward next to the true return.

    python scripts/tools/learned_return_of_policies.py --reward-run runs/ip_learned --policy-run runs/ip_true \
        --policy-run runs/ip_learned [--episodes 3]

A random policy is always included. A policy that the reward model pays more than a better one on the true return
is the behaviour PPO will find (results/mujoco/pendulum_investigation.md). Vector observations only.
"""

from __future__ import annotations

import argparse

import numpy as np

from pbrl import RunDir, TrainConfig
from pbrl.envs import make_env
from pbrl.errors import UserError
from pbrl.evaluation import load_saved_policy
from pbrl.reward import load_ensemble


def _act(policy, obs: np.ndarray, env) -> np.ndarray:
    if policy is None:
        return env.action_space.sample()
    model, obs_rms = policy
    if obs_rms is not None:
        obs = np.clip((obs - obs_rms.mean) / np.sqrt(obs_rms.var + 1e-8), -10.0, 10.0)
    return model.predict(obs.astype(np.float32), deterministic=True)[0]


def rollouts(reward_run: RunDir, policy, episodes: int, seed: int) -> dict[str, float]:
    """Mean learned return, true return, task ends ("falls") and episode length over ``episodes`` episodes."""
    cfg = TrainConfig.load(reward_run.config)
    ensemble, _ = load_ensemble(reward_run.pinned().reward_model)
    ensemble.eval()
    env = make_env(cfg.env_id, max_episode_steps=cfg.episode_steps, env_kwargs=cfg.env_kwargs)
    env.action_space.seed(seed)
    out: dict[str, list[float]] = {"learned": [], "true": [], "task_ends": [], "steps": []}
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        seen, acts, rews, ends = [], [], [], 0
        while True:
            act = _act(policy, obs, env)
            seen.append(obs)
            acts.append(act)
            obs, rew, terminated, truncated, info = env.step(act)
            rews.append(float(rew))
            ends += bool(info.get("task_ended"))
            if terminated or truncated:
                break
        learned = ensemble.mean_reward(np.asarray(seen, np.float32)[:, None], np.asarray(acts, np.float32)[:, None])
        out["learned"].append(float(learned.sum()))
        out["true"].append(float(np.sum(rews)))
        out["task_ends"].append(ends)
        out["steps"].append(len(rews))
    env.close()
    return {k: float(np.mean(v)) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reward-run", required=True, help="run directory whose reward ensemble pays")
    parser.add_argument("--policy-run", action="append", default=[], help="run directory of a policy (repeatable)")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=100)
    args = parser.parse_args()
    policies = {"random actions": None}
    for path in args.policy_run:
        _, model, obs_rms = load_saved_policy(RunDir(path))
        policies[path] = (model, obs_rms)
    for name, policy in policies.items():
        r = rollouts(RunDir(args.reward_run), policy, args.episodes, args.seed)
        print(f"{name}: learned return {r['learned']:.1f}, true return {r['true']:.1f}, "
              f"task ends {r['task_ends']:.1f}, steps {r['steps']:.0f}")


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:  # a run directory that holds no policy or reward model: one line
        raise SystemExit(f"learned_return_of_policies: {exc}") from None
