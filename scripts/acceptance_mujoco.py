"""Issue 2 acceptance: learned-reward vs true-reward PPO on MuJoCo, several seeds, two runs at a time.

    python scripts/acceptance_mujoco.py --envs Hopper-v5 HalfCheetah-v5 --seeds 0 1 2 --jobs 2

Each run is a plain ``pbrl train`` in its own run directory under --root; finished runs (metrics.json present) are
skipped and stopped ones resumed, so the script can be re-run until everything is done. It then writes a JSON and
a Markdown table with the median final true return per env and mode and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_args(root: Path, env: str, reward: str, seed: int, a: argparse.Namespace) -> tuple[Path, list[str]]:
    run_dir = root / f"{env}__{reward}__seed{seed}"
    cmd = ["pbrl", "train", "--env", env, "--reward", reward, "--total-timesteps", str(a.total_timesteps),
           "--seed", str(seed), "--run-dir", str(run_dir), "--no-progress"]
    if reward == "learned":
        cmd += ["--labeler", "synthetic", "--n-labels", str(a.n_labels)]
    if (run_dir / "metrics.json").exists():
        return run_dir, []
    if (run_dir / "loop_state.json").exists():
        return run_dir, ["pbrl", "train", "--resume", "--run-dir", str(run_dir), "--no-progress"]
    return run_dir, cmd


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["Hopper-v5", "HalfCheetah-v5"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--total-timesteps", type=int, default=1_000_000)
    p.add_argument("--n-labels", type=int, default=700)
    p.add_argument("--jobs", type=int, default=2, help="runs at once (2 on a 2-core machine)")
    p.add_argument("--root", default="runs/acceptance")
    p.add_argument("--out", default="results/mujoco_acceptance")
    a = p.parse_args()
    root = Path(a.root)
    root.mkdir(parents=True, exist_ok=True)
    # seed-major order: every env gets a learned/true pair before any env gets a second seed
    queue = [(env, reward, seed) for seed in a.seeds for env in a.envs for reward in ("learned", "true")]
    running: list[tuple[subprocess.Popen, Path]] = []
    while queue or running:
        running = [(proc, d) for proc, d in running if proc.poll() is None]
        while queue and len(running) < a.jobs:
            env, reward, seed = queue.pop(0)
            run_dir, cmd = run_args(root, env, reward, seed, a)
            if cmd:
                log = open(root / f"{run_dir.name}.log", "a")
                print(f"[{time.strftime('%H:%M:%S')}] start {' '.join(cmd)}", flush=True)
                running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), run_dir))
        time.sleep(5)
    report(root, a)
    return 0


def report(root: Path, a: argparse.Namespace) -> None:
    rows = [json.loads(m.read_text()) | {"run_dir": str(m.parent)} for m in sorted(root.glob("*/metrics.json"))]
    summary = {}
    for env in a.envs:
        by = {r: [m for m in rows if m["env_id"] == env and m["reward"] == r] for r in ("learned", "true")}
        med = {r: statistics.median(m["eval_true_return_mean"] for m in ms) if ms else None for r, ms in by.items()}
        ratio = med["learned"] / med["true"] if med["learned"] is not None and med["true"] else None
        summary[env] = {"median_learned": med["learned"], "median_true": med["true"], "ratio": ratio,
                        "n_seeds_learned": len(by["learned"]), "n_seeds_true": len(by["true"])}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"runs": rows, "summary": summary}, indent=2) + "\n")
    lines = ["| env | reward | seed | eval true return (mean ± std) | val acc | corr | labels | wall s | steps/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m in rows:
        acc = m.get("reward_model_val_accuracy")
        corr = m.get("learned_true_return_corr")
        lines.append(f"| {m['env_id']} | {m['reward']} | {m['seed']} | {m['eval_true_return_mean']:.1f} ± "
                     f"{m['eval_true_return_std']:.1f} | {'' if acc is None else f'{acc:.3f}'} | "
                     f"{'' if corr is None else f'{corr:.3f}'} | {m['n_labels']} | {m['wall_time_s']:.0f} | "
                     f"{m['env_steps_per_s']:.0f} |")
    lines += ["", "| env | median learned | median true | ratio | seeds (learned/true) |", "|---|---|---|---|---|"]
    for env, s in summary.items():
        fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {env} | {fmt(s['median_learned'])} | {fmt(s['median_true'])} | {fmt(s['ratio'])} | "
                     f"{s['n_seeds_learned']}/{s['n_seeds_true']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
