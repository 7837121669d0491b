"""Choosing which pairs of segments to ask about, and when: query selection and the label schedule.

``select_queries`` draws ``oversample`` times more candidate pairs than needed and keeps the ones the ensemble
disagrees about most (variance of the members' predicted preference), or the most uncertain ones (entropy of the
mean prediction), or a random subset. ``LabelSchedule`` says how many labels should have been asked for by
timestep T: a share of the budget up front from the untrained policy, the rest at a rate proportional to
c / (T + c), normalised so that exactly the whole budget is spent by the end of the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pbrl.config.tree import SELECTIONS, MethodConfig

QuerySelection = Literal["disagreement", "random", "entropy"]


def pair_preference_probs(member_returns: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Each member's P(first preferred) for each pair (plain Bradley-Terry on raw returns).

    member_returns (n_members, n_segments), pairs (n_pairs, 2) -> (n_members, n_pairs).
    """
    diff = member_returns[:, pairs[:, 0]] - member_returns[:, pairs[:, 1]]
    return 1.0 / (1.0 + np.exp(-np.clip(diff, -50.0, 50.0)))


def select_queries(
    member_returns: np.ndarray, candidates: np.ndarray, n_queries: int, method: str, rng: np.random.Generator
) -> np.ndarray:
    """Keep ``n_queries`` distinct pairs of the ``candidates`` (n_candidates, 2) by ``method``. Returns (n, 2).

    ``member_returns`` (n_members, n_segments) are the members' predicted returns of every segment.
    """
    if method not in SELECTIONS:
        raise ValueError(f"query selection must be one of {', '.join(SELECTIONS)}, got {method!r}")
    _, first = np.unique(np.sort(candidates, axis=1), axis=0, return_index=True)
    candidates = candidates[np.sort(first)]  # each unordered pair once, in drawing order
    n_queries = min(n_queries, len(candidates))
    if method == "random":
        return candidates[rng.permutation(len(candidates))[:n_queries]]
    probs = pair_preference_probs(member_returns, candidates)  # (n_members, n_candidates)
    if method == "disagreement":
        score = probs.var(axis=0)
    else:
        p = np.clip(probs.mean(axis=0), 1e-12, 1 - 1e-12)
        score = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    # ties broken at random so that equal scores do not favour early candidates
    order = np.lexsort((rng.random(len(score)), -score))
    return candidates[order[:n_queries]]


def unasked(candidates: np.ndarray, segment_ids: list[int | None], asked: set[tuple[int, int]]) -> np.ndarray:
    """The ``candidates`` (n, 2) (indices into ``segment_ids``, the segments' ids in the store, None for a segment
    not stored yet) that do not pair two segments ``asked`` about before, in either order.  # (n_kept, 2)"""
    fresh = [(i, j) not in asked and (j, i) not in asked for i, j in
             ((segment_ids[a], segment_ids[b]) for a, b in candidates)]
    return candidates[np.asarray(fresh, dtype=bool)]


def n_queries_due(schedule: LabelSchedule, t: int, n_asked: int, n_pending: int, max_pending: int = 0) -> int:
    """Queries due by the ``schedule`` at agent step ``t`` beyond the ``n_asked`` so far, and with ``max_pending``
    (0: no bound) at most that many unanswered ones at a time."""
    n = schedule.due(t) - n_asked
    if max_pending:
        n = min(n, max_pending - n_pending)
    return n


@dataclass(frozen=True)
class LabelSchedule:
    """How many labels should have been asked for after ``t`` agent timesteps."""

    n_labels: int
    total_timesteps: int
    initial_fraction: float = MethodConfig.initial_label_fraction
    rate_constant: float = MethodConfig.label_rate_constant  # label rate after T steps is proportional to c / (T + c)

    def __post_init__(self):
        if self.n_labels < 1:
            raise ValueError(f"n_labels must be >= 1, got {self.n_labels}")
        if self.total_timesteps < 1:
            raise ValueError(f"total_timesteps must be >= 1, got {self.total_timesteps}")
        if not 0.0 <= self.initial_fraction <= 1.0:
            raise ValueError(f"initial label fraction must be in [0, 1], got {self.initial_fraction}")

    @property
    def n_initial(self) -> int:
        return int(round(self.n_labels * self.initial_fraction))

    def due(self, t: int) -> int:
        """Cumulative labels due by timestep ``t``; equals ``n_labels`` from ``total_timesteps`` on."""
        if t >= self.total_timesteps:
            return self.n_labels
        c = self.rate_constant
        share = math.log1p(max(t, 0) / c) / math.log1p(self.total_timesteps / c)
        return self.n_initial + int(math.floor((self.n_labels - self.n_initial) * share))
