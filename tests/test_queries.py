"""Tests for ``pbrl.queries``: which pairs are asked about (select_queries) and when (LabelSchedule)."""

from __future__ import annotations

import numpy as np
import pytest

from pbrl.queries import SELECTIONS, LabelSchedule, n_queries_due, pair_preference_probs, select_queries, unasked

# --- select_queries ---------------------------------------------------------------------------------------

# Four pairs, each of its own segment against a segment every member scores 0, so each pair's per-member
# return difference is the first segment's return. Two members:
#   A: diffs (+4, -4)     mean P 0.5,   members disagree strongly       -> top for both methods
#   B: diffs (0.1, 0.1)   mean P 0.525, members agree                   -> 2nd most uncertain, no disagreement
#   C: diffs (3, 3)       mean P 0.95,  members agree                   -> neither
#   D: diffs (6, 0)       mean P 0.749, members disagree moderately     -> 2nd most disagreement
_MEMBER_RETURNS = np.array(
    [
        [4.0, 0.1, 3.0, 6.0, 0.0, 0.0, 0.0, 0.0],
        [-4.0, 0.1, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ]
)  # (n_members, n_segments)
_A, _B, _C, _D = [0, 4], [1, 5], [2, 6], [3, 7]
_CANDIDATES = np.array([_C, _B, _D, _A])  # deliberately not in score order


def _all_pairs(n: int) -> np.ndarray:
    """Every unordered pair once, in a random-looking orientation.  # (n * (n - 1) / 2, 2)"""
    return np.array([(i, j) if (i + j) % 2 else (j, i) for i in range(n) for j in range(i + 1, n)])


def _as_set(pairs: np.ndarray) -> set[tuple[int, int]]:
    return {tuple(int(i) for i in p) for p in pairs}


@pytest.mark.parametrize(
    ("method", "n_queries", "expected"),
    [
        ("disagreement", 1, [_A]),
        ("disagreement", 2, [_A, _D]),
        ("entropy", 1, [_A]),
        ("entropy", 2, [_A, _B]),
        ("entropy", 3, [_A, _B, _D]),
    ],
)
def test_select_queries_hand_built(method, n_queries, expected):
    rng = np.random.default_rng(0)
    out = select_queries(_MEMBER_RETURNS, _CANDIDATES, n_queries, method, rng)
    assert out.shape == (n_queries, 2)
    assert _as_set(out) == _as_set(np.array(expected))


@pytest.mark.parametrize("swap", [False, True])
def test_disagreement_and_entropy_ignore_pair_order(swap):
    """Showing a pair the other way round flips P to 1 - P: same variance, same entropy."""
    cands = _CANDIDATES[:, ::-1] if swap else _CANDIDATES
    rng = np.random.default_rng(1)
    assert _as_set(select_queries(_MEMBER_RETURNS, cands, 2, "disagreement", rng)) == _as_set(
        np.array([_A, _D])[:, ::-1] if swap else np.array([_A, _D]))
    assert _as_set(select_queries(_MEMBER_RETURNS, cands, 2, "entropy", rng)) == _as_set(
        np.array([_A, _B])[:, ::-1] if swap else np.array([_A, _B]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_disagreement_picks_highest_variance_random_ensemble(seed):
    rng = np.random.default_rng(seed)
    member_returns = rng.normal(scale=2.0, size=(4, 30))
    candidates = _all_pairs(30)[rng.permutation(435)[:100]]
    out = select_queries(member_returns, candidates, 10, "disagreement", rng)
    diff = member_returns[:, candidates[:, 0]] - member_returns[:, candidates[:, 1]]
    var = (1.0 / (1.0 + np.exp(-diff))).var(axis=0)
    assert _as_set(out) == _as_set(candidates[np.argsort(-var)[:10]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_entropy_picks_mean_prediction_closest_to_half(seed):
    rng = np.random.default_rng(seed)
    member_returns = rng.normal(scale=2.0, size=(3, 30))
    candidates = _all_pairs(30)[rng.permutation(435)[:100]]
    out = select_queries(member_returns, candidates, 10, "entropy", rng)
    diff = member_returns[:, candidates[:, 0]] - member_returns[:, candidates[:, 1]]
    mean_p = (1.0 / (1.0 + np.exp(-diff))).mean(axis=0)
    assert _as_set(out) == _as_set(candidates[np.argsort(np.abs(mean_p - 0.5))[:10]])


def test_pair_preference_probs_shape_and_values():
    probs = pair_preference_probs(_MEMBER_RETURNS, np.array([_A, _C]))  # (n_members, n_pairs)
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs, 1.0 / (1.0 + np.exp(-np.array([[4.0, 3.0], [-4.0, 3.0]]))))
    huge = pair_preference_probs(np.array([[1e6, -1e6]]), np.array([[0, 1], [1, 0]]))
    assert np.isfinite(huge).all()


@pytest.mark.parametrize("n_queries", [1, 5, 12])
def test_random_returns_distinct_candidates(n_queries):
    rng = np.random.default_rng(3)
    candidates = np.array([(i, i + 1) for i in range(12)])
    out = select_queries(np.zeros((2, 13)), candidates, n_queries, "random", rng)
    assert out.shape == (n_queries, 2)
    assert len(_as_set(out)) == n_queries
    assert _as_set(out) <= _as_set(candidates)


def test_random_is_not_always_the_first_candidates():
    candidates = np.array([(i, i + 1) for i in range(50)])
    out = select_queries(np.zeros((2, 51)), candidates, 5, "random", np.random.default_rng(4))
    assert _as_set(out) != _as_set(candidates[:5])


@pytest.mark.parametrize("method", SELECTIONS)
def test_n_queries_capped_at_candidates(method):
    out = select_queries(_MEMBER_RETURNS, _CANDIDATES, 10, method, np.random.default_rng(5))
    assert out.shape == (len(_CANDIDATES), 2)
    assert _as_set(out) == _as_set(_CANDIDATES)


@pytest.mark.parametrize("method", ["variance", "", "Disagreement", "uncertainty"])
def test_unknown_method_raises(method):
    with pytest.raises(ValueError, match="query selection"):
        select_queries(_MEMBER_RETURNS, _CANDIDATES, 2, method, np.random.default_rng(0))


# --- LabelSchedule ----------------------------------------------------------------------------------------

# (n_labels, total_timesteps, expected n_initial = 25 % of the budget, rounded)
_SCHEDULES = [
    (1, 1, 0),
    (7, 333, 2),
    (100, 10_000, 25),
    (101, 99_999, 25),
    (1401, 2_000_001, 350),
    (750, 5_000_000, 188),
    (3, 7, 1),
]


@pytest.mark.parametrize(("n_labels", "total", "n_initial"), _SCHEDULES)
def test_schedule_endpoints(n_labels, total, n_initial):
    s = LabelSchedule(n_labels, total)
    assert s.n_initial == n_initial
    assert s.due(0) == n_initial
    assert s.due(-5) == n_initial
    assert s.due(total) == n_labels
    assert s.due(total + 1) == n_labels
    assert s.due(10 * total) == n_labels


@pytest.mark.parametrize(("n_labels", "total", "n_initial"), _SCHEDULES)
@pytest.mark.parametrize("rate_constant", [2e6, 1e3])
def test_schedule_is_non_decreasing_and_within_budget(n_labels, total, n_initial, rate_constant):
    s = LabelSchedule(n_labels, total, rate_constant=rate_constant)
    grid = np.unique(np.linspace(0, total, 501).round().astype(int))
    due = np.array([s.due(int(t)) for t in grid])
    assert (np.diff(due) >= 0).all()
    assert due[0] == n_initial and due[-1] == n_labels
    assert ((n_initial <= due) & (due <= n_labels)).all()


@pytest.mark.parametrize(
    ("n_labels", "total"), [(1000, 101), (1401, 2_000_001), (750, 5_000_000), (999, 77_777)]
)
def test_schedule_increments_shrink_over_time(n_labels, total):
    s = LabelSchedule(n_labels, total, rate_constant=total / 10)
    grid = np.linspace(0, total, 11).round().astype(int)
    increments = np.diff([s.due(int(t)) for t in grid])
    # the continuous rate falls strictly; flooring to whole labels may wobble an increment by one
    assert (increments[1:] <= increments[:-1] + 1).all()
    assert increments[0] > 2 * increments[-1]
    assert s.due(total // 2) - s.due(0) > s.due(total) - s.due(total // 2)


@pytest.mark.parametrize(("t", "c"), [(2_000_000, 2e6), (6_000_000, 2e6), (1_000_000, 5e5)])
def test_schedule_rate_proportional_to_c_over_t_plus_c(t, c):
    """Labels per step at T over labels per step at 0 is c / (T + c)."""
    s = LabelSchedule(n_labels=10_000_000, total_timesteps=10_000_000, rate_constant=c)
    dt = 1_000
    rate_0 = s.due(dt) - s.due(0)
    rate_t = s.due(t + dt) - s.due(t)
    assert rate_t / rate_0 == pytest.approx(c / (t + c), rel=0.01)


def test_schedule_initial_fraction():
    assert LabelSchedule(100, 1000, initial_fraction=0.0).due(0) == 0
    assert LabelSchedule(100, 1000, initial_fraction=1.0).due(0) == 100
    assert LabelSchedule(100, 1000, initial_fraction=1.0).due(500) == 100


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_labels": 0, "total_timesteps": 100},
        {"n_labels": -3, "total_timesteps": 100},
        {"n_labels": 10, "total_timesteps": 0},
        {"n_labels": 10, "total_timesteps": -1},
        {"n_labels": 10, "total_timesteps": 100, "initial_fraction": -0.1},
        {"n_labels": 10, "total_timesteps": 100, "initial_fraction": 1.5},
    ],
)
def test_schedule_invalid_raises(kwargs):
    with pytest.raises(ValueError):
        LabelSchedule(**kwargs)


@pytest.mark.parametrize("method", ["disagreement", "entropy", "random"])
def test_duplicate_candidates_are_asked_once(method):
    """A pair drawn twice (in either order) among the candidates is never selected twice."""
    member_returns = np.array([[0.0, 3.0, 1.0], [3.0, 0.0, 1.0]])
    candidates = np.array([[0, 1], [1, 0], [0, 1], [0, 2], [1, 2]])
    chosen = select_queries(member_returns, candidates, 3, method, np.random.default_rng(0))
    assert len({tuple(sorted(p)) for p in chosen.tolist()}) == len(chosen) == 3


@pytest.mark.parametrize(
    ("ids", "asked", "kept"),
    [
        ([None, None, None], set(), [[0, 1], [2, 1], [0, 2]]),  # nothing stored yet: every candidate is new
        ([7, 8, 9], {(7, 8)}, [[2, 1], [0, 2]]),  # asked as (7, 8)
        ([7, 8, 9], {(8, 7)}, [[2, 1], [0, 2]]),  # or the other way round
        ([7, 8, 9], {(9, 8), (9, 7)}, [[0, 1]]),
        ([7, None, 9], {(7, 9)}, [[0, 1], [2, 1]]),
    ],
)
def test_unasked_drops_pairs_asked_before_in_either_order(ids, asked, kept):
    candidates = np.array([[0, 1], [2, 1], [0, 2]])
    assert unasked(candidates, ids, asked).tolist() == kept


@pytest.mark.parametrize(
    ("t", "n_asked", "n_pending", "max_pending", "n"),
    [
        (0, 0, 0, 0, 25),  # the initial share of 100 labels
        (1000, 40, 0, 0, 60),  # the whole budget is due at the end
        (1000, 40, 45, 50, 5),  # people label: at most 50 unanswered at a time
        (1000, 100, 0, 50, 0),
    ],
)
def test_queries_due_follow_the_schedule_and_the_pending_bound(t, n_asked, n_pending, max_pending, n):
    assert n_queries_due(LabelSchedule(100, 1000), t, n_asked, n_pending, max_pending) == n
