"""Where a backflip run's policy earns the backflip judge's score: each term of it, per episode.

    python scripts/backflip_score_breakdown.py runs/flip-judge [runs/other ...] [--episodes 5]

Replays each run's saved policy (deterministic, as ``pbrl eval`` does) on ``pbrl/HopperBackflip-v0`` and prints
one JSON line per run: the mean per episode of each term of the judge's score (``pbrl.judges.backflip_terms``:
backward turn off the floor, the air's extra, forward turn, landing), their total, the net turn at the episode's
end, and how far back it turned and the flips as ``pbrl eval`` reports them, on the episodes ``pbrl eval`` plays. A
policy whose score is mostly backward turn and air's extra while its net turn stays small is rocking, not flipping
(``results/backflip_attempts.md``, session 12).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from pbrl.config import TrainConfig
from pbrl.envs import make_env
from pbrl.envs.behaviours import count_backflips
from pbrl.evaluation import eval_venv, load_obs_rms
from pbrl.judges import backflip_terms, make_judge
from pbrl.rollout import RelabelingPPO
from pbrl.run_dir import RunDir, RunDirError

ENV_ID = "pbrl/HopperBackflip-v0"


def breakdown(path: str, episodes: int, seed: int | None = None) -> dict[str, object]:
    run = RunDir(path)
    run.check_existing()
    cfg = TrainConfig.load(run.config)
    if cfg.env_id != ENV_ID:
        raise RunDirError(f"{path} trains {cfg.env_id}; this breaks down the backflip judge's score on {ENV_ID}")
    seed = cfg.seed + 20_000 if seed is None else seed  # pbrl eval's episodes
    model = RelabelingPPO.load(str(run.policy), device="cpu")
    obs_rms = load_obs_rms(run.vecnormalize) if cfg.ppo.get("normalize", True) else None
    normaliser = eval_venv(ENV_ID, seed, obs_rms)  # only its normalize_obs: the statistics frozen as in training
    # seeded once, then reset unseeded episode after episode: the episodes ``pbrl eval`` plays from the same seed
    env, judge = make_env(ENV_ID, seed=seed, max_episode_steps=cfg.episode_steps), make_judge("backflip")
    data = env.unwrapped.data
    sums: dict[str, float] = {}
    net_turn, furthest, flips = [], [], []
    for _ in range(episodes):
        obs, _ = env.reset()
        states, feet, done = [np.concatenate([data.qpos, data.qvel])], [], False
        while not done:
            action, _ = model.predict(normaliser.normalize_obs(obs[None]), deterministic=True)
            obs, _, terminated, truncated, info = env.step(action[0])
            states.append(np.concatenate([data.qpos, data.qvel]))
            feet.append(info["feet_down"])
            done = terminated or truncated
        states = np.array(states)
        for term, steps in backflip_terms(judge, states).items():
            sums[term] = sums.get(term, 0.0) + float(steps.sum())
        net_turn.append(float(states[0, 2] - states[-1, 2]))  # rooty falls as the torso turns back
        furthest.append(round(max(0.0, -float(states[1:, 2].min())), 2))  # as ``pbrl eval`` reports it
        flips.append(count_backflips(states[1:, 2], np.array(feet)))
    env.close()
    normaliser.close()
    terms = {term: round(total / episodes, 2) for term, total in sums.items()}
    return {"run": path, "episodes": episodes, "per_episode": {**terms, "score": round(sum(terms.values()), 2)},
            "net_turn_per_episode": [round(t, 2) for t in net_turn], "furthest_back_turn_per_episode": furthest,
            "flips_per_episode": flips}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=None,
                   help="the env's seed (default: pbrl eval's, the run's seed + 20000)")
    a = p.parse_args()
    if a.episodes <= 0:
        p.error(f"--episodes must be a positive number, got {a.episodes}")
    for path in a.run_dirs:
        try:
            print(json.dumps(breakdown(path, a.episodes, a.seed)), flush=True)
        except RunDirError as exc:
            print(f"backflip_score_breakdown: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
