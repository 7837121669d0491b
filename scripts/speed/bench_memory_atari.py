"""Memory of a long Atari run: the resident memory of a Pong run at 100k and at 1M agent steps, and their ratio.

    python scripts/speed/bench_memory_atari.py --steps 1000000 --marks 100000 1000000 \\
        --out results/atari/memory_1m_unpacked

Runs ``pbrl train --env ALE/Pong-v5`` (synthetic labels) as a child process and reads its resident set size from
/proc (Linux) together with the agent step from the run's checkpoint, every few seconds; with ``--vec-env subproc``
(through --train-args) the env processes' RSS is read and reported beside it. It prints RSS at the first reading at
or past each mark and the ratio of the last mark to the first, and writes them with the command to OUT. Segments
are owned uint8 copies in a bounded buffer, and labelled pairs are kept packed, so memory should level off.

On a GPU machine with more cores (16 env processes, the ensemble and PPO on the GPU):

    python scripts/speed/bench_memory_atari.py --pretrain-epochs 30 --fit-max-batches 0 \\
        --train-args "--device cuda --vec-env subproc --n-envs 16" --max-seconds 520
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from pbrl import RunDir

PBRL = [sys.executable, "-m", "pbrl"]  # the pbrl of the Python running this script


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for process {pid}")


def children_rss_mib(pid: int) -> float:
    """Summed RSS of the processes below ``pid`` (the env processes of a SubprocVecEnv, started through a
    forkserver, so they are grandchildren)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # after "pid (comm)"
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    below, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - below
        below |= frontier
    total = 0.0
    for p in below:
        try:
            total += rss_mib(p)
        except (OSError, RuntimeError):
            continue
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--marks", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--n-labels", type=int, default=1000)
    p.add_argument("--pretrain-epochs", type=int, default=10, help="kept small so a 1M-step run fits in a few hours "
                   "on 2 CPU cores")
    p.add_argument("--label-interval", type=int, default=20_480, help="agent steps between labelling rounds (each "
                   "round fits the CNN ensemble, about 40 s on one core)")
    p.add_argument("--run-dir", default="runs/bench-memory-pong")
    p.add_argument("--out", default="results/atari/memory_1m_unpacked")
    p.add_argument("--every", type=float, default=5.0, help="seconds between readings")
    p.add_argument("--resume", action="store_true", help="continue the stopped run in --run-dir (in a new process: "
                   "readings start at its checkpoint); --label-interval and --fit-max-batches apply from there on")
    p.add_argument("--fit-max-batches", type=int, default=16)
    p.add_argument("--train-args", default="", help="more `pbrl train` flags, e.g. \"--device cuda --vec-env subproc\"")
    p.add_argument("--max-seconds", type=float, default=0, help="stop the run (Ctrl-C: it keeps its last "
                   "checkpoint) after this long and report what was reached (0 = no limit)")
    a = p.parse_args()
    start_args = (["--resume"] if a.resume else
                  ["--env", "ALE/Pong-v5", "--n-labels", str(a.n_labels), "--total-timesteps", str(a.steps),
                   "--pretrain-epochs", str(a.pretrain_epochs)])
    cmd = [*PBRL, "train", *start_args, "--run-dir", a.run_dir, "--label-interval", str(a.label_interval),
           "--fit-max-batches", str(a.fit_max_batches), "--no-progress", *shlex.split(a.train_args)]
    run = RunDir(a.run_dir)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    readings: list[tuple[float, int, float, float]] = []  # (seconds, agent steps, RSS MiB, env processes' MiB)
    start = time.time()
    stopped = False
    try:
        while proc.poll() is None:
            try:
                steps = json.loads(run.state.read_text())["num_timesteps"] if run.holds_checkpoint() else 0
                readings.append((time.time() - start, steps, rss_mib(proc.pid), children_rss_mib(proc.pid)))
            except (OSError, ValueError, KeyError, RuntimeError):
                pass  # the checkpoint being replaced, or the process just ended
            if readings and len(readings) % max(1, round(60 / a.every)) == 0:
                t, steps, rss, kids = readings[-1]
                print(f"{t:6.0f} s  {steps:>9,} steps  RSS {rss:7.1f} MiB  env processes {kids:7.1f} MiB", flush=True)
            if a.max_seconds and time.time() - start > a.max_seconds and not stopped:
                proc.send_signal(signal.SIGINT)  # the run stops where it is and keeps its last checkpoint
                stopped = True
            time.sleep(a.every)
    finally:
        if proc.poll() is None:
            proc.terminate()
    at = {}
    for mark in a.marks:
        hit = next((r for r in readings if r[1] >= mark), None)
        at[mark] = None if hit is None else {"seconds": round(hit[0]), "steps": hit[1], "rss_mib": round(hit[2], 1),
                                             "env_processes_rss_mib": round(hit[3], 1)}
    first, last = at[a.marks[0]], at[a.marks[-1]]
    ratio = last["rss_mib"] / first["rss_mib"] if first and last else None
    result = {"command": "python " + " ".join(sys.argv), "train_command": " ".join(cmd), "marks": at,
              "ratio_last_to_first": ratio, "peak_rss_mib": round(max(r[2] for r in readings), 1) if readings else None,
              "last_reading": dict(zip(("seconds", "steps", "rss_mib", "env_processes_rss_mib"),
                                       (round(x, 1) for x in readings[-1]), strict=True)) if readings else None,
              "stopped_after_s": a.max_seconds if stopped else None}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
