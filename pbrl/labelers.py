"""Labelers: who says which segment of a pair is better.

Every labeler is a callable ``(pairs) -> labels (n_pairs,)`` holding P(first preferred) in {0, 0.5, 1}, or NaN for
"incomparable" (the pair is dropped). The synthetic oracle compares true segment returns; with its B-Pref knobs it
becomes one of the irrational teachers (Lee et al. 2021). The person in the UI answers through the store instead.

A labeler that needs more than the pairs says so with a class attribute, and the loop provides it:
``needs_round_returns = True`` has the loop call ``set_round(mean_episode_return, segment_length, episode_length)``
with the true returns of recent episodes before each round's pairs (the B-Pref teachers' thresholds scale with them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

import numpy as np

from pbrl.config import TeacherConfig
from pbrl.segments import SegmentPair


class Labeler(Protocol):
    """Answers comparisons at once, in this process; optionally declares ``needs_round_returns`` (see above)."""

    name: str

    def __call__(self, pairs: Sequence[SegmentPair]) -> np.ndarray:  # (n_pairs,) P(first preferred) or NaN
        ...


def needs_round_returns(labeler: Labeler) -> bool:
    """Whether ``labeler`` wants ``set_round`` called before each round's pairs (False unless it declares it)."""
    return bool(getattr(labeler, "needs_round_returns", False))


class SyntheticOracle:
    """Prefers the segment with the higher true return; exact ties are 0.5, never a side."""

    needs_round_returns: ClassVar[bool] = True  # the skip and equal thresholds scale with recent episode returns

    def __init__(self, teacher: TeacherConfig | None = None, rng: np.random.Generator | None = None):
        self.teacher = teacher or TeacherConfig()
        self.rng = rng or np.random.default_rng(0)
        self.name = "synthetic" if self.teacher.is_perfect else "synthetic-bpref"
        self.skip_threshold = 0.0
        self.equal_threshold = 0.0

    def set_round(self, mean_episode_return: float, segment_length: int, episode_length: int) -> None:
        """Fix this round's skip/equal thresholds from the mean true return of recent episodes."""
        margin = abs(mean_episode_return) * segment_length / max(episode_length, 1)
        self.skip_threshold = self.teacher.eps_skip * margin
        self.equal_threshold = self.teacher.eps_equal * margin

    def label_returns(self, true_rews_first: np.ndarray, true_rews_second: np.ndarray) -> np.ndarray:
        """Labels from per-step true rewards (n_pairs, T) of each side.  # (n_pairs,)"""
        t = self.teacher
        ret1, ret2 = true_rews_first.sum(axis=1), true_rews_second.sum(axis=1)
        length = true_rews_first.shape[1]
        weights = t.gamma ** np.arange(length - 1, -1, -1)
        seen1, seen2 = true_rews_first @ weights, true_rews_second @ weights  # myopic view
        if np.isinf(t.beta):
            labels = np.where(seen1 > seen2, 1.0, np.where(seen1 < seen2, 0.0, 0.5))
        else:
            p_first = 1.0 / (1.0 + np.exp(-np.clip(t.beta * (seen1 - seen2), -50, 50)))
            labels = (self.rng.random(len(p_first)) < p_first).astype(float)
            labels[seen1 == seen2] = 0.5
        flip = (self.rng.random(len(labels)) < t.eps_mistake) & (labels != 0.5)
        labels[flip] = 1.0 - labels[flip]
        # equal and skip are decided on the true (undiscounted) returns and are never flipped
        if t.eps_equal > 0:
            labels[np.abs(ret1 - ret2) < self.equal_threshold] = 0.5
        if t.eps_skip > 0:
            labels[np.maximum(ret1, ret2) < self.skip_threshold] = np.nan
        return labels

    def __call__(self, pairs: Sequence[SegmentPair]) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        first = np.stack([p.first.true_rews for p in pairs]).astype(np.float64)
        second = np.stack([p.second.true_rews for p in pairs]).astype(np.float64)
        return self.label_returns(first, second)
