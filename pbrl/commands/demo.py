"""``pbrl demo``: learned-reward PPO from synthetic preferences beside true-reward PPO and random actions."""

from __future__ import annotations

import argparse
from typing import Any

from pbrl.commands.train import check_env, ppo_overrides
from pbrl.config import TrainConfig
from pbrl.run_dir import RunDir
from pbrl.seeds import DEMO_RANDOM_POLICY_SEED

#: The embedded default of ``pbrl demo``: minutes on 2 cores, long enough for both agents to leave random behind.
DEMO = {"env_id": "HalfCheetah-v5", "total_timesteps": 100_000, "n_labels": 200}


def _demo_worker(cfg_json: str, position: int) -> dict[str, Any]:
    from pbrl.loop import PreferenceRun

    training = PreferenceRun.create(TrainConfig.from_json(cfg_json))
    try:
        return training.run(progress=True, position=position)
    finally:
        training.close()


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def cmd_demo(args: argparse.Namespace) -> int:
    import time
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    import numpy as np

    from pbrl.evaluation import random_returns

    root = RunDir(args.run_dir or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    root.check_new()
    configs = []
    for reward in ("learned", "true"):
        cfg = TrainConfig.of(env_id=args.env_id, reward=reward, n_labels=args.n_labels, seed=args.seed,
                             total_timesteps=args.total_timesteps, eval_episodes=args.eval_episodes,
                             run_dir=str(root.path / reward), label_interval=max(args.total_timesteps // 20, 1))
        cfg.ppo.settings = ppo_overrides(cfg.env_id, [])
        cfg.validate()
        configs.append(cfg.resolve())
    check_env(args.env_id, None)
    print(f"pbrl demo: {args.env_id}, {args.total_timesteps} PPO steps per agent, {args.n_labels} synthetic labels; "
          f"runs in {root.path}", flush=True)
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_demo_worker, cfg.to_json(), i) for i, cfg in enumerate(configs)]
        learned, true = (f.result() for f in futures)
    rand = random_returns(args.env_id, args.eval_episodes, seed=args.seed + DEMO_RANDOM_POLICY_SEED)
    rows = [("random actions", float(np.mean(rand)), float(np.std(rand)), ""),
            ("PPO on the learned reward", learned["eval_true_return_mean"], learned["eval_true_return_std"],
             f"{learned['n_labels']} labels, reward-model val acc {_fmt(learned['reward_model_val_accuracy'])}, "
             f"learned/true return corr {_fmt(learned['learned_true_return_corr'])} (held-out segments)"),
            ("PPO on the true reward", true["eval_true_return_mean"], true["eval_true_return_std"], "")]
    print(f"\ntrue return over {args.eval_episodes} episodes ({args.env_id}, {args.total_timesteps} steps, "
          f"seed {args.seed}):")
    for name, mean, std, note in rows:
        print(f"  {name:<27} {mean:>9.1f} ± {std:<7.1f} {note}")
    span = true["eval_true_return_mean"] - float(np.mean(rand))
    if span > 0:
        share = (learned["eval_true_return_mean"] - float(np.mean(rand))) / span
        print(f"  the learned-reward agent closes {100 * share:.0f}% of the gap from random to true-reward PPO")
    return 0
