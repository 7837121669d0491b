"""Copy the small files of a sweep's finished trials into a folder that can be committed, or back into a sweep.

    python scripts/bench_snapshot.py runs/bench/mujoco8 results/benchmark/mujoco8        # save what has finished
    python scripts/bench_snapshot.py results/benchmark/mujoco8 runs/bench/mujoco8        # restore, then resume:
    pbrl bench benchmarks/mujoco8.toml --dir runs/bench/mujoco8                         # runs only what is missing

A sweep's run directories hold checkpoints, label stores and logs (megabytes each); what its report needs of a
finished trial is ``config.json``, ``metrics.json`` and ``evals.jsonl``, and ``pbrl bench`` counts a trial whose
directory holds ``metrics.json`` as done. So a sweep that outlives the machine it runs on (or the session) keeps
its finished trials as these files, and goes on elsewhere from them. Files are copied whole and atomically; a
trial that has not finished is not copied (it resumes from its own checkpoint where that is kept).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from pbrl.run_dir import write_file_atomic

FILES = ("config.json", "evals.jsonl", "metrics.json")


def snapshot(src: Path, dest: Path) -> int:
    """Copy ``bench.json`` and each finished trial's ``FILES`` from ``src`` to ``dest``; returns the trials copied."""
    if not (src / "bench.json").is_file():
        raise SystemExit(f"bench_snapshot: {src} holds no bench.json: not a pbrl bench directory")
    copied = 0
    for metrics in sorted((src / "trials").glob("*/metrics.json")):
        trial = metrics.parent
        out = dest / "trials" / trial.name
        if (out / "metrics.json").is_file() and (out / "metrics.json").read_bytes() == metrics.read_bytes():
            continue
        out.mkdir(parents=True, exist_ok=True)
        for name in FILES:  # metrics.json last: a copy interrupted before it is not taken for a finished trial
            if (trial / name).is_file():
                write_file_atomic(out / name, lambda tmp, f=trial / name: shutil.copyfile(f, tmp))
        copied += 1
    for name in ("bench.json", "random_policy.json"):  # the grid, and the report's random-policy returns
        if (src / name).is_file() and (not (dest / name).is_file()
                                       or (dest / name).read_bytes() != (src / name).read_bytes()):
            dest.mkdir(parents=True, exist_ok=True)
            write_file_atomic(dest / name, lambda tmp, f=src / name: shutil.copyfile(f, tmp))
    return copied


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path, help="a pbrl bench directory (or a snapshot of one)")
    p.add_argument("dest", type=Path, help="where the finished trials' small files go")
    a = p.parse_args()
    n = snapshot(a.src, a.dest)
    print(f"bench_snapshot: {n} finished trials copied to {a.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
