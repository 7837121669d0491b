"""The run directory: the whole state of a run, enough on its own to resume, evaluate, re-label or refit.

    config.json          the resolved TrainConfig
    preferences.sqlite   comparisons, labels and the segments they refer to (PreferenceStore)
    reward_model.pt      the reward ensemble with its config and normalisation statistics
    policy.zip           the SB3 PPO checkpoint;  vecnormalize.pkl: its observation statistics
    loop_state.json      where the loop stands (round, pretrained, return scaling, rng state)
    metrics.json         final figures of the run
    tb/                  TensorBoard logs
    evals.jsonl          with --eval-every: one line per evaluation during the run
    best/                with --eval-every: the best evaluated policy so far (config, loop state, policy,
                         observation statistics, eval.json): a run directory for ``pbrl eval`` and ``pbrl video``
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class RunDirError(ValueError):
    """A run directory that cannot be used as asked, with what to do instead."""


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    store = property(lambda self: self.path / "preferences.sqlite")
    reward_model = property(lambda self: self.path / "reward_model.pt")
    policy = property(lambda self: self.path / "policy.zip")
    vecnormalize = property(lambda self: self.path / "vecnormalize.pkl")
    state = property(lambda self: self.path / "loop_state.json")
    metrics = property(lambda self: self.path / "metrics.json")
    heldout = property(lambda self: self.path / "heldout_segments.npz")
    tb = property(lambda self: self.path / "tb")
    evals = property(lambda self: self.path / "evals.jsonl")
    best = property(lambda self: self.path / "best")

    def holds_run(self) -> bool:
        return self.config.exists() and self.state.exists()

    def check_new(self) -> None:
        """A fresh run may not write into a directory that already holds anything."""
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            what = "a run" if self.holds_run() else "files"
            raise RunDirError(
                f"{self.path} already holds {what}; pass --resume to continue it or choose another --run-dir"
            )

    def check_existing(self) -> None:
        if not self.holds_run():
            raise RunDirError(f"{self.path} holds no pbrl run (no config.json and loop_state.json); "
                              "start one with pbrl train --run-dir " + str(self.path))

    def check_whole(self) -> None:
        """A run that can be resumed, labelled or shown: not a kept policy (a run's ``best/``), which holds only
        what ``pbrl eval`` and ``pbrl video`` read."""
        self.check_existing()
        if (self.path / "eval.json").exists() and not self.store.exists():
            raise RunDirError(f"{self.path} is a kept policy, for pbrl eval and pbrl video only; resume, label or "
                              f"see the status of its run with --run-dir {self.path.parent}")

    def read_json(self, path: Path) -> dict[str, Any]:
        return json.loads(path.read_text())


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that a crash leaves either the old or the new file, never half of one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
