"""Tests for ``pbrl.labelers``: the perfect synthetic oracle and each of B-Pref's irrational teachers."""

from __future__ import annotations

import numpy as np
import pytest

from pbrl.labelers import SyntheticOracle, TeacherConfig, needs_round_returns
from pbrl.segments import Segment, SegmentPair


def _segment(true_rews) -> Segment:
    rews = np.asarray(true_rews, dtype=np.float32)
    t = len(rews)
    return Segment(obs=np.zeros((t, 2), np.float32), acts=np.zeros((t, 1), np.float32), true_rews=rews,
                   policy_step=0, episode=0, env_step=0)


def _oracle(seed: int = 0, **teacher) -> SyntheticOracle:
    return SyntheticOracle(TeacherConfig(**teacher), np.random.default_rng(seed))


# --- the perfect oracle -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], 1.0),
        ([0.0, 0.0, 0.0], [1.0, 2.0, 3.0], 0.0),
        ([-1.0, -1.0, -1.0], [-1.0, -1.0, -1.1], 1.0),
        ([5.0, -5.0, 0.0], [0.0, 0.0, 0.1], 0.0),
        ([1.0, 1.0, 1.0], [3.0, 0.0, 0.0], 0.5),  # equal returns: a tie
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], 0.5),
    ],
)
def test_perfect_oracle_prefers_higher_return(first, second, expected):
    oracle = SyntheticOracle()
    assert oracle.name == "synthetic"
    a, b = _segment(first), _segment(second)
    labels = oracle([SegmentPair(a, b), SegmentPair(b, a)])  # (n_pairs,)
    assert labels.shape == (2,)
    assert labels[0] == expected
    # no side bias: showing the pair the other way round mirrors the label (0.5 stays 0.5)
    assert labels[1] == 1.0 - expected


def test_perfect_oracle_ties_are_half_in_both_orders_many_times():
    rng = np.random.default_rng(0)
    rews = rng.normal(size=(50, 4))
    oracle = SyntheticOracle(rng=np.random.default_rng(1))
    np.testing.assert_array_equal(oracle.label_returns(rews, rews.copy()), 0.5)
    np.testing.assert_array_equal(oracle.label_returns(rews[:, ::-1].copy(), rews), 0.5)


def test_oracle_empty_pairs():
    assert SyntheticOracle()([]).shape == (0,)


@pytest.mark.parametrize(
    ("teacher", "name"),
    [({}, "synthetic"), ({"beta": 1.0}, "synthetic-bpref"), ({"gamma": 0.9}, "synthetic-bpref"),
     ({"eps_mistake": 0.1}, "synthetic-bpref"), ({"eps_skip": 0.1}, "synthetic-bpref"),
     ({"eps_equal": 0.1}, "synthetic-bpref")],
)
def test_oracle_name_says_whether_it_is_perfect(teacher, name):
    assert _oracle(**teacher).name == name


# --- Boltzmann rationality (beta) ------------------------------------------------------------------------

@pytest.mark.parametrize(("beta", "diff"), [(1.0, 1.0), (0.5, -2.0), (2.0, 0.3), (0.1, 5.0)])
def test_boltzmann_rate_matches_sigmoid(beta, diff):
    n = 20_000
    first = np.zeros((n, 2))
    first[:, 0] = diff  # first segment's return exceeds the second's by ``diff``
    second = np.zeros((n, 2))
    labels = _oracle(seed=2, beta=beta).label_returns(first, second)
    assert set(np.unique(labels)) == {0.0, 1.0}  # a mix, not a perfect oracle
    expected = 1.0 / (1.0 + np.exp(-beta * diff))
    assert labels.mean() == pytest.approx(expected, abs=0.02)


def test_boltzmann_ties_stay_half():
    rews = np.random.default_rng(3).normal(size=(100, 3))
    np.testing.assert_array_equal(_oracle(beta=1.0).label_returns(rews, rews.copy()), 0.5)


def test_boltzmann_large_beta_is_nearly_rational_and_finite():
    first = np.array([[1e9, 0.0], [0.0, 0.0]])
    second = np.array([[0.0, 0.0], [1e9, 0.0]])
    labels = _oracle(beta=100.0).label_returns(first, second)
    np.testing.assert_array_equal(labels, [1.0, 0.0])


# --- myopia (gamma) ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("gamma", "expected"),
    [
        (1.0, 0.0),  # not myopic: the early, larger reward wins
        (0.9, 0.0),  # 3 * 0.9**3 = 2.19 > 1
        (0.5, 1.0),  # 3 * 0.5**3 = 0.375 < 1: the late reward wins
        (0.1, 1.0),
    ],
)
def test_myopic_teacher_weighs_late_steps_more(gamma, expected):
    late = np.array([[0.0, 0.0, 0.0, 1.0]])  # return 1, at the last step
    early = np.array([[3.0, 0.0, 0.0, 0.0]])  # return 3, at the first step
    oracle = _oracle(gamma=gamma)
    assert oracle.label_returns(late, early)[0] == expected
    assert oracle.label_returns(early, late)[0] == 1.0 - expected


# --- mistakes (eps_mistake) -------------------------------------------------------------------------------

