"""CPU time of the Atari CNN reward model with glibc's default malloc against ``pbrl.allocator.reuse_freed_memory``.

    python scripts/speed/bench_allocator.py --repeats 3 --out results/speed/allocator

Each measurement is a fresh child process (malloc settings cannot be undone in a process), alternating default /
reuse ``--repeats`` times in this one invocation so that machine noise hits both alike. A child fits a 3-member
CNN ensemble (the Atari reward model) on random 4 x 84 x 84 frame-stack pairs, ``--batches`` minibatches of 16 pairs
per member per epoch as ``pbrl train`` does on Atari, and relabels 1,024-step rollouts (8 envs x 128 steps) as the
learned reward does. It reports wall seconds, user and system CPU seconds and minor page faults; the parent prints
the median of each and the ratio default / reuse of the wall times. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _usage() -> tuple[float, float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime, r.ru_stime, r.ru_minflt


def _since(start: tuple[float, float, float, int]) -> dict:
    end = _usage()
    return {"wall_s": end[0] - start[0], "user_s": end[1] - start[1], "sys_s": end[2] - start[2],
            "minor_faults": end[3] - start[3]}


def random_atari_fit(batches: int, channels_last: bool = True):
    """The Atari reward model (3 CNN members, trained channels-last on a CPU unless ``channels_last`` is False), its
    trainer taking ``batches`` minibatches of 16 pairs per member and epoch as ``pbrl train`` does on Atari, and 200
    labelled pairs of random 4 x 84 x 84 frame stacks."""
    import torch

    from pbrl.reward import CnnRewardConfig, CnnRewardEnsemble, PreferenceDataset, RewardTrainer, TrainerConfig

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 200
    data = PreferenceDataset(rng.integers(0, 256, (n, 2, 25, 4, 84, 84), dtype=np.uint8),
                             np.zeros((n, 2, 25, 6), np.float32), rng.integers(0, 2, n).astype(np.float64),
                             np.arange(n) % 10 == 0)
    model = CnnRewardEnsemble(CnnRewardConfig((4, 84, 84), 6), channels_last=channels_last)
    return model, RewardTrainer(model, TrainerConfig(batch_size=16, max_batches=batches), rng), data


def child(reuse: bool, threads: int, batches: int, epochs: int, rollouts: int) -> dict:
    import torch

    from pbrl.allocator import reuse_freed_memory

    set_ok = reuse_freed_memory() if reuse else False
    torch.set_num_threads(threads)
    model, trainer, data = random_atari_fit(batches)
    rng = trainer.rng  # the generator that drew the pairs draws the rollouts
    trainer.fit(data, 1)  # warm-up
    start = _usage()
    trainer.fit(data, epochs)
    fit = _since(start)
    rollout = rng.integers(0, 256, (128, 8, 4, 84, 84), dtype=np.uint8)
    acts = np.zeros((128, 8, 6), np.float32)
    model.mean_reward(rollout, acts)  # warm-up
    start = _usage()
    for _ in range(rollouts):
        model.mean_reward(rollout, acts)
    relabel = _since(start)
    return {"reuse": reuse, "reuse_set": set_ok, "fit": fit, "fit_steps": epochs * batches, "relabel": relabel,
            "relabel_rollouts": rollouts}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (pbrl train's --torch-threads default)")
    p.add_argument("--batches", type=int, default=8, help="minibatches per fitting epoch")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rollouts", type=int, default=5, help="1,024-step rollouts relabelled")
    p.add_argument("--out", default="", help="write OUT.json")
    p.add_argument("--child", choices=["default", "reuse"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.child == "reuse", a.threads, a.batches, a.epochs, a.rollouts)))
        return
    args = [sys.executable, __file__, "--threads", str(a.threads), "--batches", str(a.batches), "--epochs",
            str(a.epochs), "--rollouts", str(a.rollouts)]
    runs: dict[str, list[dict]] = {"default": [], "reuse": []}
    for i in range(a.repeats):
        for mode in runs:
            out = subprocess.run([*args, "--child", mode], check=True, capture_output=True, text=True).stdout
            runs[mode].append(json.loads(out.strip().splitlines()[-1]))
            r = runs[mode][-1]
            print(f"repeat {i + 1} {mode:7s}: fit {r['fit']['wall_s']:.1f} s (sys {r['fit']['sys_s']:.1f}), "
                  f"relabel {r['relabel']['wall_s']:.1f} s (sys {r['relabel']['sys_s']:.1f})", flush=True)

    def med(mode: str, part: str, key: str) -> float:
        return statistics.median(r[part][key] for r in runs[mode])

    summary = {}
    for part in ("fit", "relabel"):
        summary[part] = {mode: {k: med(mode, part, k) for k in ("wall_s", "user_s", "sys_s", "minor_faults")}
                         for mode in runs}
        ratios = [d[part]["wall_s"] / r[part]["wall_s"] for d, r in zip(runs["default"], runs["reuse"], strict=True)]
        summary[part]["speedup_default_over_reuse"] = statistics.median(ratios)
        summary[part]["speedups"] = ratios
        d, r, x = summary[part]["default"], summary[part]["reuse"], summary[part]["speedup_default_over_reuse"]
        print(f"{part:8s} default {d['wall_s']:.1f} s (user {d['user_s']:.1f}, sys {d['sys_s']:.1f}, "
              f"{d['minor_faults']:,} faults) | reuse {r['wall_s']:.1f} s (user {r['user_s']:.1f}, "
              f"sys {r['sys_s']:.1f}, {r['minor_faults']:,} faults) | speed-up x{x:.2f}")
    result = {"command": " ".join(["python", "scripts/speed/bench_allocator.py", *sys.argv[1:]]), "threads": a.threads,
              "fit_steps": a.epochs * a.batches, "relabel_rollouts": a.rollouts, "summary": summary, "runs": runs}
    if a.out:
        Path(a.out).with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
