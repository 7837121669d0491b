"""Tests for ``pbrl.store``: the SQLite preference store is durable, checks answers and writes atomically; a store
that cannot be used fails in one line naming the file, and a read-only reader never writes."""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pbrl.segments import Segment
from pbrl.store import (
    SCHEMA_VERSION,
    LeaseError,
    PreferenceStore,
    StoreCounts,
    StoreError,
    StoreVersionError,
)


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


def test_answer_many_stores_all_of_a_batch_or_none_of_it(tmp_path):
    rng = np.random.default_rng(14)
    with PreferenceStore(tmp_path / "p.sqlite") as store:
        ids, _ = store.add_queries([(_segment(rng), _segment(rng)) for _ in range(3)], ["train"] * 3, 0, 0)
        store.answer(ids[1], 1.0, "person")
        with pytest.raises(LeaseError, match=f"comparison {ids[1]} is not pending"):
            store.answer_many(ids, np.array([1.0, 0.0, 0.5]), "synthetic")  # the second was answered meanwhile
        assert [c.status for c in store.comparisons()] == ["pending", "answered", "pending"]
        with pytest.raises(ValueError, match="label"):
            store.answer_many([ids[0], ids[2]], np.array([1.0, 0.3]), "synthetic")
        assert store.counts().n_labels == 1
        store.answer_many([ids[0], ids[2]], np.array([0.0, 0.5]), "synthetic")
        assert [c.label for c in store.comparisons()] == [0.0, 1.0, 0.5]


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
    import pbrl.store.packing

    rng = np.random.default_rng(0)
    segs = [_segment(rng, t=100) for _ in range(20)]
    monkeypatch.setattr(pbrl.store.packing, "SEGMENT_CACHE_BYTES", 4 * pbrl.store.packing.nbytes(segs[0]))
    with PreferenceStore(tmp_path / "prefs.sqlite") as store:
        _, seg_ids = store.add_queries(list(zip(segs[::2], segs[1::2], strict=True)), ["train"] * 10, 0, 0)
        assert len(store._segment_cache) == 4
        for (a, b), (first, second) in zip(seg_ids, zip(segs[::2], segs[1::2], strict=True), strict=True):
            _assert_same_segment(store.segment(a), first)
            _assert_same_segment(store.segment(b), second)
        assert len(store._segment_cache) == 4 and store._cache_bytes == 4 * pbrl.store.packing.nbytes(segs[0])


# -- a store that cannot be used, and read-only readers ------------------------------------------------------------


def _made_store(path: Path, journal_mode: str = "wal") -> None:
    """A closed store with 6 comparisons (2 answered, 1 incomparable, 3 pending) and their 12 segments."""
    rng = np.random.default_rng(12)
    with PreferenceStore(path) as store:
        ids, _ = store.add_queries([(_segment(rng), _segment(rng)) for _ in range(6)], ["train", "val"] * 3, 0, 0)
        store.answer_many(ids[:3], np.array([1.0, 0.0, np.nan]), "synthetic")
    if journal_mode != "wal":  # as a store copied by a tool that took it out of WAL mode
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA journal_mode={journal_mode}")
        conn.close()


def _read_everything(store: PreferenceStore) -> tuple:
    comps = store.comparisons()
    segs = [store.segment(i) for c in comps for i in (c.first_id, c.second_id)]
    return store.counts(), comps, store.asked_pairs(), store.answered(), segs


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _siblings(path: Path) -> list[str]:
    """The store's -wal, -shm and -journal files that exist."""
    return sorted(s for s in ("-wal", "-shm", "-journal") if Path(f"{path}{s}").exists())


