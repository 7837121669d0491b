"""How well the reward model's returns follow the true ones: the diagnostics a run logs and ``metrics.json`` keeps.

The loop's reports and ``scripts/tools/heldout_corr.py`` compare the ensemble's mean learned return of segments
with their true return (or a scripted judge's score) over the held-out sample, the validation comparisons' segments
and the recent unqueried ones. Policy evaluation (true returns of episodes) is ``pbrl.evaluation``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pbrl.reward.base import EnsembleBase
from pbrl.segments import Segment, stack

if TYPE_CHECKING:
    from pbrl.store import PreferenceStore


def validation_segments(store: PreferenceStore) -> list[Segment]:
    """The segments of the answered validation comparisons: never fitted on, and drawn from the whole run."""
    seen: dict[int, Segment] = {}
    for c in store.comparisons("answered"):
        if c.split == "val":
            for sid in (c.first_id, c.second_id):
                if sid not in seen:
                    seen[sid] = store.segment(sid)
    return list(seen.values())


def learned_and_true_returns(model: EnsembleBase, segments: Sequence[Segment],
                             chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The ensemble's mean learned return and the true return of each segment, ``chunk`` segments unpacked at a
    time (a held-out sample unpacks a segment each time it is read).  # (B,), (B,)"""
    learned, true = [np.zeros(0)], []
    for start in range(0, len(segments), chunk):
        part = segments[start:start + chunk]
        learned.append(model.segment_returns(*stack(part)).mean(axis=0))  # (B,)
        true.extend(s.true_return for s in part)
    return np.concatenate(learned), np.array(true, dtype=np.float64)


def learned_true_corr(model: EnsembleBase, segments: Sequence[Segment], chunk: int = 64,
                      targets: np.ndarray | None = None) -> float:
    """Pearson correlation of learned and true segment returns over ``segments`` (NaN if undefined), ``chunk``
    segments at a time (a held-out sample unpacks only those); with ``targets``, of learned returns and those
    (e.g. a judge's scores of the segments) instead of the true returns."""
    if len(segments) < 3:
        return float("nan")
    learned, true = learned_and_true_returns(model, segments, chunk)
    return pearson(learned, true if targets is None else np.asarray(targets, dtype=np.float64))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two equal-length arrays; NaN with fewer than 3 values or a constant one."""
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])
