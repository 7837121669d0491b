"""Labelers: who says which segment of a pair is better.

Every labeler is a callable ``(pairs) -> labels (n_pairs,)`` holding P(first preferred) in {0, 0.5, 1}, or NaN for
"incomparable" (the pair is dropped). The synthetic oracle compares true segment returns; with its B-Pref knobs it
becomes one of the irrational teachers (Lee et al. 2021). The person in the UI answers through the store instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pbrl.segments import SegmentPair


class Labeler(Protocol):
    name: str

    def __call__(self, pairs: Sequence[SegmentPair]) -> np.ndarray:  # (n_pairs,) P(first preferred) or NaN
        ...


@dataclass
class TeacherConfig:
    """B-Pref's irrational-teacher knobs; the defaults make the perfect oracle.

    Thresholds for ``skip`` and ``equal`` are ``eps * mean_episode_return * segment_length / episode_length``,
    set once per labelling round from the true returns of recent episodes (``SyntheticOracle.set_round``).
    """

    beta: float = float("inf")  # Boltzmann rationality; inf = always the higher return
    gamma: float = 1.0  # myopia: step t of T weighs gamma ** (T - 1 - t)
    eps_mistake: float = 0.0  # probability of flipping a decided label
    eps_skip: float = 0.0  # skip (incomparable) when both segments return less than this share
    eps_equal: float = 0.0  # answer 0.5 when returns differ by less than this share

    def __post_init__(self):
        if not self.beta > 0:
            raise ValueError(f"teacher beta must be > 0 (inf for a perfect oracle), got {self.beta}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"teacher gamma must be in (0, 1], got {self.gamma}")
        for name in ("eps_mistake", "eps_skip", "eps_equal"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"teacher {name} must be in [0, 1], got {getattr(self, name)}")

    @property
    def is_perfect(self) -> bool:
        return (np.isinf(self.beta) and self.gamma == 1.0 and self.eps_mistake == 0
                and self.eps_skip == 0 and self.eps_equal == 0)


class SyntheticOracle:
    """Prefers the segment with the higher true return; exact ties are 0.5, never a side."""

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
