"""Where a backflip run's policy earns the backflip judge's score: each term of it, per episode.

    python scripts/experiments/backflip_score_breakdown.py runs/flip-judge [runs/other ...] [--episodes 5]

Replays each run's saved policy in ``pbrl eval``'s own episodes on ``pbrl/HopperBackflip-v0`` and prints
one JSON line per run: the mean per episode of each term of the judge's score (``pbrl.judges.backflip_terms``:
backward turn off the floor, the air's extra, forward turn, landing), their total, the net turn at the episode's
end, and the flips and how far back it turned as ``pbrl eval`` reports them. A policy whose score is mostly
backward turn and air's extra while its net turn stays small is rocking, not flipping
(``results/behaviours/backflip_attempts.md``, session 12).
"""

from __future__ import annotations

import argparse
import json
import sys

from pbrl import RunDir
from pbrl.envs.wrappers import STATE_KEY
from pbrl.evaluation import behaviour_summary, load_saved_policy, rollout_infos
from pbrl.judges import backflip_terms, make_judge
from pbrl.run_dir import RunDirError
from pbrl.seeds import EVAL_COMMAND_SEED

ENV_ID = "pbrl/HopperBackflip-v0"


def breakdown(path: str, episodes: int, seed: int | None = None) -> dict[str, object]:
    cfg, model, obs_rms = load_saved_policy(RunDir(path))
    if cfg.env_id != ENV_ID:
        raise RunDirError(f"{path} trains {cfg.env_id}; this breaks down the backflip judge's score on {ENV_ID}")
    # pbrl eval's own rollout, so the same episodes: the simulator state after each step (the turn in the first step,
    # from the reset state, is left out: a few thousandths of a radian from standing)
    played = rollout_infos(model, ENV_ID, episodes, cfg.seed + EVAL_COMMAND_SEED if seed is None else seed, obs_rms,
                           [STATE_KEY, "feet_down"], max_episode_steps=cfg.episode_steps)
    judge = make_judge("backflip")
    sums: dict[str, float] = {}
    for episode in played:
        for term, steps in backflip_terms(judge, episode[STATE_KEY]).items():
            sums[term] = sums.get(term, 0.0) + float(steps.sum())
    terms = {term: round(total / episodes, 2) for term, total in sums.items()}
    angles = [e[STATE_KEY][:, 2] for e in played]  # rooty falls as the torso turns back
    score = round(sum(sums.values()) / episodes, 2)
    return {"run": path, "episodes": episodes, "per_episode": {**terms, "score": score},
            "net_turn_per_episode": [round(float(a[0] - a[-1]), 2) for a in angles],
            **behaviour_summary(ENV_ID, [{"torso_angle": a, "feet_down": e["feet_down"]}
                                         for a, e in zip(angles, played, strict=True)])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=None,
                   help=f"the env's seed (default: pbrl eval's, the run's seed + {EVAL_COMMAND_SEED})")
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
