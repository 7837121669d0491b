"""The statistics of ``pbrl bench report``: a cell's final true returns over seeds, and their ratio to true reward.

Median, IQM and mean over seeds, with percentile-bootstrap 95 % CIs (SciPy, imported on first use: the ``bench``
extra); ``compare_to_true`` sets a learned-reward cell against the true-reward baseline of its env (a ratio, or on
envs whose returns are negative the gain over a uniform-random policy's return, ``pbrl.bench.random_policy``, as a
share of true reward's), and ``our_verdict`` reads that comparison. Arrays in, JSON-ready dicts out;
``pbrl.bench.report`` applies them per cell.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pbrl.extras import require

__all__ = ["BOOTSTRAP_SEED", "CONFIDENCE", "IQM_CUT", "MATCH_RATIO", "N_RESAMPLES", "STATISTICS", "compare_to_true",
           "our_verdict", "summarize_returns"]

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed: the same sweep gives the same CIs on every run of the report
IQM_CUT = 0.25  # scipy.stats.trim_mean(x, 0.25) cuts int(0.25 n) values from each end
MATCH_RATIO = 0.9  # our verdict: "matches" where median(learned) / median(true), or the normalised value, >= this

STATISTICS = (
    "per seed: the final policy's true return (metrics.json eval_true_return_mean); over seeds: median, "
    f"IQM = scipy.stats.trim_mean(x, {IQM_CUT}), mean; 95 % CIs: percentile bootstrap over seeds "
    f"(scipy.stats.bootstrap, {N_RESAMPLES:,} resamples, seed {BOOTSTRAP_SEED}), none with fewer than 2 seeds; "
    "vs true: median(learned) / median(true reward) of the same env, both groups resampled independently, where "
    "the true median is > 0; where it is not, normalised against a uniform-random policy: (median(learned) - R) / "
    "(median(true) - R), both groups resampled independently and R a constant, R being the mean true return of "
    "uniform random actions (the env's action space, seeded) on the final evaluation's episodes of the env's "
    "true-reward trial of lowest seed (the same number of episodes, episode length and env kwargs; listed under "
    "the table); the difference median(learned) - median(true) where there is no R or the true median is not > R; "
    f"ours: matches where the ratio or the normalised value >= {MATCH_RATIO}"
)


def _scipy_stats() -> Any:
    return require("scipy.stats", "bench", "the statistics of pbrl bench report")


def _iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return _scipy_stats().trim_mean(x, IQM_CUT, axis=axis)


def _median(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis)


def _bootstrap_ci(samples: Sequence[np.ndarray], statistic: Callable[..., np.ndarray]) -> list[float] | None:
    """The percentile-bootstrap 95 % CI of ``statistic(*samples, axis)``, each sample resampled on its own; None
    where a sample has fewer than 2 values or the bootstrap distribution is not finite."""
    if any(len(s) < 2 for s in samples):
        return None
    stats = _scipy_stats()
    # scipy >= 1.15 names the generator ``rng``; older versions ``random_state``
    seed_arg = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    result = stats.bootstrap(tuple(samples), statistic, n_resamples=N_RESAMPLES, vectorized=True, paired=False,
                             confidence_level=CONFIDENCE, method="percentile",
                             **{seed_arg: np.random.default_rng(BOOTSTRAP_SEED)})
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return [low, high] if math.isfinite(low) and math.isfinite(high) else None


def summarize_returns(returns: Sequence[float]) -> dict[str, Any]:
    """n, median, IQM, mean and the bootstrap CIs of median and IQM of one cell's per-seed returns."""
    x = np.asarray(returns, dtype=float)  # (n_seeds,)
    if len(x) == 0:
        return {"n": 0, "median": None, "median_ci": None, "iqm": None, "iqm_ci": None, "mean": None}
    return {"n": len(x), "median": float(np.median(x)), "median_ci": _bootstrap_ci([x], _median),
            "iqm": float(_iqm(x)), "iqm_ci": _bootstrap_ci([x], _iqm), "mean": float(np.mean(x))}


def _ratio(learned: np.ndarray, true: np.ndarray, axis: int = -1) -> np.ndarray:
    # a resample whose true median is not > 0 has no ratio: NaN, and a CI that takes it in becomes None
    t = np.median(true, axis=axis)
    return np.where(t > 0, np.median(learned, axis=axis) / np.where(t > 0, t, 1.0), np.nan)


def _difference(learned: np.ndarray, true: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(learned, axis=axis) - np.median(true, axis=axis)


def _normalised(random_return: float) -> Callable[..., np.ndarray]:
    """(median(learned) - R) / (median(true) - R) for a fixed random-policy return R: the share of true reward's gain
    over a random policy that learned reward gets."""
    def statistic(learned: np.ndarray, true: np.ndarray, axis: int = -1) -> np.ndarray:
        # a resample whose true median is not above R has no share: NaN, and a CI that takes it in becomes None
        gain = np.median(true, axis=axis) - random_return
        return np.where(gain > 0, (np.median(learned, axis=axis) - random_return) / np.where(gain > 0, gain, 1.0),
                        np.nan)
    return statistic


def compare_to_true(learned: Sequence[float], true: Sequence[float],
                    random_return: float | None = None) -> dict[str, Any]:
    """median(learned) / median(true) with its bootstrap CI where the true median is > 0; else, given the return R
    of a uniform-random policy on the env (``random_return``) and a true median above it, the normalised
    (median(learned) - R) / (median(true) - R) with R held fixed in the bootstrap; else the difference.

    Returns ``{"kind": "ratio" | "normalised" | "diff" | None, "value", "ci"}``; kind None where either group is
    empty.
    """
    lx, tx = np.asarray(learned, dtype=float), np.asarray(true, dtype=float)  # (n_learned,), (n_true,)
    if len(lx) == 0 or len(tx) == 0:
        return {"kind": None, "value": None, "ci": None}
    true_median = np.median(tx)
    if true_median > 0:
        kind, fn = "ratio", _ratio
    elif random_return is not None and true_median > random_return:
        kind, fn = "normalised", _normalised(random_return)
    else:
        kind, fn = "diff", _difference
    return {"kind": kind, "value": float(fn(lx, tx)), "ci": _bootstrap_ci([lx, tx], fn)}


def our_verdict(vs_true: dict[str, Any]) -> str | None:
    """"matches" or "below" from a ratio or a normalised value (both read against ``MATCH_RATIO``); a difference
    has no verdict."""
    if vs_true["kind"] in ("ratio", "normalised"):
        return f"matches (>= {MATCH_RATIO}x)" if vs_true["value"] >= MATCH_RATIO else "below"
    if vs_true["kind"] == "diff":
        return "n/a (true median <= 0: see diff)"
    return None
