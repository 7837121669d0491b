"""CPU time of the two CNN updates of an Atari run, in torch's default memory format and in channels-last.

    python scripts/speed/bench_channels_last.py --repeats 3 --out results/speed/channels_last

Both halves run in this one process, alternating default / channels-last ``--repeats`` times so that machine noise
hits both alike, each on the same weights and the same data:

- **reward fit**: a 3-member CNN ensemble (the Atari reward model) fitted on random 4 x 84 x 84 frame-stack pairs,
  ``--batches`` minibatches of 16 pairs per member, as ``pbrl train`` does on Atari (``pbrl.reward.trainer``);
  the ensemble's ``channels_last`` option switches the layout of the frames while the model trains.
- **PPO update**: SB3 PPO with the RL Zoo's Atari settings (CnnPolicy, 8 envs x 128 steps, minibatches of 256,
  4 epochs) on one rollout of ALE/Pong-v5 through pbrl's Atari preprocessing; ``PPO.train`` is timed with the
  policy as SB3 builds it and after ``policy.to(memory_format=torch.channels_last)``, as ``pbrl train`` does on
  a CPU.

It prints the median wall seconds of each and the ratio default / channels-last. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from bench_allocator import random_atari_fit  # scripts/ is on the path when a script runs

from pbrl.allocator import reuse_freed_memory


def reward_fit(channels_last: bool, batches: int, epochs: int) -> float:
    _, trainer, data = random_atari_fit(batches, channels_last=channels_last)
    trainer.fit(data, 1)  # warm-up
    start = time.perf_counter()
    trainer.fit(data, epochs)
    return time.perf_counter() - start


def pong_ppo():
    """SB3 PPO with the Atari settings on Pong, one rollout collected: what ``PPO.train`` updates from."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from pbrl.envs import make_env
    from pbrl.ppo_defaults import ppo_defaults

    p = ppo_defaults("ALE/Pong-v5")
    venv = DummyVecEnv([lambda i=i: make_env("ALE/Pong-v5", seed=i) for i in range(p["n_envs"])])
    model = PPO(p["policy"], venv, n_steps=p["n_steps"], batch_size=p["batch_size"], n_epochs=p["n_epochs"],
                learning_rate=p["learning_rate"], clip_range=p["clip_range"], ent_coef=p["ent_coef"], seed=0,
                device="cpu", verbose=0)
    model.learn(p["n_steps"] * p["n_envs"])  # one rollout and one update: the buffer stays full
    return model, copy.deepcopy((model.policy.state_dict(), model.policy.optimizer.state_dict()))


def ppo_update(model, start_state, channels_last: bool, updates: int) -> float:
    """Time ``updates`` calls of ``PPO.train``, each from the same weights and optimiser state."""
    model.policy.to(memory_format=torch.contiguous_format)
    model.policy.load_state_dict(start_state[0])
    model.policy.optimizer.load_state_dict(start_state[1])
    if channels_last:
        model.policy.to(memory_format=torch.channels_last)
    model.train()  # warm-up
    start = time.perf_counter()
    for _ in range(updates):
        model.train()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the full Pong run used 2)")
    p.add_argument("--batches", type=int, default=16, help="reward minibatches per fitting epoch")
    p.add_argument("--epochs", type=int, default=3, help="reward fitting epochs timed")
    p.add_argument("--updates", type=int, default=3, help="PPO updates (each 4 epochs over the rollout) timed")
    p.add_argument("--out", default="", help="write OUT.json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    reuse_freed_memory()  # as pbrl train does: otherwise the fits fault in fresh pages (results/speed/allocator.md)
    model, start_state = pong_ppo()
    runs: dict[str, dict[str, list[float]]] = {"reward_fit": {"default": [], "channels_last": []},
                                                "ppo_update": {"default": [], "channels_last": []}}
    for i in range(a.repeats):
        for mode in ("default", "channels_last"):
            cl = mode == "channels_last"
            runs["reward_fit"][mode].append(reward_fit(cl, a.batches, a.epochs))
            runs["ppo_update"][mode].append(ppo_update(model, start_state, cl, a.updates))
            print(f"repeat {i + 1} {mode:13s}: reward fit {runs['reward_fit'][mode][-1]:.1f} s, "
                  f"PPO update {runs['ppo_update'][mode][-1]:.1f} s", flush=True)
    summary = {}
    for part, by_mode in runs.items():
        ratios = [d / c for d, c in zip(by_mode["default"], by_mode["channels_last"], strict=True)]
        summary[part] = {"default_s": statistics.median(by_mode["default"]),
                         "channels_last_s": statistics.median(by_mode["channels_last"]),
                         "speedup": statistics.median(ratios), "speedups": ratios}
        s = summary[part]
        print(f"{part:10s} default {s['default_s']:.1f} s | channels-last {s['channels_last_s']:.1f} s | "
              f"speed-up x{s['speedup']:.2f} (repeats: {', '.join(f'{r:.2f}' for r in ratios)})")
    result = {"command": " ".join(["python", "scripts/speed/bench_channels_last.py", *sys.argv[1:]]),
              "threads": a.threads, "reward_fit_steps": a.epochs * a.batches, "ppo_updates": a.updates,
              "torch": torch.__version__, "summary": summary, "runs": runs}
    if a.out:
        Path(a.out).with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
