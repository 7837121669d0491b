"""``pbrl bench``: the command that runs a grid of ``pbrl train`` trials, and hands ``pbrl bench report`` on.

It reads the grid (a spec file or flags), records it in bench.json, says which trials are done, to resume or new,
runs the rest by Ray Tune and ends with a line per failed trial. Every user error ends in one line and exit 2; a
Ctrl-C ends Ray, and with it every trial, and exits 130.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pbrl.bench.directory import (
    PBRL,
    Trial,
    merge_bench_json,
    trial_command,
    trial_log,
    trial_run_dir,
    trial_status,
    trial_time,
)
from pbrl.bench.errors import BenchError, RayMissing
from pbrl.bench.grid import expand
from pbrl.bench.progress import Progress, TrialTime
from pbrl.bench.runner import run_with_ray
from pbrl.bench.spec import read_spec, spec_from_flags
from pbrl.errors import UserError
from pbrl.run_dir import write_json_atomic

__all__ = ["build_parser", "main", "run_bench"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbrl bench",
        description="Run a grid of pbrl train runs (a TOML spec, or --env/--reward/--n-labels/--seeds flags) by "
                    "Ray Tune, each in DIR/trials/NAME. Run the same command again to resume: finished trials are "
                    "skipped, stopped ones resumed. Summarise with: pbrl bench report DIR",
        epilog="See docs/bench.md and benchmarks/*.toml.")
    parser.add_argument("spec", nargs="?", help="the grid as a TOML file (benchmarks/mujoco8.toml)")
    parser.add_argument("--dir", help="where the trials live (default: runs/bench/NAME, NAME from the spec)")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="trials at a time, one CPU each (default: this machine's CPUs; on a cluster: as many "
                             "as it has CPUs for)")
    parser.add_argument("--address", help="run on the Ray cluster at this address ('auto' or HOST:PORT); DIR must "
                                          "be on storage every node shares, at the same path")
    parser.add_argument("--gpus-per-trial", type=float, default=0.0,
                        help="GPUs Ray reserves for each trial, e.g. 0.5 for Atari runs on --device cuda (default: 0)")
    parser.add_argument("--dry-run", action="store_true", help="print the trials (done/resume/new) and the command "
                                                               "each would run; run nothing")
    parser.add_argument("--only", metavar="SUBSTR", action="append",
                        help="only the trials whose name contains SUBSTR (repeatable: any of them), e.g. "
                             "--only __true__ --only __n700__ to run the baselines and one budget first")
    parser.add_argument("--poll-s", type=float, default=10.0, help=argparse.SUPPRESS)
    grid = parser.add_argument_group("a grid from flags, instead of a spec (needs --dir)")
    grid.add_argument("--env", dest="envs", action="append", metavar="ENV_ID", help="an env (repeatable)")
    grid.add_argument("--reward", dest="rewards", action="append", metavar="REWARD",
                      help="learned or true (repeatable; default: learned)")
    grid.add_argument("--n-labels", dest="n_labels", action="append", type=int, metavar="N",
                      help="a label budget (repeatable)")
    grid.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="seeds (default: 0)")
    grid.add_argument("--total-timesteps", type=int, metavar="N", help="PPO agent steps of every trial")
    grid.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                      help="a pbrl train value for every trial, e.g. --train eval_every=100000 (repeatable)")
    grid.add_argument("--ppo", action="append", default=[], metavar="KEY=VALUE",
                      help="a PPO setting for every trial, as pbrl train --ppo (repeatable)")
    grid.add_argument("--axis", action="append", default=[], metavar="KEY=V1,V2",
                      help="an extra axis, e.g. --axis query_selection=disagreement,random (repeatable)")
    return parser


def _grid(args: argparse.Namespace) -> tuple[Path, list[Trial]]:
    """The bench directory and the trials of the spec file or the flags."""
    flags = args.envs or args.rewards or args.n_labels or args.seeds or args.total_timesteps or args.train \
        or args.ppo or args.axis
    if args.spec and flags:
        raise BenchError("give a spec file or a grid by flags (--env ...), not both")
    if args.spec:
        name, trials = expand(read_spec(Path(args.spec)), args.spec)
        name = name or Path(args.spec).stem
        return Path(args.dir or f"runs/bench/{name}"), trials
    if not flags:
        raise BenchError("give a spec file (pbrl bench benchmarks/tiny.toml) or a grid by flags (--env ENV --seeds "
                         "0 1 --dir DIR)")
    if not args.envs:
        raise BenchError("a grid by flags needs at least one --env")
    if not args.dir:
        raise BenchError("a grid by flags needs --dir DIR (where its trials live)")
    return Path(args.dir), expand(spec_from_flags(args), "flags")[1]


def _print_table(root: Path, trials: list[Trial], statuses: dict[str, str]) -> None:
    width = max(len(t.name) for t in trials)
    print(f"{'trial':<{width}}  status  command")
    for t in trials:
        cmd = trial_command(root / t.run_dir, t.train_args)
        shown = "(skipped)" if not cmd else shlex.join(["pbrl", *cmd[len(PBRL):]])
        print(f"{t.name:<{width}}  {statuses[t.name]:<6}  {shown}")


def run_bench(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run the grid of ``args`` (``argv``, as given, goes into bench.json); 0 when every chosen trial is done."""
    root, trials = _grid(args)
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise BenchError(f"--max-concurrent must be at least 1, got {args.max_concurrent}")
    if args.gpus_per_trial < 0:
        raise BenchError(f"--gpus-per-trial must be >= 0, got {args.gpus_per_trial}")
    record = merge_bench_json(root / "bench.json", trials, ["pbrl", "bench", *argv])  # refuses a changed spec
    chosen = [t for t in trials if args.only is None or any(o in t.name for o in args.only)]
    if not chosen:
        raise BenchError(f"--only {' '.join(args.only)!r} matches none of the {len(trials)} trials "
                         f"(e.g. {trials[0].name})")
    statuses = {t.name: trial_status(root / t.run_dir) for t in chosen}
    counts = {s: sum(v == s for v in statuses.values()) for s in ("done", "resume", "new")}
    summary = (f"{len(chosen)} trials ({counts['done']} done, {counts['resume']} to resume, {counts['new']} new) "
               f"in {root}")
    if args.dry_run:
        _print_table(root, chosen, statuses)
        print(f"bench: {summary}")
        return 0
    (root / "trials").mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / "bench.json", record)
    print(f"bench: {summary}", flush=True)
    to_run = [t.name for t in chosen if statuses[t.name] != "done"]
    local = args.address is None
    concurrency = (args.max_concurrent or os.cpu_count() or 1) if local else (args.max_concurrent or 1)
    logs = {t.name: (root / trial_log(t.name)).resolve() for t in chosen}
    # every trial of the grid, chosen or not, tells how long its kind takes
    times = {t.name: TrialTime(f"{t.env_id} {t.reward}", *trial_time(root / t.run_dir, t.total_timesteps))
             for t in trials}
    progress = Progress(len(chosen), counts["done"], concurrency, logs, statuses, times=times)
    if to_run:
        cwd = os.getcwd()
        jobs = {t.name: {"run_dir": str((root / t.run_dir).resolve()), "log": str(logs[t.name]), "cwd": cwd,
                         "train_args": t.train_args, "poll_s": args.poll_s} for t in chosen if t.name in to_run}
        run_with_ray(root, to_run, jobs, progress, concurrency if local else args.max_concurrent, args.address,
                     args.gpus_per_trial)
    # -- what the run dirs hold now ------------------------------------------------------------------------------
    done_now = [n for n in to_run if trial_status(root / trial_run_dir(n)) == "done"]
    failed = {n: progress.failed[n] for n in to_run if n not in done_now and n in progress.failed}
    not_run = [n for n in to_run if n not in done_now and n not in failed]
    print(f"bench: {len(done_now)} done, {len(failed)} failed, {counts['done']} skipped (done before)"
          + (f", {len(not_run)} not finished" if not_run else ""), flush=True)
    for name, why in failed.items():
        print(f"  failed {name}: {why}  (log: {logs[name]})")
    print(f"bench: results in {root}; summarise them with  pbrl bench report {root}", flush=True)
    return 1 if failed or not_run else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``pbrl bench ARGS`` (or ``pbrl bench report ARGS``): the exit code; 2 on a user's error, 130 on Ctrl-C."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        from pbrl.bench.report_cli import main as report_main

        return report_main(argv[1:])
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's own usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    # Ctrl-C raises KeyboardInterrupt here, whatever the caller set (``pbrl``'s handler exits at once, a background
    # job starts with SIGINT ignored): the sweep ends Ray, and with it every trial, before it exits
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run_bench(args, argv)
    except KeyboardInterrupt:
        print("\npbrl bench: stopped; every trial's run dir is kept: run the same command again to resume",
              file=sys.stderr)
        return 130
    except UserError as exc:
        if isinstance(exc, RayMissing):
            print(exc, file=sys.stderr)
        else:
            print(f"pbrl bench: error: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)
