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
import sys
from pathlib import Path

from heldout_corr import validation_corr
from run_queue import finished_metrics, run_all


def train_args(env: str, reward: str, seed: int, a: argparse.Namespace) -> list[str]:
    args = ["--env", env, "--reward", reward, "--total-timesteps", str(a.total_timesteps), "--seed", str(seed)]
    if reward == "learned":
        args += ["--labeler", "synthetic", "--n-labels", str(a.n_labels)]
    return args


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["Hopper-v5", "HalfCheetah-v5"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--total-timesteps", type=int, default=1_000_000)
    p.add_argument("--n-labels", type=int, default=700)
    p.add_argument("--rewards", nargs="+", default=["learned", "true"], choices=["learned", "true"])
    p.add_argument("--jobs", type=int, default=2, help="runs at once (2 on a 2-core machine)")
    p.add_argument("--root", default="runs/acceptance")
    p.add_argument("--out", default="results/mujoco_acceptance")
    p.add_argument("--report-only", action="store_true", help="run nothing; merge what has finished into --out")
    a = p.parse_args()
    root = Path(a.root)
    root.mkdir(parents=True, exist_ok=True)
    # seed-major order: every env gets a learned/true pair before any env gets a second seed
    run_all([] if a.report_only else [(root / f"{env}__{reward}__seed{seed}", train_args(env, reward, seed, a))
             for seed in a.seeds for env in a.envs for reward in a.rewards], a.jobs)
    report(root, a)
    return 0


def upgrade(m: dict) -> dict:
    """Metrics of runs that finished before the held-out sample existed, in today's names: their
    ``learned_true_return_corr`` was over the final buffer (oldest) or the validation comparisons' segments."""
    if m["reward"] != "learned" or "learned_true_return_corr_val" in m:
        return m
    if "learned_true_return_corr_recent" not in m:
        m["learned_true_return_corr_recent"] = m["learned_true_return_corr"]
        m["learned_true_return_corr"] = validation_corr(m["run_dir"])[0] if Path(m["run_dir"]).exists() else None
    m["learned_true_return_corr_val"] = m["learned_true_return_corr"]
    m["learned_true_return_corr"] = None  # no held-out sample was kept
    return m


def report(root: Path, a: argparse.Namespace) -> None:
    """Merge this root's finished runs into OUT.json (a later run of the same env, mode and seed replaces an
    earlier one) and write the tables with every command that contributed."""
    out = Path(a.out)
    prev = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
    merged = {(m["env_id"], m["reward"], m["seed"]): upgrade(m) for m in prev.get("runs", [])}
    for m in finished_metrics(root):
        merged[(m["env_id"], m["reward"], m["seed"])] = upgrade(m)
    rows = [merged[k] for k in sorted(merged)]
    command = "python " + " ".join(sys.argv)
    commands = prev.get("commands", [])
    commands += [] if command in commands else [command]
    summary = {}
    for env in sorted({m["env_id"] for m in rows}):
        by = {r: [m for m in rows if m["env_id"] == env and m["reward"] == r] for r in ("learned", "true")}
        med = {r: statistics.median(m["eval_true_return_mean"] for m in ms) if ms else None for r, ms in by.items()}
        ratio = med["learned"] / med["true"] if med["learned"] is not None and med["true"] else None
        summary[env] = {"median_learned": med["learned"], "median_true": med["true"], "ratio": ratio,
                        "n_seeds_learned": len(by["learned"]), "n_seeds_true": len(by["true"])}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps({"commands": commands, "runs": rows, "summary": summary}, indent=2) + "\n")
    lines = ["# MuJoCo acceptance (issue 2, acceptance 1 and 3): learned-reward vs true-reward PPO", "",
             "Commands that made these rows (2-core machine, two runs at a time; each row's code is in its "
             "`code_version`):", ""]
    lines += [f"    {c}" for c in commands]
    lines += ["", "Eval: 10 deterministic episodes of 1000 steps. Per-run metrics are in the JSON file. Pearson "
              "correlation of learned and true segment returns (`learned_true_return_corr`) over: `corr held-out`, "
              "a uniform sample of the whole run's segments that were never queried (`--heldout-rate`, kept from "
              "the commit that added it on); `corr val`, the segments of the validation comparisons (never fitted, "
              "but chosen by the query selector where the members disagreed); `corr recent`, the final buffer's "
              "unqueried segments (a converged policy's). Blank: not recorded by the code of that run.", "",
              "| env | reward | seed | eval true return (mean ± std) | val acc | corr held-out | corr val | "
              "corr recent | labels | wall s | steps/s | code |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    fmt3 = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
    for m in rows:
        corrs = " | ".join(fmt3(m.get(f"learned_true_return_corr{k}")) for k in ("", "_val", "_recent"))
        lines.append(f"| {m['env_id']} | {m['reward']} | {m['seed']} | {m['eval_true_return_mean']:.1f} ± "
                     f"{m['eval_true_return_std']:.1f} | {fmt3(m.get('reward_model_val_accuracy'))} | "
                     f"{corrs} | {m['n_labels']} | {m['wall_time_s']:.0f} | "
                     f"{m['env_steps_per_s']:.0f} | {m.get('code_version', '')} |")
    lines += ["", "| env | median learned | median true | ratio | seeds (learned/true) |", "|---|---|---|---|---|"]
    for env, s in summary.items():
        fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {env} | {fmt(s['median_learned'])} | {fmt(s['median_true'])} | {fmt(s['ratio'])} | "
                     f"{s['n_seeds_learned']}/{s['n_seeds_true']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
