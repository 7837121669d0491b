"""What the user reads while a grid runs: a line per trial start, finish and failure, and a count with an ETA.

``Progress`` is told of each trial by Ray Tune's callback in ``pbrl.bench.runner``; it takes its clock as an
argument, so its lines are tested without Ray or waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbrl.bench.directory import last_line

__all__ = ["Progress", "duration"]


def duration(seconds: float) -> str:
    """1h20m, 12m05s, 45s."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


@dataclass
class Progress:
    """What the user reads while the grid runs: each trial's start and end, and every ``every_s`` a count with an
    ETA (the mean wall time of the trials finished in this invocation, times those left, over the concurrency)."""

    n_total: int  # trials selected, done ones included
    n_done: int  # done before this invocation
    concurrency: int
    logs: dict[str, Path]
    statuses: dict[str, str]
    every_s: float = 60.0
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.started_at: dict[str, float] = {}
        self.walls: list[float] = []
        self.failed: dict[str, str] = {}
        self.last_line_at = self.clock()

    def _say(self, text: str) -> None:
        print(f"bench: {text}", flush=True)

    def start(self, name: str) -> None:
        self.started_at[name] = self.clock()
        self._say(f"start {name} ({self.statuses.get(name, 'new')})")

    def finish(self, name: str, metrics: dict[str, Any]) -> None:
        wall = self.clock() - self.started_at.pop(name, self.clock())
        self.walls.append(wall)
        self.n_done += 1
        ret = metrics.get("eval_true_return_mean")
        shown = f", eval_true_return_mean {ret:.1f}" if isinstance(ret, int | float) else ""
        self._say(f"done {name} in {duration(wall)}{shown}")

    def fail(self, name: str) -> None:
        wall = self.clock() - self.started_at.pop(name, self.clock())
        self.failed[name] = last_line(self.logs[name])
        self._say(f"FAILED {name} after {duration(wall)}: {self.failed[name]}")

    def line(self) -> str:
        left = self.n_total - self.n_done - len(self.failed)
        eta = "?" if not self.walls else duration(sum(self.walls) / len(self.walls) * left / self.concurrency)
        return (f"{self.n_done}/{self.n_total} done, {len(self.started_at)} running, {len(self.failed)} failed, "
                f"ETA {eta}")

    def tick(self) -> None:
        if self.clock() - self.last_line_at >= self.every_s:
            self.last_line_at = self.clock()
            self._say(self.line())
