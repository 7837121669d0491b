"""Tests for ``pbrl.store``: the SQLite preference store is durable, checks answers and writes atomically."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

from pbrl.segments import Segment
from pbrl.store import LeaseError, PreferenceStore, StoreCounts


def _segment(rng: np.random.Generator, t: int = 4, with_states: bool = True, **meta) -> Segment:
    return Segment(
        obs=rng.normal(size=(t, 3)).astype(np.float32),
        acts=rng.normal(size=(t, 2)).astype(np.float32),
        true_rews=rng.normal(size=t).astype(np.float32),
        policy_step=meta.get("policy_step", 100),
        episode=meta.get("episode", 2),
        env_step=meta.get("env_step", 7),
        env_index=meta.get("env_index", 1),
        states=rng.normal(size=(t, 5)) if with_states else None,
    )


def _assert_same_segment(got: Segment, want: Segment) -> None:
    np.testing.assert_array_equal(got.obs, want.obs)
    np.testing.assert_array_equal(got.acts, want.acts)
    np.testing.assert_array_equal(got.true_rews, want.true_rews)
    assert (got.policy_step, got.episode, got.env_step, got.env_index) == (
        want.policy_step, want.episode, want.env_step, want.env_index)
    if want.states is None:
        assert got.states is None
    else:
        np.testing.assert_array_equal(got.states, want.states)


def _row_counts(path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        return (conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0])
    finally:
        conn.close()


def test_store_survives_close_and_reopen(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "prefs.sqlite"
    segs = [_segment(rng, episode=i, env_step=10 * i, with_states=i != 3) for i in range(4)]
    with PreferenceStore(path) as store:
        ids, _ = store.add_queries([(segs[0], segs[1]), (segs[2], segs[3])], ["train", "val"], round_idx=3,
                                policy_step=500)
        store.answer(ids[0], 1.0, "synthetic")
        store.answer(ids[1], 0.5, "alice", response_s=2.5, swapped=True)

    reopened = PreferenceStore(path)
    try:
        comps = reopened.comparisons()
        assert [c.id for c in comps] == ids
        assert [(c.split, c.status, c.label, c.labeler) for c in comps] == [
            ("train", "answered", 1.0, "synthetic"), ("val", "answered", 0.5, "alice")]
        assert all(c.round == 3 and c.policy_step == 500 for c in comps)
        assert reopened.counts() == StoreCounts(n_labels=2, n_pending=0, n_incomparable=0, n_asked=2)
        comps_l, pairs = reopened.labelled()
        assert [c.id for c in comps_l] == ids
        for (got_a, got_b), want_a, want_b in zip(pairs, segs[0::2], segs[1::2], strict=True):
            _assert_same_segment(got_a, want_a)
            _assert_same_segment(got_b, want_b)
        assert pairs[1][1].states is None  # a segment stored without states comes back without
        assert pairs[0][0].id == comps[0].first_id and pairs[0][1].id == comps[0].second_id
    finally:
        reopened.close()


def test_pending_comparison_answered_after_reopen(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "prefs.sqlite"
    with PreferenceStore(path) as store:
        (cid,), _ = store.add_queries([(_segment(rng), _segment(rng))], ["train"], 0, 0)
    with PreferenceStore(path) as store:
        assert store.counts().n_pending == 1
        store.answer(cid, 0.0, "bob")
    with PreferenceStore(path) as store:
        assert store.comparisons("answered")[0].label == 0.0


def test_segment_unknown_id_raises(tmp_path):
    with PreferenceStore(tmp_path / "p.sqlite") as store, pytest.raises(KeyError):
        store.segment(42)


@pytest.mark.parametrize("first_label", [1.0, 0.5, 0.0, float("nan")])
def test_answer_non_pending_raises_key_error(tmp_path, first_label):
    rng = np.random.default_rng(2)
    with PreferenceStore(tmp_path / "p.sqlite") as store:
        (cid,), _ = store.add_queries([(_segment(rng), _segment(rng))], ["train"], 0, 0)
        store.answer(cid, first_label, "synthetic")
        with pytest.raises(KeyError):
            store.answer(cid, 1.0, "synthetic")  # already answered
        with pytest.raises(KeyError):
            store.answer(cid + 1, 1.0, "synthetic")  # no such comparison
        # the first answer stands
        assert store.counts().n_asked == 1
        comp = store.comparisons()[0]
        if math.isnan(first_label):
            assert comp.status == "incomparable" and comp.label is None
        else:
            assert comp.status == "answered" and comp.label == first_label


@pytest.mark.parametrize("label", [0.25, -1.0, 2.0, 0.51, float("inf"), 1.0000001])
def test_answer_rejects_invalid_label(tmp_path, label):
    rng = np.random.default_rng(3)
    with PreferenceStore(tmp_path / "p.sqlite") as store:
        (cid,), _ = store.add_queries([(_segment(rng), _segment(rng))], ["train"], 0, 0)
        with pytest.raises(ValueError, match="label"):
            store.answer(cid, label, "synthetic")
        assert store.comparisons()[0].status == "pending"  # nothing written
        store.answer(cid, 1.0, "synthetic")  # still answerable


def test_nan_marks_incomparable_and_excluded_from_labelled(tmp_path):
    rng = np.random.default_rng(4)
    with PreferenceStore(tmp_path / "p.sqlite") as store:
        pairs = [(_segment(rng), _segment(rng)) for _ in range(3)]
        ids, _ = store.add_queries(pairs, ["train"] * 3, 0, 0)
        store.answer_many(ids, np.array([1.0, np.nan, 0.0]), "synthetic")
        assert [c.status for c in store.comparisons()] == ["answered", "incomparable", "answered"]
        comps, seg_pairs = store.labelled()
        assert [c.id for c in comps] == [ids[0], ids[2]]
        assert [c.label for c in comps] == [1.0, 0.0]
        assert len(seg_pairs) == 2
        assert store.counts() == StoreCounts(n_labels=2, n_pending=0, n_incomparable=1, n_asked=3)


def test_counts(tmp_path):
    rng = np.random.default_rng(5)
    with PreferenceStore(tmp_path / "p.sqlite") as store:
        assert store.counts() == StoreCounts(0, 0, 0, 0)
        pairs = [(_segment(rng), _segment(rng)) for _ in range(6)]
        ids, _ = store.add_queries(pairs, ["train", "val"] * 3, 0, 0)
        assert store.counts() == StoreCounts(n_labels=0, n_pending=6, n_incomparable=0, n_asked=6)
        store.answer(ids[0], 1.0, "a")
        store.answer(ids[1], 0.5, "a")
        store.answer(ids[2], 0.0, "a")
        store.answer(ids[3], float("nan"), "a")
        assert store.counts() == StoreCounts(n_labels=3, n_pending=2, n_incomparable=1, n_asked=6)
        assert len(store.comparisons("pending")) == 2


@pytest.mark.parametrize(("max_labels", "expected_slice"), [(None, slice(0, 6)), (3, slice(3, 6)),
                                                            (1, slice(5, 6)), (6, slice(0, 6)),
                                                            (100, slice(0, 6))])
def test_labelled_max_labels_keeps_most_recent(tmp_path, max_labels, expected_slice):
    rng = np.random.default_rng(6)
    with PreferenceStore(tmp_path / "p.sqlite") as store:
        ids = []
        for round_idx in range(3):  # asked over several rounds
            ids += store.add_queries([(_segment(rng), _segment(rng)) for _ in range(2)], ["train", "train"],
                                     round_idx, 100 * round_idx)[0]
        pending, _ = store.add_queries([(_segment(rng), _segment(rng))], ["train"], 3, 300)  # never answered
        for cid in ids:
            store.answer(cid, 1.0, "synthetic")
        comps, pairs = store.labelled(max_labels=max_labels)
        assert [c.id for c in comps] == ids[expected_slice]
        assert pending[0] not in [c.id for c in comps]
        assert len(pairs) == len(comps)


def test_segment_shared_by_two_pairs_stored_once(tmp_path):
    rng = np.random.default_rng(7)
    path = tmp_path / "p.sqlite"
    shared, a, b = _segment(rng), _segment(rng), _segment(rng)
    with PreferenceStore(path) as store:
        ids, seg_ids = store.add_queries([(shared, a), (b, shared)], ["train", "val"], 0, 0)
        c0, c1 = store.comparisons()
        assert [c0.id, c1.id] == ids
        assert seg_ids == [(c0.first_id, c0.second_id), (c1.first_id, c1.second_id)]
        assert c0.first_id == c1.second_id
        assert len({c0.first_id, c0.second_id, c1.first_id}) == 3
    assert _row_counts(path) == (3, 2)
    with PreferenceStore(path) as store:
        _assert_same_segment(store.segment(c0.first_id), shared)


def test_segment_with_id_is_not_stored_again(tmp_path):
    rng = np.random.default_rng(8)
    path = tmp_path / "p.sqlite"
    with PreferenceStore(path) as store:
        store.add_queries([(_segment(rng), _segment(rng))], ["train"], 0, 0)
        first = store.comparisons()[0]
        saved = store.segment(first.first_id)
        store.add_queries([(saved, _segment(rng))], ["train"], 1, 10)
        second = store.comparisons()[1]
        assert second.first_id == first.first_id
    assert _row_counts(path) == (3, 2)


@pytest.mark.parametrize("splits", [["train"], ["train", "val", "val"], []])
def test_failed_add_queries_writes_nothing(tmp_path, splits):
    rng = np.random.default_rng(9)
    path = tmp_path / "p.sqlite"
    with PreferenceStore(path) as store:
        store.add_queries([(_segment(rng), _segment(rng))], ["train"], 0, 0)  # something already there
        with pytest.raises(ValueError):
            store.add_queries([(_segment(rng), _segment(rng)), (_segment(rng), _segment(rng))], splits, 1, 10)
        assert store.counts().n_asked == 1
        # the store is still usable afterwards
        store.add_queries([(_segment(rng), _segment(rng))], ["val"], 1, 10)
        assert store.counts().n_asked == 2
    assert _row_counts(path) == (4, 2)


def test_bad_split_rolls_back_whole_call(tmp_path):
    rng = np.random.default_rng(10)
    path = tmp_path / "p.sqlite"
    with PreferenceStore(path) as store:
        with pytest.raises(sqlite3.IntegrityError):
            store.add_queries([(_segment(rng), _segment(rng)), (_segment(rng), _segment(rng))],
                              ["train", "test"], 0, 0)
        assert store.counts().n_asked == 0
    assert _row_counts(path) == (0, 0)


def test_failed_add_queries_leaves_no_stale_segment(tmp_path):
    rng = np.random.default_rng(11)
    path = tmp_path / "p.sqlite"
    with PreferenceStore(path) as store, PreferenceStore(path) as other:
        rolled_back = _segment(rng)
        with pytest.raises(ValueError):
            store.add_queries([(rolled_back, _segment(rng)), (_segment(rng), _segment(rng))], ["train"], 0, 0)
        # another connection (e.g. a second process on the same run) now stores its own segments
        theirs = _segment(rng)
        other.add_queries([(theirs, _segment(rng))], ["train"], 0, 0)
        first_id = other.comparisons()[0].first_id
        _assert_same_segment(store.segment(first_id), theirs)


def test_schema_version_mismatch_raises(tmp_path):
    path = tmp_path / "p.sqlite"
    PreferenceStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="schema"):
        PreferenceStore(path)


def _pending_store(path, n: int) -> tuple[PreferenceStore, list[int]]:
    rng = np.random.default_rng(1)
    store = PreferenceStore(path)
    ids, _ = store.add_queries([(_segment(rng), _segment(rng)) for _ in range(n)], ["train"] * n, 0, 0)
    return store, ids


def test_leases_give_each_pending_pair_to_one_session(tmp_path):
    store, ids = _pending_store(tmp_path / "p.sqlite", 3)
    with store:
        a = store.lease_next("alice:1", 60.0)
        b = store.lease_next("bob:1", 60.0)
        assert a is not None and b is not None and a.id != b.id
        c = store.lease_next("alice:1", 60.0, exclude=[a.id])
        assert c is not None and c.id not in (a.id, b.id)
        assert store.lease_next("bob:1", 60.0, exclude=[b.id]) is None  # everything else is leased
        assert store.counts().n_leased == 3
        with pytest.raises(LeaseError):  # bob cannot answer alice's pair
            store.answer(a.id, 1.0, "bob", session="bob:1")
        store.answer(a.id, 1.0, "alice", session="alice:1", shown_at=123.0, response_s=2.0, swapped=False)
        store.release([c.id], "alice:1")
        assert store.lease_next("bob:1", 60.0, exclude=[b.id]).id == c.id
        assert store.counts() == StoreCounts(n_labels=1, n_pending=2, n_incomparable=0, n_asked=3, n_leased=2)


def test_a_lapsed_lease_returns_the_pair_to_the_queue(tmp_path):
    store, ids = _pending_store(tmp_path / "p.sqlite", 1)
    with store:
        assert store.lease_next("alice:1", -1.0).id == ids[0]  # already expired
        assert store.counts().n_leased == 0
        assert store.lease_next("bob:1", 60.0).id == ids[0]
        assert store.renew_leases(ids, "alice:1", 60.0) == []  # alice lost it to bob
        assert store.renew_leases(ids, "bob:1", 60.0) == ids


def test_undo_is_recorded_and_makes_the_pair_pending_again(tmp_path):
    store, ids = _pending_store(tmp_path / "p.sqlite", 1)
    with store:
        store.lease_next("alice:1", 60.0)
        store.answer(ids[0], 0.0, "alice", session="alice:1")
        with pytest.raises(LeaseError):
            store.undo(ids[0], "bob", "bob:1", 60.0)  # only the one who answered can undo
        store.undo(ids[0], "alice", "alice:1", 60.0)
        assert store.comparisons("pending")[0].id == ids[0]
        assert store.lease_next("bob:1", 60.0) is None  # held by alice's window for her new answer
        store.answer(ids[0], 1.0, "alice", session="alice:1")
        events = store._conn.execute("SELECT kind, label FROM events ORDER BY id").fetchall()
        assert events == [("answer", 0.0), ("undo", None), ("answer", 1.0)]
        assert store.comparisons("answered")[0].label == 1.0


def test_a_schema_1_store_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite"
    store, ids = _pending_store(path, 1)
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE comparisons DROP COLUMN shown_at")
    conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with PreferenceStore(path) as store:
        store.answer(ids[0], 1.0, "alice", shown_at=5.0)
        assert store._conn.execute("SELECT shown_at FROM comparisons").fetchone() == (5.0,)


def test_the_segment_cache_is_bounded_and_evicted_segments_read_back(tmp_path, monkeypatch):
    """Only recently used segments stay in memory (an unbounded cache grew by 706 KB per Atari segment asked)."""
    import pbrl.store

    rng = np.random.default_rng(0)
    segs = [_segment(rng, t=100) for _ in range(20)]
    monkeypatch.setattr(pbrl.store, "SEGMENT_CACHE_BYTES", 4 * pbrl.store._nbytes(segs[0]))
    with PreferenceStore(tmp_path / "prefs.sqlite") as store:
        _, seg_ids = store.add_queries(list(zip(segs[::2], segs[1::2], strict=True)), ["train"] * 10, 0, 0)
        assert len(store._segment_cache) == 4
        for (a, b), (first, second) in zip(seg_ids, zip(segs[::2], segs[1::2], strict=True), strict=True):
            _assert_same_segment(store.segment(a), first)
            _assert_same_segment(store.segment(b), second)
        assert len(store._segment_cache) == 4 and store._cache_bytes == 4 * pbrl.store._nbytes(segs[0])
