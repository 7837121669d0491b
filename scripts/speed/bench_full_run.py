"""A whole `pbrl train` run on the learned reward beside the same run on the true reward, one core each.

    python scripts/speed/bench_full_run.py --env Hopper-v5 --steps 1000000 --labels 700 \
        --out results/speed/hopper_1m.json

Both runs start together, each as its own `pbrl train` process pinned to one core (on a machine with fewer than
two cores they share it), with the env's default preset and the same seed; nothing else should run meanwhile.
The learned run pays for everything the method adds: the random-action segments before RL, labelling, fitting
the ensemble, choosing queries, the held-out correlations and the reward model's checkpoints. Prints and writes
each run's wall time (its `metrics.json`), the ratio learned/true, and where the learned run's extra time went.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _start(run_dir: Path, core: int | None, args: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pbrl", "train", "--run-dir", str(run_dir), "--no-progress", *args]

    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})

    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=pin)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--labels", type=int, default=700)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learned-args", default="", help="more `pbrl train` flags for the learned run only, as one "
                   "string (e.g. \"--fit-max-batches 2\")")
    p.add_argument("--out", type=Path, help="write the result here as JSON")
    a = p.parse_args()
    common = ["--env", a.env, "--total-timesteps", str(a.steps), "--seed", str(a.seed)]
    cores = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"true": ["--reward", "true"], "learned": ["--n-labels", str(a.labels), *shlex.split(a.learned_args)]}
        t0 = time.perf_counter()
        procs = {name: _start(Path(tmp) / name, cores[i] if len(cores) > 1 else None, common + extra)
                 for i, (name, extra) in enumerate(runs.items())}
        for name, proc in procs.items():
            _, err = proc.communicate()
            if proc.returncode != 0:
                sys.exit(f"bench_full_run: the {name} run failed ({proc.returncode}): {err.strip()[-2000:]}")
        elapsed = time.perf_counter() - t0
        metrics = {name: json.loads((Path(tmp) / name / "metrics.json").read_text()) for name in runs}
    true, learned = metrics["true"], metrics["learned"]
    extra = learned["wall_time_s"] - true["wall_time_s"]
    result = {
        "command": "python " + " ".join([sys.argv[0], *sys.argv[1:]]),
        "env": a.env, "steps": a.steps, "labels": a.labels, "learned_args": a.learned_args, "seed": a.seed,
        "cores_used": min(2, len(cores)),
        "code_version": learned.get("code_version"), "elapsed_s": elapsed,
        "true": {k: true.get(k) for k in ("wall_time_s", "ppo_time_s", "eval_true_return_mean")},
        "learned": {k: learned.get(k) for k in ("wall_time_s", "ppo_time_s", "reward_fit_time_s", "n_labels",
                                                "n_pretrain_env_steps", "eval_true_return_mean",
                                                "learned_true_return_corr")},
        "ratio_learned_over_true": learned["wall_time_s"] / true["wall_time_s"],
        "learned_extra_s": extra,
        "learned_extra_outside_fit_and_ppo_s": (learned["wall_time_s"] - learned["ppo_time_s"]
                                                - learned["reward_fit_time_s"])
                                               - (true["wall_time_s"] - true["ppo_time_s"]),
    }
    print(f"{a.env}, {a.steps} steps, seed {a.seed}: true reward {true['wall_time_s']:.0f} s "
          f"(return {true['eval_true_return_mean']:.0f}), learned reward with {learned['n_labels']} labels "
          f"{learned['wall_time_s']:.0f} s (return {learned['eval_true_return_mean']:.0f}); learned/true "
          f"{result['ratio_learned_over_true']:.3f}; the learned run's extra {extra:.0f} s: fitting "
          f"{learned['reward_fit_time_s']:.0f} s, PPO {learned['ppo_time_s'] - true['ppo_time_s']:+.0f} s, "
          f"the rest {result['learned_extra_outside_fit_and_ppo_s']:+.0f} s")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