@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3, 1.0])
def test_mistakes_flip_about_eps_of_decided_labels(eps):
    n = 20_000
    rng = np.random.default_rng(4)
    first = rng.normal(size=(n, 3))
    second = rng.normal(size=(n, 3))
    second[: n // 4] = first[: n // 4]  # a quarter are exact ties
    truth = SyntheticOracle().label_returns(first, second)
    labels = _oracle(seed=5, eps_mistake=eps).label_returns(first, second)
    tie = truth == 0.5
    assert tie.sum() == n // 4
    np.testing.assert_array_equal(labels[tie], 0.5)  # a 0.5 is never flipped
    flipped = labels[~tie] != truth[~tie]
    np.testing.assert_array_equal(labels[~tie][flipped], 1.0 - truth[~tie][flipped])
    assert flipped.mean() == pytest.approx(eps, abs=0.015)


def test_mistakes_never_flip_equal_labels():
    first = np.array([[1.0, 0.0], [1.0, 0.0]])
    second = np.array([[1.05, 0.0], [0.0, 0.0]])  # returns differ by 0.05 (equal) and by 1 (decided)
    oracle = _oracle(eps_mistake=1.0, eps_equal=0.5)
    oracle.set_round(mean_episode_return=10.0, segment_length=2, episode_length=100)  # threshold 0.1
    np.testing.assert_array_equal(oracle.label_returns(first, second), [0.5, 0.0])


# --- skipping (eps_skip) ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("eps", "mean_return", "seg_len", "ep_len", "threshold"),
    [
        (0.5, 200.0, 10, 100, 10.0),
        (0.5, -200.0, 10, 100, 10.0),  # the magnitude of the mean return
        (0.1, 1000.0, 50, 1000, 5.0),
        (1.0, 30.0, 25, 25, 30.0),
        (0.2, 0.0, 10, 100, 0.0),
    ],
)
def test_skip_threshold_formula(eps, mean_return, seg_len, ep_len, threshold):
    oracle = _oracle(eps_skip=eps)
    assert oracle.skip_threshold == 0.0  # nothing is skipped before the first round
    oracle.set_round(mean_return, seg_len, ep_len)
    assert oracle.skip_threshold == pytest.approx(threshold)
    assert oracle.equal_threshold == 0.0


@pytest.mark.parametrize(
    ("ret_first", "ret_second", "skipped"),
    [
        (3.0, 5.0, True),  # both below 10
        (-20.0, 9.9, True),
        (9.0, 9.0, True),  # a tie below the threshold is skipped, not 0.5
        (3.0, 12.0, False),  # one above: answered
        (12.0, 3.0, False),
        (10.0, 2.0, False),  # at the threshold is not below it
    ],
)
def test_skip_returns_nan_when_both_returns_below_threshold(ret_first, ret_second, skipped):
    oracle = _oracle(eps_skip=0.5)
    oracle.set_round(mean_episode_return=200.0, segment_length=10, episode_length=100)  # threshold 10
    first = np.array([[ret_first / 2, ret_first / 2]])
    second = np.array([[ret_second / 2, ret_second / 2]])
    label = oracle.label_returns(first, second)[0]
    assert np.isnan(label) == skipped
    if not skipped:
        assert label == (1.0 if ret_first > ret_second else 0.0)


# --- equal (eps_equal) ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("ret_first", "ret_second", "expected"),
    [
        (1.0, 1.2, 0.5),  # |diff| 0.2 < 0.25
        (1.2, 1.0, 0.5),
        (-3.0, -3.24, 0.5),
        (1.0, 1.3, 0.0),  # |diff| 0.3: decided
        (1.3, 1.0, 1.0),
        (5.0, -5.0, 1.0),
    ],
)
def test_equal_gives_half_when_returns_close(ret_first, ret_second, expected):
    oracle = _oracle(eps_equal=0.1)
    oracle.set_round(mean_episode_return=100.0, segment_length=25, episode_length=1000)  # margin 2.5
    assert oracle.equal_threshold == pytest.approx(0.25)
    assert oracle.skip_threshold == 0.0
    label = oracle.label_returns(np.array([[ret_first, 0.0]]), np.array([[ret_second, 0.0]]))[0]
    assert label == expected


# --- validation -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs",
    [
        {"beta": 0.0}, {"beta": -1.0}, {"beta": float("nan")},
        {"gamma": 0.0}, {"gamma": -0.5}, {"gamma": 1.01},
        {"eps_mistake": -0.1}, {"eps_mistake": 1.5},
        {"eps_skip": -0.1}, {"eps_skip": 2.0},
        {"eps_equal": -1e-9}, {"eps_equal": 1.1},
    ],
)
def test_invalid_teacher_raises(kwargs):
    with pytest.raises(ValueError, match="teacher"):
        TeacherConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"beta": 1e-6}, {"gamma": 1e-6}, {"gamma": 1.0},
     {"eps_mistake": 1.0}, {"eps_skip": 0.0}, {"eps_equal": 1.0}],
)
def test_valid_teacher_edges_accepted(kwargs):
    TeacherConfig(**kwargs)


class _Plain:
    """A user's labeler: a name and a call, nothing declared."""

    name = "plain"

    def __call__(self, pairs):
        return np.ones(len(pairs))


def test_a_labeler_gets_the_round_returns_only_when_it_declares_it_needs_them():
    assert needs_round_returns(_oracle()) and not needs_round_returns(_Plain())
