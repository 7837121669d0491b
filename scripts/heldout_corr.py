"""Learned vs true return correlation of a finished run, recomputed from its run directory and saved reward model.

    python scripts/heldout_corr.py runs/acceptance/Hopper-v5__learned__seed0 [...]

Prints one JSON line per run with the correlation over the held-out sample (``heldout_segments.npz``: segments from
the whole run that were never queried; what ``metrics.json`` calls ``learned_true_return_corr``, for runs made since
it exists) and over the segments of the validation comparisons (``learned_true_return_corr_val``).
"""

from __future__ import annotations

import json
import sys

from pbrl.evaluation import learned_true_corr, validation_segments
from pbrl.reward_model import load_ensemble
from pbrl.run_dir import RunDir
from pbrl.segments import HeldOutSample
from pbrl.store import PreferenceStore


def validation_corr(path: str) -> tuple[float, int]:
    """(correlation, number of segments) over the validation comparisons' segments of the run at ``path``."""
    run = RunDir(path)
    model, _ = load_ensemble(run.reward_model)
    with PreferenceStore(run.store) as store:
        segs = validation_segments(store)
    return learned_true_corr(model, segs), len(segs)


def heldout_corr(path: str) -> tuple[float | None, int]:
    """(correlation, number of segments) over the run's held-out sample; (None, 0) for runs made without one."""
    run = RunDir(path)
    if not run.heldout.exists():
        return None, 0
    model, _ = load_ensemble(run.reward_model)
    sample = HeldOutSample(capacity=10**9, rate=0.0)
    sample.load(run.heldout)
    return learned_true_corr(model, sample.segments()), len(sample)


def main() -> int:
    for path in sys.argv[1:]:
        held, n_held = heldout_corr(path)
        val, n_val = validation_corr(path)
        print(json.dumps({"run_dir": path, "learned_true_return_corr": held, "n_heldout_segments": n_held,
                          "learned_true_return_corr_val": val, "n_val_segments": n_val}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
