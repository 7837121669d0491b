"""What the store hands out: one comparison as stored, and the counts of a store's comparisons."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Comparison:
    id: int
    first_id: int
    second_id: int
    round: int
    policy_step: int
    split: str
    status: str
    label: float | None
    labeler: str | None


@dataclass(frozen=True)
class StoreCounts:
    n_labels: int  # answered with 0, 0.5 or 1
    n_pending: int  # asked, not answered (leased ones included)
    n_incomparable: int
    n_asked: int
    n_leased: int = 0  # pending and held by a labelling window right now


COMPARISON_COLUMNS = "id, first_id, second_id, round, policy_step, split, status, label, labeler"