def _assert_one_line_naming(exc: pytest.ExceptionInfo, path: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message and str(path) in message, message


def _drop_siblings(path: Path) -> None:
    for s in ("-wal", "-shm"):
        Path(f"{path}{s}").unlink(missing_ok=True)


_DAMAGE = {
    "truncated to half": lambda b: b[: len(b) // 2],
    "cut to its first page": lambda b: b[: int.from_bytes(b[16:18], "big")],  # the header's page size
    "random bytes": lambda b: np.random.default_rng(0).bytes(len(b)),
    "header zeroed": lambda b: bytes(100) + b[100:],
}


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize("damage", list(_DAMAGE))
def test_a_damaged_file_fails_at_open_in_one_line_naming_it(tmp_path, damage, readonly):
    path = tmp_path / "p.sqlite"
    _made_store(path)
    path.write_bytes(_DAMAGE[damage](path.read_bytes()))
    before = _digest(path)
    with pytest.raises(StoreError, match="damaged") as exc:
        PreferenceStore(path, readonly=readonly)
    _assert_one_line_naming(exc, path)
    assert _digest(path) == before  # nothing written, not even by a writer
    if not readonly:
        assert _siblings(path) == []


@pytest.mark.parametrize("readonly", [False, True])
def test_a_store_damaged_in_any_one_page_raises_store_error_at_open_or_read_or_check(tmp_path, readonly):
    """Overwrite each page in turn: every damage is noticed, always as StoreError, never as a raw sqlite error."""
    path = tmp_path / "p.sqlite"
    _made_store(path)
    with PreferenceStore(path, readonly=True) as store:
        assert store.check_integrity() == ["ok"]
    sound = path.read_bytes()
    page_size = int.from_bytes(sound[16:18], "big")
    rng = np.random.default_rng(0)
    assert len(sound) // page_size >= 8  # segments, comparisons, index and events each have pages of their own
    for page in range(len(sound) // page_size):
        _drop_siblings(path)
        path.write_bytes(sound[: page * page_size] + rng.bytes(page_size) + sound[(page + 1) * page_size:])
        try:
            with PreferenceStore(path, readonly=readonly) as store:
                _read_everything(store)
                noticed = store.check_integrity() != ["ok"]
        except StoreError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
            noticed = True
        assert noticed, f"page {page} damaged unnoticed"


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize("damaged", ["comparisons", "comparisons_status", "segments"])
def test_a_damaged_table_is_noticed_at_open_not_at_a_later_read(tmp_path, damaged, readonly):
    """The schema can be sound while the tables are not: opening reads the counts and the newest segment too."""
    path = tmp_path / "p.sqlite"
    _made_store(path)
    conn = sqlite3.connect(path)
    [(root,)] = conn.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (damaged,)).fetchall()
    [(page_size,)] = conn.execute("PRAGMA page_size").fetchall()
    conn.close()
    data = bytearray(path.read_bytes())
    data[(root - 1) * page_size: root * page_size] = np.random.default_rng(0).bytes(page_size)
    path.write_bytes(data)
    with pytest.raises(StoreError, match="damaged") as exc:
        PreferenceStore(path, readonly=readonly)
    _assert_one_line_naming(exc, path)


def test_a_segment_whose_data_is_damaged_raises_store_error_naming_it(tmp_path):
    """SQLite keeps no checksums: a flipped byte inside a segment's compressed arrays shows only when it is read."""
    path = tmp_path / "p.sqlite"
    _made_store(path)
    conn = sqlite3.connect(path)
    [(data,)] = conn.execute("SELECT data FROM segments WHERE id=3").fetchall()
    conn.execute("UPDATE segments SET data=? WHERE id=3", (data[: len(data) // 2],))
    conn.commit()
    conn.close()
    with PreferenceStore(path, readonly=True) as store:
        store.segment(2)  # the others still read
        with pytest.raises(StoreError, match="segment 3 .* is damaged") as exc:
            store.segment(3)
        _assert_one_line_naming(exc, path)


def test_an_empty_file_opened_readonly_holds_no_store(tmp_path):
    path = tmp_path / "p.sqlite"
    path.touch()
    with pytest.raises(StoreError, match="holds no pbrl store") as exc:
        PreferenceStore(path, readonly=True)
    _assert_one_line_naming(exc, path)
    assert path.stat().st_size == 0 and _siblings(path) == []


def test_an_empty_file_becomes_a_new_store_when_opened_to_write(tmp_path):
    path = tmp_path / "p.sqlite"
    path.touch()  # as SQLite itself leaves a store whose creation was cut short
    with PreferenceStore(path) as store:
        assert store.counts() == StoreCounts(0, 0, 0, 0)
    with PreferenceStore(path, readonly=True) as store:
        assert store.counts() == StoreCounts(0, 0, 0, 0)


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_a_store_from_a_newer_pbrl_is_refused_and_left_as_it_was(tmp_path, journal_mode, readonly):
    path = tmp_path / "p.sqlite"
    _made_store(path, journal_mode)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    before, siblings = _digest(path), _siblings(path)
    with pytest.raises(StoreVersionError, match=f"schema {SCHEMA_VERSION + 1}.*upgrade pbrl") as exc:
        PreferenceStore(path, readonly=readonly)
    assert isinstance(exc.value, StoreError) and isinstance(exc.value, RuntimeError)
    _assert_one_line_naming(exc, path)
    assert _digest(path) == before  # no schema created, no journal mode changed
    if not (readonly and journal_mode == "wal"):  # a WAL reader leaves an empty -wal and its -shm (see below)
        assert _siblings(path) == siblings


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_a_readonly_store_reads_what_was_written_and_writes_nothing(tmp_path, journal_mode):
    path = tmp_path / "p.sqlite"
    _made_store(path, journal_mode)
    before, siblings = _digest(path), _siblings(path)
    with PreferenceStore(path, readonly=True) as store:
        counts, comps, asked, answered, segs = _read_everything(store)
    assert counts == StoreCounts(n_labels=2, n_pending=3, n_incomparable=1, n_asked=6)
    assert _digest(path) == before
    if journal_mode == "wal":
        # SQLite makes a -wal and a -shm to read a WAL store and a read-only connection cannot remove them; the
        # -wal stays empty, and the next writer to close removes both
        assert Path(f"{path}-wal").stat().st_size == 0
    else:
        assert _siblings(path) == siblings
    with PreferenceStore(path) as writer:
        assert _read_everything(writer)[:4] == (counts, comps, asked, answered)
        for got, want in zip(segs, _read_everything(writer)[4], strict=True):
            _assert_same_segment(got, want)


def test_opening_a_store_to_write_writes_nothing_until_something_is_stored(tmp_path):
    """The check at open that the store is writable is a write rolled back: it leaves no trace in the -wal."""
    path = tmp_path / "p.sqlite"
    _made_store(path)
    before = _digest(path)
    with PreferenceStore(path) as store:
        assert Path(f"{path}-wal").stat().st_size == 0
        store.answer(4, 1.0, "alice")
        assert Path(f"{path}-wal").stat().st_size > 0
    assert _digest(path) != before  # the answer, checkpointed at close


_WRITES: dict[str, Callable[[PreferenceStore], object]] = {
    "add_queries": lambda s: s.add_queries([(_segment(np.random.default_rng(0)), s.segment(1))], ["train"], 1, 1),
    "answer": lambda s: s.answer(4, 1.0, "alice"),
    "answer_many": lambda s: s.answer_many([4, 5], np.array([1.0, 0.0]), "synthetic"),
    "lease_next": lambda s: s.lease_next("alice:1", 60.0),
    "renew_leases": lambda s: s.renew_leases([4], "alice:1", 60.0),
    "release": lambda s: s.release([4], "alice:1"),
    "undo": lambda s: s.undo(1, "synthetic", "alice:1", 60.0),
}


@pytest.mark.parametrize("write", list(_WRITES))
def test_a_readonly_store_refuses_every_write(tmp_path, write):
    path = tmp_path / "p.sqlite"
    _made_store(path)
    before = _digest(path)
    with PreferenceStore(path, readonly=True) as store:
        with pytest.raises(StoreError, match="read-only") as exc:
            _WRITES[write](store)
        _assert_one_line_naming(exc, path)
        assert store.counts() == StoreCounts(n_labels=2, n_pending=3, n_incomparable=1, n_asked=6)
    assert _digest(path) == before


def test_a_schema_1_store_is_read_readonly_and_not_migrated(tmp_path):
    path = tmp_path / "old.sqlite"
    _made_store(path)
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE comparisons DROP COLUMN shown_at")
    conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    before = _digest(path)
    with PreferenceStore(path, readonly=True) as store:
        counts, comps, _, answered, segs = _read_everything(store)
        assert counts == StoreCounts(n_labels=2, n_pending=3, n_incomparable=1, n_asked=6)
        assert [c.label for c in answered] == [1.0, 0.0] and len(segs) == 12
    assert _digest(path) == before
    conn = sqlite3.connect(path)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(comparisons)")]
    assert "shown_at" not in columns
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
    conn.close()


@pytest.mark.parametrize(("name", "readonly", "says"), [
    ("missing.sqlite", True, "no preference store at"),
    ("no/such/dir/p.sqlite", False, "does not exist"),
    ("no/such/dir/p.sqlite", True, "no preference store at"),
    (".", True, "is a directory"),
    (".", False, "is a directory"),
])
def test_a_store_that_is_not_there_is_reported_in_one_line(tmp_path, name, readonly, says):
    path = tmp_path / name
    with pytest.raises(StoreError, match=says) as exc:
        PreferenceStore(path, readonly=readonly)
    _assert_one_line_naming(exc, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing created


def test_a_database_of_something_else_is_not_taken_over(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    before = _digest(path)
    for readonly in (False, True):
        with pytest.raises(StoreError, match="other tables") as exc:
            PreferenceStore(path, readonly=readonly)
        _assert_one_line_naming(exc, path)
    assert _digest(path) == before


@pytest.mark.parametrize("name", ["with space.sqlite", "what?.sqlite", "hash#1.sqlite", "per%20cent.sqlite",
                                  "dir with space/p.sqlite"])
def test_a_readonly_store_opens_paths_with_uri_characters(tmp_path, name):
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    _made_store(path)
    with PreferenceStore(path, readonly=True) as store:
        assert store.counts().n_asked == 6
    # the reader opened that file, not one named by a misread URI
    assert {p.name for p in path.parent.iterdir()} <= {path.name, f"{path.name}-wal", f"{path.name}-shm"}


@pytest.mark.parametrize(("field", "where", "bad"), [
    ("true_rews", 1, np.nan),
    ("true_rews", 1, np.inf),
    ("true_rews", slice(None), 3e38),  # finite rewards whose float32 sum, the true_return, overflows to inf
    ("obs", 5, np.nan),
    ("acts", 0, -np.inf),
    ("states", 7, np.nan),
])
def test_a_segment_with_a_non_finite_value_is_refused_and_nothing_is_stored(tmp_path, field, where, bad):
    rng = np.random.default_rng(13)
    path = tmp_path / "p.sqlite"
    with PreferenceStore(path) as store:
        store.add_queries([(_segment(rng), _segment(rng))], ["train"], 0, 0)
        broken = _segment(rng, episode=5, env_step=40)
        getattr(broken, field).flat[where] = bad
        with pytest.raises(ValueError, match=r"second segment of pair 1 \(env 1, episode 5, step 40") as exc:
            store.add_queries([(_segment(rng), _segment(rng)), (_segment(rng), broken)], ["train", "val"], 1, 10)
        assert "\n" not in str(exc.value) and ("true_return" in str(exc.value) or field in str(exc.value))
        assert store.counts().n_asked == 1
    assert _row_counts(path) == (2, 1)


# -- permissions: root ignores file modes, so as root these run as `nobody` in a forked child ----------------------

NOBODY = 65534


def _as_unprivileged_user(fn: Callable[[], object]) -> object:
    """``fn()`` run by a user that file modes apply to: this one, or ``nobody`` in a forked child when root.

    The child forks from a process with no store open (SQLite's per-process lock tables must not be shared), and
    sends back its result or its exception.
    """
    if os.geteuid() != 0:
        return fn()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        try:
            os.close(read_fd)
            try:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            except OSError as exc:
                result: tuple = ("skip", f"cannot become nobody: {exc}")
            else:
                try:
                    result = ("ok", fn())
                except BaseException as exc:  # noqa: BLE001 - sent to the parent, which raises it
                    result = ("raised", exc)
            with os.fdopen(write_fd, "wb") as f:
                try:
                    pickle.dump(result, f)
                except Exception:  # noqa: BLE001
                    pickle.dump(("raised", AssertionError(repr(result))), f)
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    if kind == "skip":
        pytest.skip(value)
    if kind == "raised":
        raise value
    return value


@pytest.fixture
def run_dir():
    """An empty directory another user can reach (pytest's tmp_path is private to its user); modes restored after."""
    base = Path(tempfile.mkdtemp(prefix="pbrl-test-store-"))
    os.chmod(base, 0o755)
    (base / "run").mkdir()
    yield base / "run"
    for p in [base, *base.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, 0o777 if p.is_dir() else 0o666)
    shutil.rmtree(base)


posix_only = pytest.mark.skipif(sys.platform == "win32" or not hasattr(os, "fork"), reason="POSIX file modes")


@posix_only
@pytest.mark.parametrize(("dir_mode", "file_mode"), [(0o555, 0o444), (0o777, 0o444), (0o555, 0o666)],
                         ids=["neither-writable", "file-read-only", "directory-read-only"])
def test_a_store_this_user_cannot_write_fails_at_open_in_one_line(run_dir, dir_mode, file_mode):
    path = run_dir / "preferences.sqlite"
    _made_store(path)
    before = _digest(path)
    os.chmod(path, file_mode)
    os.chmod(run_dir, dir_mode)
    with pytest.raises(StoreError, match="not writable by this user") as exc:
        _as_unprivileged_user(lambda: PreferenceStore(path))
    _assert_one_line_naming(exc, path)
    assert "pbrl status" in str(exc.value)
    assert _digest(path) == before
    # and it still reads
    assert _as_unprivileged_user(lambda: PreferenceStore(path, readonly=True).counts().n_asked) == 6


_LIVE_WRITER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA wal_autocheckpoint=0")  # the answer stays in the -wal while this process lives
conn.execute("UPDATE comparisons SET status='answered', label=1.0 WHERE id=6")
print("ready", flush=True)
sys.stdin.readline()
"""


@posix_only
@pytest.mark.parametrize("writer_running", [False, True])
def test_a_reader_reads_a_store_in_a_directory_it_cannot_write(run_dir, writer_running):
    """`pbrl status` by another user: while a run writes (through its -wal), and after it ended (no -wal left, where
    SQLite cannot open the store read-only without making one; the reader then reads the file as it stands)."""
    path = run_dir / "preferences.sqlite"
    _made_store(path)
    writer = None
    if writer_running:
        writer = subprocess.Popen([sys.executable, "-c", _LIVE_WRITER, str(path)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
    try:
        os.chmod(run_dir, 0o555)
        siblings = _siblings(path)
        counts = _as_unprivileged_user(lambda: PreferenceStore(path, readonly=True).counts())
        assert counts.n_labels == (3 if writer_running else 2) and counts.n_asked == 6
        assert _siblings(path) == siblings
    finally:
        if writer is not None:
            writer.communicate("\n", timeout=30)


# -- schema 3: who answered how, request keys, invitations ---------------------------------------------------------

def _as_schema_2(path: Path) -> None:
    """Turn a store made now into one as pbrl wrote it with schema 2 (before pbrl serve)."""
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX events_request_key")
    for column in ("shown_at", "response_s", "request_key"):
        conn.execute(f"ALTER TABLE events DROP COLUMN {column}")
    conn.execute("DROP TABLE invitations")
    conn.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    conn.commit()
    conn.close()


def _columns(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def test_a_schema_2_store_is_migrated_with_its_answers_kept(tmp_path):
    path = tmp_path / "p.sqlite"
    _made_store(path)
    _as_schema_2(path)
    with PreferenceStore(path, readonly=True) as store:  # read as it stands, not migrated
        assert store.counts() == StoreCounts(n_labels=2, n_pending=3, n_incomparable=1, n_asked=6)
    assert "request_key" not in _columns(path, "events")
    with PreferenceStore(path) as store:
        assert store.counts() == StoreCounts(n_labels=2, n_pending=3, n_incomparable=1, n_asked=6)
        assert store.answer(4, 1.0, "alice", shown_at=3.0, response_s=1.5, request_key="k" * 16)
        assert store._conn.execute("SELECT labeler, shown_at, response_s, request_key FROM events WHERE "
                                   "comparison_id=4").fetchall() == [("alice", 3.0, 1.5, "k" * 16)]
    assert _columns(path, "events")[-3:] == ["shown_at", "response_s", "request_key"]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    conn.close()


def test_a_kill_during_the_migration_leaves_the_old_store_whole_and_the_next_open_migrates_it(tmp_path):
    path = tmp_path / "p.sqlite"
    _made_store(path)
    _as_schema_2(path)
    code = "import sys; from pbrl.store import PreferenceStore; PreferenceStore(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, str(path)], env={**os.environ, "PBRL_KILL_AT": "store-migrate"},
                          capture_output=True)
    assert done.returncode == -9  # killed inside the migration's transaction, before its commit
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)
    conn.close()
    assert "request_key" not in _columns(path, "events")
    with PreferenceStore(path) as store:
        assert store.counts() == StoreCounts(n_labels=2, n_pending=3, n_incomparable=1, n_asked=6)
        assert [c.label for c in store.answered()] == [1.0, 0.0]
    assert "request_key" in _columns(path, "events")


def test_a_request_key_makes_an_answer_and_an_undo_happen_once(tmp_path):
    store, ids = _pending_store(tmp_path / "p.sqlite", 2)
    with store:
        assert store.answer(ids[0], 1.0, "alice", request_key="a" * 16)
        assert not store.answer(ids[0], 1.0, "alice", request_key="a" * 16)  # a retry: nothing stored
        with pytest.raises(LeaseError, match="used for another request"):
            store.answer(ids[1], 1.0, "alice", request_key="a" * 16)
        assert store.undo(ids[0], "alice", "alice:1", 60.0, request_key="u" * 16)
        assert not store.undo(ids[0], "alice", "alice:1", 60.0, request_key="u" * 16)
        assert not store.answer(ids[0], 1.0, "alice", request_key="a" * 16)  # still once, after the undo
        assert store.event_of_request("a" * 16) == (ids[0], "alice", "answer")
        assert store.event_of_request("b" * 16) is None
        kinds = store._conn.execute("SELECT kind FROM events ORDER BY id").fetchall()
        assert kinds == [("answer",), ("undo",)] and store.comparison(ids[0]).status == "pending"


def test_invitations_store_only_token_hashes_and_revoke_closes_every_link_of_a_name(tmp_path):
    from pbrl.store.invitations import check_name, invite, labelers, open_tokens, revoke, token_hash

    path = tmp_path / "p.sqlite"
    with PreferenceStore(path) as store:
        tokens = [invite(store, "alice"), invite(store, "alice"), invite(store, "bob")]
        assert len(set(tokens)) == 3 and all(len(t) >= 32 for t in tokens)  # 192 random bits each
        assert open_tokens(store) == {token_hash(tokens[0]): "alice", token_hash(tokens[1]): "alice",
                                      token_hash(tokens[2]): "bob"}
        assert revoke(store, "alice") == 2 and revoke(store, "alice") == 0
        assert open_tokens(store) == {token_hash(tokens[2]): "bob"}
        assert labelers(store) == {"alice": 0, "bob": 1}
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("p.sqlite*"))
    assert not any(t.encode() in raw for t in tokens)
    for bad in ("", "a b", "-x", "x" * 65, "é", "a/b"):
        with pytest.raises(ValueError, match="a labeler's name"):
            check_name(bad)
