"""Learned vs true return correlation of a finished run, recomputed from its run directory.

    python scripts/heldout_corr.py runs/acceptance/Hopper-v5__learned__seed0 [...]

Uses the segments of the run's validation comparisons (never fitted on, drawn from the whole run) and its saved
reward model; prints one JSON line per run. This is how ``metrics.json`` computes ``learned_true_return_corr`` from
the commit that added this script on; runs finished before it reported the correlation over the final buffer's
unqueried segments (now ``learned_true_return_corr_recent``).
"""

from __future__ import annotations

import json
import sys

from pbrl.evaluation import learned_true_corr, validation_segments
from pbrl.reward_model import RewardEnsemble
from pbrl.run_dir import RunDir
from pbrl.store import PreferenceStore


def validation_corr(path: str) -> tuple[float, int]:
    """(correlation, number of segments) over the validation comparisons' segments of the run at ``path``."""
    run = RunDir(path)
    model, _ = RewardEnsemble.load(run.reward_model)
    with PreferenceStore(run.store) as store:
        segs = validation_segments(store)
    return learned_true_corr(model, segs), len(segs)


def main() -> int:
    for path in sys.argv[1:]:
        corr, n = validation_corr(path)
        print(json.dumps({"run_dir": path, "n_segments": n, "learned_true_return_corr": corr}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
