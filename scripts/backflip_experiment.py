"""Issue 4: the Hopper backflip taught by the scripted backflip judge, several seeds, two runs at a time.

    python scripts/backflip_experiment.py --seeds 0 1 2 --jobs 2

Each seed is a plain ``pbrl train --env pbrl/HopperBackflip-v0 --labeler backflip-judge`` run under --root
(finished runs are skipped, stopped ones resumed). The report gives, per seed, the labels used, agent steps, wall
time and backflips per evaluation episode of the deterministic policy. The seed with the most episodes with a flip,
if any seed flipped at all, is copied (config, loop state, policy, observation statistics, metrics; no store) to
--keep, so that ``pbrl eval --run-dir KEEP`` and ``pbrl video --run-dir KEEP`` reproduce it, and its video is
written to --gif.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from run_queue import PBRL, finished_metrics, run_all

KEEP_FILES = ("config.json", "loop_state.json", "policy.zip", "vecnormalize.pkl", "metrics.json")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--n-labels", type=int, default=900)
    p.add_argument("--total-timesteps", type=int, default=2_000_000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--root", default="runs/backflip")
    p.add_argument("--out", default="results/backflip")
    p.add_argument("--keep", default="results/backflip-policy", help="where the best seed's policy is copied")
    p.add_argument("--gif", default="docs/backflip.gif")
    p.add_argument("--train-args", default="", help="more `pbrl train` flags for every seed, e.g. "
                   "\"--segment-length 100\"")
    a = p.parse_args()
    root = Path(a.root)
    run_all([(root / f"seed{s}", ["--env", "pbrl/HopperBackflip-v0", "--labeler", "backflip-judge", "--n-labels",
                                  str(a.n_labels), "--total-timesteps", str(a.total_timesteps), "--seed", str(s),
                                  *shlex.split(a.train_args)])
             for s in a.seeds], a.jobs)
    keep = Path(a.keep)
    # a --keep folder under --root holds a copy of a run's metrics: it is not a run of its own
    rows = [m for m in finished_metrics(root)
            if m["env_id"] == "pbrl/HopperBackflip-v0" and Path(m["run_dir"]).resolve() != keep.resolve()]
    if not rows:
        print("no finished runs", file=sys.stderr)
        return 1
    best = max(rows, key=lambda m: (m["episodes_with_a_flip"], sum(m["flips_per_episode"])))
    video = None
    if best["episodes_with_a_flip"]:  # a policy that never flips is not kept as "the backflip"
        keep.mkdir(parents=True, exist_ok=True)
        for name in KEEP_FILES:
            shutil.copy2(Path(best["run_dir"]) / name, keep / name)
        video = json.loads(subprocess.run([*PBRL, "video", "--run-dir", str(keep), "--out", a.gif, "--size", "160",
                                           "--episodes", "2"], capture_output=True, text=True, check=True).stdout)
    lines = ["# The Hopper backflip from the scripted judge (issue 4)", "",
             "Command (2-core machine, two runs at a time):", "", f"    python {' '.join(sys.argv)}", "",
             "A flip: 2π of net backward torso rotation since the last landing, then the foot down with the torso "
             "within 26° of upright (`pbrl.envs.behaviours.count_backflips`). Evaluation: deterministic policy, "
             "250-step (2 s) episodes.", "",
             "| seed | labels | agent steps | wall time (min) | flips per eval episode | episodes with a flip |",
             "|---|---|---|---|---|---|"]
    for m in rows:
        lines.append(f"| {m['seed']} | {m['n_labels']} | {m['total_timesteps']:,} | {m['wall_time_s'] / 60:.1f} | "
                     f"{m['flips_per_episode']} | {m['episodes_with_a_flip']}/{m['n_behaviour_episodes']} |")
    lines += ["", f"Kept: seed {best['seed']} in `{keep}` (`pbrl eval --run-dir {keep} --episodes 5`); video of two "
              f"episodes: `{a.gif}`." if video else "Nothing kept: no seed flipped in any evaluation episode."]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"command": "python " + " ".join(sys.argv), "runs": rows,
                                                    "kept_seed": best["seed"] if video else None, "video": video},
                                                   indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
