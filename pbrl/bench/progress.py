"""What the user reads while a grid runs: a line per trial start, finish and failure, and a count with an ETA.

``Progress`` is told of each trial by Ray Tune's callback in ``pbrl.bench.runner``; it takes its clock as an
argument, so its lines are tested without Ray or waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbrl.bench.directory import finite_number, last_line

__all__ = ["Progress", "TrialTime", "duration"]


def duration(seconds: float) -> str:
    """1h20m, 12m05s, 45s."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


@dataclass(frozen=True)
class TrialTime:
    """What the ETA knows of a trial when the invocation starts."""

    kind: str  # trials of one kind (the same env and reward) take about as long
    wall_s: float | None = None  # a done trial's wall time
    share_left: float = 1.0  # the share of its steps still to run: less than 1 for a trial resumed from a checkpoint


@dataclass
class Progress:
    """What the user reads while the grid runs: each trial's start and end, and every ``every_s`` a count with an
    ETA. With ``times`` (the ``TrialTime`` of every trial of the grid, those not chosen too) the ETA adds up each
    unfinished chosen trial's expected time (the mean wall time of the done trials of its kind, else of all done
    trials, times its share left, less the time it has run), over the concurrency; the trials done before this
    invocation count from the start, so a resumed sweep has an ETA at once. Without, it is the mean wall time of
    the trials finished in this invocation, times those left, over the concurrency."""

    n_total: int  # trials selected, done ones included
    n_done: int  # done before this invocation
    concurrency: int
    logs: dict[str, Path]
    statuses: dict[str, str]
    every_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    times: dict[str, TrialTime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started_at: dict[str, float] = {}
        self.walls: list[float] = []
        self.failed: dict[str, str] = {}
        self.last_line_at = self.clock()
        self.walls_by_kind: dict[str, list[float]] = {}
        for t in self.times.values():
            if t.wall_s is not None:
                self.walls_by_kind.setdefault(t.kind, []).append(t.wall_s)
        self.unfinished = {n for n, status in self.statuses.items() if status != "done" and n in self.times}

    def _say(self, text: str) -> None:
        print(f"bench: {text}", flush=True)

    def start(self, name: str) -> None:
        self.started_at[name] = self.clock()
        self._say(f"start {name} ({self.statuses.get(name, 'new')})")

    def finish(self, name: str, metrics: dict[str, Any]) -> None:
        wall = self.clock() - self.started_at.pop(name, self.clock())
        self.walls.append(wall)
        self.n_done += 1
        self.unfinished.discard(name)
        if name in self.times:  # a resumed trial's whole time is the run's own count, from its first start
            total = metrics.get("wall_time_s")
            whole = max(wall, float(total)) if finite_number(total) else wall
            self.walls_by_kind.setdefault(self.times[name].kind, []).append(whole)
        ret = metrics.get("eval_true_return_mean")
        shown = f", eval_true_return_mean {ret:.1f}" if isinstance(ret, int | float) else ""
        self._say(f"done {name} in {duration(wall)}{shown}")

    def fail(self, name: str) -> None:
        wall = self.clock() - self.started_at.pop(name, self.clock())
        self.unfinished.discard(name)
        self.failed[name] = last_line(self.logs[name])
        self._say(f"FAILED {name} after {duration(wall)}: {self.failed[name]}")

    def eta_s(self) -> float | None:
        """Seconds until the chosen trials are done, or None while nothing tells how long a trial takes."""
        if not self.times:
            left = self.n_total - self.n_done - len(self.failed)
            return sum(self.walls) / len(self.walls) * left / self.concurrency if self.walls else None
        every = [w for walls in self.walls_by_kind.values() for w in walls]
        now, remaining = self.clock(), []
        for name in self.unfinished:
            t = self.times[name]
            walls = self.walls_by_kind.get(t.kind) or every
            if not walls:
                return None
            expected = sum(walls) / len(walls) * t.share_left - (now - self.started_at.get(name, now))
            remaining.append(max(0.0, expected))
        return max([sum(remaining) / self.concurrency, *remaining], default=0.0)

    def line(self) -> str:
        eta_s = self.eta_s()
        eta = "?" if eta_s is None else duration(eta_s)
        return (f"{self.n_done}/{self.n_total} done, {len(self.started_at)} running, {len(self.failed)} failed, "
                f"ETA {eta}")

    def tick(self) -> None:
        if self.clock() - self.last_line_at >= self.every_s:
            self.last_line_at = self.clock()
            self._say(self.line())
