"""Speed of the learned reward path: PPO steps/s with the learned reward over steps/s with the true reward.

    python scripts/speed/bench_reward_speed.py --env Hopper-v5 --steps 20480 --repeats 3 --full-steps 102400

Part 1 (the PPO path) builds two identical runs of the same env and seed, one paid the true reward and one the
learned reward (a 3-member ensemble, relabelling each rollout in one batched pass), and times ``ppo.learn`` on each,
alternating A/B ``--repeats`` times in this one process so that machine noise hits both alike. It prints both rates
and their ratio (median of the per-repeat ratios).

Part 2 (a whole run) runs the full preference loop and a true-reward run for ``--full-steps`` each, with the label
budget scaled from 700 labels per 1M steps, and prints the share of the learned run's wall time spent fitting the
reward model, and the end-to-end steps/s ratio. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from pbrl import PreferenceRun, TrainConfig
from pbrl.config import family_defaults


def _run(root: Path, name: str, **fields) -> PreferenceRun:
    return PreferenceRun.create(TrainConfig.of(run_dir=str(root / name), **fields).resolve())


def ppo_path(env: str, steps: int, repeats: int, seed: int, preset: str = "") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        runs = {r: _run(Path(tmp), r, env_id=env, reward=r, seed=seed, total_timesteps=10**9, ppo_preset=preset)
                for r in ("true", "learned")}
        for s in runs.values():  # warm-up: first rollout, torch and env initialisation
            s.ppo.learn(s.cfg.rollout_size, reset_num_timesteps=False)
        rates: dict[str, list[float]] = {"true": [], "learned": []}
        for _ in range(repeats):
            for reward, s in runs.items():
                t0 = time.perf_counter()
                s.ppo.learn(steps, reset_num_timesteps=False)
                rates[reward].append(steps / (time.perf_counter() - t0))
        for s in runs.values():
            s.close()
    ratios = [lr / tr for lr, tr in zip(rates["learned"], rates["true"], strict=True)]
    return {"true_steps_per_s": statistics.median(rates["true"]),
            "learned_steps_per_s": statistics.median(rates["learned"]), "ratio": statistics.median(ratios),
            "ratios": ratios}


def whole_run(env: str, steps: int, seed: int, preset: str = "") -> dict:
    n_labels = max(20, round(700 * steps / 1_000_000))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for reward in ("true", "learned"):
            s = _run(Path(tmp), reward, env_id=env, reward=reward, seed=seed, total_timesteps=steps,
                         n_labels=n_labels, eval_episodes=1, ppo_preset=preset,
                         **family_defaults(env, {}))
            out[reward] = s.run(progress=False)
            s.close()
    learned, true = out["learned"], out["true"]
    return {"n_labels": n_labels, "reward_fit_share": learned["reward_fit_share"],
            "reward_fit_time_s": learned["reward_fit_time_s"], "learned_wall_time_s": learned["wall_time_s"],
            "true_wall_time_s": true["wall_time_s"],
            "end_to_end_ratio": learned["env_steps_per_s"] / true["env_steps_per_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--steps", type=int, default=20480, help="PPO steps per timed repeat (part 1)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--full-steps", type=int, default=102400, help="steps of each whole run (part 2); 0 skips it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ppo-preset", default="", help="the PPO preset (default: the env's; `pbrl presets ENV`)")
    a = p.parse_args()
    result = {"env": a.env, "ppo_preset": a.ppo_preset or "default",
              "part1_ppo_path": ppo_path(a.env, a.steps, a.repeats, a.seed, a.ppo_preset)}
    r = result["part1_ppo_path"]
    print(f"PPO path, {a.env}, {a.steps} steps x {a.repeats}: true {r['true_steps_per_s']:.0f} steps/s, "
          f"learned {r['learned_steps_per_s']:.0f} steps/s, ratio learned/true {r['ratio']:.3f}", flush=True)
    if a.full_steps:
        w = result["part2_whole_run"] = whole_run(a.env, a.full_steps, a.seed, a.ppo_preset)
        print(f"whole run, {a.full_steps} steps, {w['n_labels']} labels: reward-model fitting "
              f"{100 * w['reward_fit_share']:.1f}% of wall time ({w['reward_fit_time_s']:.1f} s of "
              f"{w['learned_wall_time_s']:.1f} s); end-to-end steps/s ratio learned/true {w['end_to_end_ratio']:.3f}")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
