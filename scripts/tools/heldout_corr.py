"""Learned vs true return correlation of a finished run, recomputed from its run directory and saved reward model.

    python scripts/tools/heldout_corr.py runs/acceptance/Hopper-v5__learned__seed0 [...]

Prints one JSON line per run with the correlation over the held-out sample (``heldout_segments.npz``: segments from
the whole run that were never queried; what ``metrics.json`` calls ``learned_true_return_corr``, for runs made since
it exists) and over the segments of the validation comparisons (``learned_true_return_corr_val``).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from pbrl import PreferenceStore, RunDir
from pbrl.heldout import HeldOutSample
from pbrl.reward import load_ensemble
from pbrl.reward.diagnostics import learned_and_true_returns, learned_true_corr, pearson, validation_segments

MAX_GROUPS = 9  # true returns with at most this many distinct values are grouped


def validation_corr(path: str) -> tuple[float, int]:
    """(correlation, number of segments) over the validation comparisons' segments of the run at ``path``."""
    run = RunDir(path)
    model, _ = load_ensemble(run.reward_model)
    with PreferenceStore(run.store) as store:
        segs = validation_segments(store)
    return learned_true_corr(model, segs), len(segs)


def heldout_corr(path: str) -> dict:
    """The correlation over the run's held-out sample and the number of segments (None and 0 for runs made without
    one); where the true returns take a few values (Atari scores), the mean learned return at each."""
    run = RunDir(path)
    if not run.heldout.exists():
        return {"learned_true_return_corr": None, "n_heldout_segments": 0}
    model, _ = load_ensemble(run.reward_model)
    sample = HeldOutSample(capacity=10**9, rate=0.0)
    sample.load(run.heldout)
    learned, true = learned_and_true_returns(model, sample.segments())
    out = {"learned_true_return_corr": pearson(learned, true), "n_heldout_segments": len(true)}
    values = np.unique(true)
    if len(values) <= MAX_GROUPS:
        out["mean_learned_return_by_true_return"] = {
            f"{v:g}": {"n": int((true == v).sum()), "mean": round(float(learned[true == v].mean()), 4)} for v in values}
    return out


def main() -> int:
    for path in sys.argv[1:]:
        val, n_val = validation_corr(path)
        print(json.dumps({"run_dir": path, **heldout_corr(path), "learned_true_return_corr_val": val,
                          "n_val_segments": n_val}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
