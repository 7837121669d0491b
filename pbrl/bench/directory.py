"""The bench directory: its layout, the trials bench.json records, and what each trial's run directory says.

    DIR/bench.json          the resolved grid: every trial's name, run_dir, values and exact ``pbrl train`` args
    DIR/trials/<name>/      the trial's run directory;  DIR/trials/<name>.log: its stdout and stderr, appended
    DIR/ray/                Ray Tune's own records of each invocation (not needed to resume)

A trial whose run holds metrics.json is done and skipped; one with a checkpoint is resumed; the rest start fresh
(``trial_status``, ``trial_command``). ``merge_bench_json`` refuses a grid that would reuse a trial's name for other
values. ``pbrl bench`` writes the directory; ``pbrl bench report`` reads it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbrl.bench.errors import BenchDirError
from pbrl.run_dir import RunDir

__all__ = ["PBRL", "Trial", "last_line", "merge_bench_json", "trial_command", "trial_log", "trial_run_dir",
           "trial_status", "trial_time", "finite_number"]

#: the ``pbrl`` command of the Python running the trial, so a venv works without being activated
PBRL = [sys.executable, "-m", "pbrl"]


def trial_run_dir(name: str) -> str:
    """A trial's run directory, relative to the bench directory (bench.json records it as ``run_dir``)."""
    return f"trials/{name}"


def trial_log(name: str) -> str:
    """A trial's ``pbrl train`` output, relative to the bench directory, appended on every attempt."""
    return f"trials/{name}.log"


@dataclass
class Trial:
    """One point of the grid: a ``pbrl train`` run in ``DIR/<run_dir>``."""

    name: str
    env_id: str
    reward: str
    n_labels: int | None  # None for a true-reward trial, which asks no labels
    seed: int
    total_timesteps: int
    axes: dict[str, Any]  # the extra axes' values, by key ("query_selection", "ppo.n_steps")
    train_args: list[str]  # the exact ``pbrl train`` flags, but --run-dir and --no-progress

    @property
    def run_dir(self) -> str:
        return trial_run_dir(self.name)

    def record(self) -> dict[str, Any]:
        """The trial as bench.json holds it."""
        return {**dataclasses.asdict(self), "run_dir": self.run_dir}


def trial_status(run_dir: Path) -> str:
    """'done' (metrics.json written), 'resume' (a run stopped, perhaps before its first checkpoint) or 'new'."""
    if (run_dir / "metrics.json").exists():
        return "done"
    run = RunDir(run_dir)
    return "resume" if run.holds_checkpoint() or run.never_checkpointed() else "new"


def trial_time(run_dir: Path, total_timesteps: int) -> tuple[float | None, float]:
    """For the ETA: a done trial's wall time (metrics.json's ``wall_time_s``; None for one not done) and the share of
    its steps still to run (1.0 for a new trial, less for one resumed from a checkpoint). A file that cannot be read
    counts as absent: an estimate is not worth stopping a sweep for."""
    run = RunDir(run_dir)
    metrics = _json_object(run.metrics)
    if metrics is not None:
        wall = metrics.get("wall_time_s")
        return (float(wall) if finite_number(wall) else None), 0.0
    manifest = _json_object(run.manifest)
    steps = None if manifest is None else manifest.get("num_timesteps")
    if finite_number(steps) and total_timesteps > 0:
        return None, min(1.0, max(0.0, 1.0 - steps / total_timesteps))
    return None, 1.0


def _json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None where there is none to read."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def finite_number(value: Any) -> bool:
    """A JSON number that is a real, finite value (not a bool, NaN or infinity)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def trial_command(run_dir: Path, train_args: Sequence[str]) -> list[str]:
    """What to run for ``run_dir`` now: nothing (done), a resume (its saved config decides), or a fresh start."""
    status = trial_status(run_dir)
    if status == "done":
        return []
    if status == "resume":
        return [*PBRL, "train", "--resume", "--run-dir", str(run_dir), "--no-progress"]
    return [*PBRL, "train", *train_args, "--run-dir", str(run_dir), "--no-progress"]


def merge_bench_json(path: Path, trials: list[Trial], command: list[str]) -> dict[str, Any]:
    """bench.json's content for ``trials``: the trials it already holds, then the new ones. A trial it holds under
    the same name but with other values is refused: its run directory was made by the old spec."""
    records = [t.record() for t in trials]
    old: list[dict[str, Any]] = []
    if path.exists():
        try:
            old = json.loads(path.read_text())["trials"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BenchDirError(f"{path} cannot be read ({exc}); restore it or use a new --dir") from None
    held = {t["name"]: t for t in old}
    for rec in records:
        before = held.get(rec["name"])
        if before is not None and before != rec:
            key = next(k for k in rec if before.get(k) != rec[k])
            raise BenchDirError(
                f"{path.parent} holds trial {rec['name']} with {key} {_shown(before.get(key))}; the spec now gives "
                f"{_shown(rec[key])}. A changed spec needs a new --dir (adding trials to a spec is fine)")
    return {"command": command, "trials": old + [r for r in records if r["name"] not in held]}


def _shown(value: Any) -> str:
    return shlex.join(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else repr(value)


def last_line(log: Path) -> str:
    """The last line a trial's ``pbrl train`` wrote (its error, where it failed), with the exit code bench noted."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return "no log"
    ours = [line for line in lines if line.startswith("[bench ")]
    theirs = [line for line in lines if not line.startswith("[bench ")]
    code = ours[-1].partition("] ")[2] if ours and "exit" in ours[-1] else ""
    return "; ".join(x for x in (theirs[-1] if theirs else "", code) if x) or "the log is empty"

