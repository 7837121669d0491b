"""Run a queue of ``pbrl train`` runs a few at a time; used by the experiment scripts in this folder.

A run whose directory holds ``metrics.json`` is skipped, a stopped one (``loop_state.json`` present) is resumed, so
an experiment script can be re-run until everything is done. Each run logs to ``<run_dir>.log``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pbrl.run_dir import RunDir

#: the ``pbrl`` command of the Python running this script, so a venv works without being activated
PBRL = [sys.executable, "-m", "pbrl"]


def command_for(run_dir: Path, train_args: list[str]) -> list[str]:
    """What to run for ``run_dir`` now: nothing, a resume, or the fresh ``pbrl train`` command."""
    if (run_dir / "metrics.json").exists():
        return []
    run = RunDir(run_dir)
    if run.holds_checkpoint() or run.never_checkpointed():  # a stopped run, or one stopped before it began
        return [*PBRL, "train", "--resume", "--run-dir", str(run_dir), "--no-progress"]
    return [*PBRL, "train", *train_args, "--run-dir", str(run_dir), "--no-progress"]


def run_all(runs: list[tuple[Path, list[str]]], jobs: int) -> None:
    """Run every ``(run_dir, train_args)``, ``jobs`` at a time, in order."""
    queue = list(runs)
    running: list[subprocess.Popen] = []
    while queue or running:
        running = [proc for proc in running if proc.poll() is None]
        while queue and len(running) < jobs:
            run_dir, args = queue.pop(0)
            cmd = command_for(run_dir, args)
            if cmd:
                run_dir.parent.mkdir(parents=True, exist_ok=True)
                log = open(run_dir.parent / f"{run_dir.name}.log", "a")
                print(f"[{time.strftime('%H:%M:%S')}] start {' '.join(cmd)}", flush=True)
                running.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        time.sleep(5)


def finished_metrics(root: Path) -> list[dict[str, Any]]:
    """metrics.json of every finished run under ``root``, with its run_dir."""
    return [json.loads(m.read_text()) | {"run_dir": str(m.parent)} for m in sorted(root.glob("*/metrics.json"))]
