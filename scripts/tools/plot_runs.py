"""Plot learning curves (true return of training episodes) of the runs under a folder, one panel per env.

    python scripts/tools/plot_runs.py runs/acceptance [more folders or run dirs] --out results/mujoco/acceptance.png

Reads ``rollout/ep_true_return`` (or ``--tag``, e.g. ``eval/flips_per_episode`` of runs made with --eval-every)
from each run's TensorBoard log; learned-reward runs are solid, true-reward dashed.
Needs matplotlib (pip install -e ".[plot]").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def curve(run: Path, tag: str = "rollout/ep_true_return") -> tuple[list[int], list[float]]:
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    if tag not in acc.Tags()["scalars"]:
        return [], []
    events = acc.Scalars(tag)
    return [e.step for e in events], [e.value for e in events]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("roots", type=Path, nargs="+", help="folders of run directories (or run directories)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tag", default="rollout/ep_true_return", help="the TensorBoard scalar to plot")
    a = p.parse_args()
    candidates = [d for root in a.roots for d in ([root] if (root / "config.json").exists() else root.iterdir())]
    runs = sorted(d for d in candidates if (d / "config.json").exists())
    envs = sorted({json.loads((d / "config.json").read_text())["env_id"] for d in runs})
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        for d in runs:
            cfg = json.loads((d / "config.json").read_text())
            if cfg["env_id"] != env:
                continue
            steps, values = curve(d, a.tag)
            label = f"{cfg['reward']}" + (f" ({cfg['n_labels']} labels)" if cfg["reward"] == "learned" else "")
            ax.plot(steps, values, "-" if cfg["reward"] == "learned" else "--",
                    color="tab:blue" if cfg["reward"] == "learned" else "tab:orange",
                    alpha=0.8, label=f"{label}, seed {cfg['seed']}")
        ax.set_title(env)
        ax.set_xlabel("PPO steps")
        ax.set_ylabel("true return of training episodes" if a.tag == "rollout/ep_true_return" else a.tag)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
