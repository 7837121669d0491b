"""The preference store: the only owner of labels, on SQLite, written in transactions.

It holds every comparison pbrl asks for (the two segment ids, where each came from, the label, the labeler, when it
was asked and answered) and the segments those comparisons refer to (compressed arrays in the same database, so a
comparison never points at a missing segment). The training loop and any number of labelling windows meet here and
nowhere else; WAL mode lets them read while one writes, and a label is on disk when ``answer`` returns.
"""

from __future__ import annotations

import collections
import io
import math
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pbrl.segments import Segment

SCHEMA_VERSION = 2  # 2: comparisons.shown_at
SEGMENT_CACHE_BYTES = 64 * 2**20  # recently used segments kept in memory; the rest are read back from the database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    policy_step INTEGER NOT NULL,   -- agent timesteps when the segment was collected
    episode INTEGER NOT NULL,       -- episode index within its env copy
    env_step INTEGER NOT NULL,      -- step within the episode of the segment's first step
    env_index INTEGER NOT NULL,
    length INTEGER NOT NULL,
    true_return REAL NOT NULL,
    data BLOB NOT NULL,             -- compressed npz: obs, acts, true_rews[, states]
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS comparisons (
    id INTEGER PRIMARY KEY,
    first_id INTEGER NOT NULL REFERENCES segments(id),
    second_id INTEGER NOT NULL REFERENCES segments(id),
    round INTEGER NOT NULL,
    policy_step INTEGER NOT NULL,   -- agent timesteps when the query was asked
    split TEXT NOT NULL CHECK (split IN ('train', 'val')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'answered', 'incomparable')),
    label REAL,                     -- P(first preferred): 0, 0.5 or 1; NULL unless answered
    labeler TEXT,
    asked_at REAL NOT NULL,
    answered_at REAL,
    shown_at REAL,                  -- when a person's window showed the pair (the answer's)
    response_s REAL,                -- seconds from shown to answered, for people
    swapped INTEGER,                -- 1 if the first segment was shown on the right
    leased_by TEXT,                 -- the labelling session that holds the pair on screen or in its queue
    lease_expires REAL              -- after this time the pair returns to the queue
);
CREATE INDEX IF NOT EXISTS comparisons_status ON comparisons(status);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
    kind TEXT NOT NULL,             -- 'answer' or 'undo' (an undo puts the comparison back to pending)
    label REAL,
    labeler TEXT,
    at REAL NOT NULL
);
"""


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


class LeaseError(KeyError):
    """The comparison is not (or no longer) this labelling session's to answer."""


_COMPARISON_COLUMNS = "id, first_id, second_id, round, policy_step, split, status, label, labeler"


def _pack(seg: Segment) -> bytes:
    buf = io.BytesIO()
    arrays = {"obs": seg.obs, "acts": seg.acts, "true_rews": seg.true_rews}
    if seg.states is not None:
        arrays["states"] = seg.states
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _nbytes(seg: Segment) -> int:
    states = seg.states.nbytes if seg.states is not None else 0
    return seg.obs.nbytes + seg.acts.nbytes + seg.true_rews.nbytes + states


class PreferenceStore:
    """SQLite-backed comparisons and segments of one run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(_SCHEMA)
        row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) == 1:  # schema 1 lacked shown_at; everything else is the same
            with self._tx() as c:
                c.execute("ALTER TABLE comparisons ADD COLUMN shown_at REAL")
                c.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} has store schema {row[0]}, this pbrl reads {SCHEMA_VERSION}")
        self._segment_cache: collections.OrderedDict[int, Segment] = collections.OrderedDict()  # least recent first
        self._cache_bytes = 0

    def _tx(self):
        return _Transaction(self._conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PreferenceStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------------------

    def add_queries(
        self, pairs: Sequence[tuple[Segment, Segment]], splits: Sequence[str], round_idx: int, policy_step: int
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Store the segments (those without an id yet) and a pending comparison per pair, in one transaction.

        Returns the comparison ids and, per pair, the ids of its two segments.
        """
        now = time.time()
        ids: list[int] = []
        seg_pairs: list[tuple[int, int]] = []
        new_segments: dict[int, Segment] = {}
        with self._tx() as c:
            saved: dict[int, int] = {}
            for (a, b), split in zip(pairs, splits, strict=True):
                seg_ids = []
                for seg in (a, b):
                    if seg.id is not None:
                        seg_ids.append(seg.id)
                        continue
                    key = id(seg)
                    if key not in saved:
                        cur = c.execute(
                            "INSERT INTO segments (policy_step, episode, env_step, env_index, length, true_return,"
                            " data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (seg.policy_step, seg.episode, seg.env_step, seg.env_index, seg.length,
                             seg.true_return, _pack(seg), now),
                        )
                        saved[key] = int(cur.lastrowid)  # type: ignore[arg-type]
                        new_segments[saved[key]] = seg
                    seg_ids.append(saved[key])
                cur = c.execute(
                    "INSERT INTO comparisons (first_id, second_id, round, policy_step, split, status, asked_at)"
                    " VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                    (seg_ids[0], seg_ids[1], round_idx, policy_step, split, now),
                )
                ids.append(int(cur.lastrowid))  # type: ignore[arg-type]
                seg_pairs.append((seg_ids[0], seg_ids[1]))
        # cached only once committed: a rolled-back id may be reused by another writer
        for sid, seg in new_segments.items():
            self._cache(seg.with_id(sid))
        return ids, seg_pairs

    def answer(
        self, comparison_id: int, label: float, labeler: str, response_s: float | None = None,
        swapped: bool | None = None, shown_at: float | None = None, session: str | None = None,
    ) -> None:
        """Record one answer durably: a label in {0, 0.5, 1}, or NaN for "can't tell" (the pair is dropped).

        With ``session`` (a labelling window's lease token) the answer is refused with ``LeaseError`` when another
        session holds a live lease on the pair.
        """
        if not (math.isnan(label) or label in (0.0, 0.5, 1.0)):
            raise ValueError(f"label must be 0, 0.5, 1 or NaN (incomparable), got {label}")
        incomparable = math.isnan(label)
        now = time.time()
        with self._tx() as c:
            cur = c.execute(
                "UPDATE comparisons SET status=?, label=?, labeler=?, answered_at=?, response_s=?, swapped=?,"
                " shown_at=?, leased_by=NULL, lease_expires=NULL WHERE id=? AND status='pending'"
                " AND (? IS NULL OR leased_by IS NULL OR leased_by=? OR lease_expires < ?)",
                ("incomparable" if incomparable else "answered", None if incomparable else float(label),
                 labeler, now, response_s, None if swapped is None else int(swapped), shown_at, comparison_id,
                 session, session, now),
            )
            if cur.rowcount != 1:
                raise LeaseError(f"comparison {comparison_id} is not pending or is held by another labeler")
            c.execute(
                "INSERT INTO events (comparison_id, kind, label, labeler, at) VALUES (?, 'answer', ?, ?, ?)",
                (comparison_id, None if incomparable else float(label), labeler, now),
            )

    def lease_next(self, session: str, lease_s: float, exclude: Sequence[int] = ()) -> Comparison | None:
        """Lease the oldest pending comparison that no live lease holds (and not in ``exclude``) to ``session``."""
        now = time.time()
        skip = ",".join(str(int(i)) for i in exclude) or "-1"
        with self._tx() as c:
            row = c.execute(
                f"SELECT {_COMPARISON_COLUMNS} FROM comparisons WHERE status='pending' AND id NOT IN ({skip})"
                " AND (leased_by IS NULL OR lease_expires < ?) ORDER BY id LIMIT 1", (now,)).fetchone()
            if row is None:
                return None
            c.execute("UPDATE comparisons SET leased_by=?, lease_expires=? WHERE id=?",
                      (session, now + lease_s, row[0]))
        return Comparison(*row)

    def renew_leases(self, comparison_ids: Sequence[int], session: str, lease_s: float) -> list[int]:
        """Extend this session's leases; returns the ids it still holds (a lapsed one may have gone to another)."""
        now = time.time()
        held = []
        with self._tx() as c:
            for cid in comparison_ids:
                cur = c.execute(
                    "UPDATE comparisons SET leased_by=?, lease_expires=? WHERE id=? AND status='pending'"
                    " AND (leased_by=? OR leased_by IS NULL OR lease_expires < ?)",
                    (session, now + lease_s, int(cid), session, now))
                if cur.rowcount == 1:
                    held.append(int(cid))
        return held

    def release(self, comparison_ids: Sequence[int], session: str) -> None:
        """Give this session's leases back (a window closing): the pairs return to the queue at once."""
        with self._tx() as c:
            for cid in comparison_ids:
                c.execute("UPDATE comparisons SET leased_by=NULL, lease_expires=NULL WHERE id=? AND leased_by=?",
                          (int(cid), session))

    def undo(self, comparison_id: int, labeler: str, session: str, lease_s: float) -> None:
        """Take back an answer: the comparison is pending again (leased to ``session``) and an 'undo' event says so.

        The original answer stays in the events table; only answers given by ``labeler`` can be undone.
        """
        now = time.time()
        with self._tx() as c:
            cur = c.execute(
                "UPDATE comparisons SET status='pending', label=NULL, answered_at=NULL, response_s=NULL, swapped=NULL,"
                " shown_at=NULL, leased_by=?, lease_expires=? WHERE id=? AND status!='pending' AND labeler=?",
                (session, now + lease_s, comparison_id, labeler))
            if cur.rowcount != 1:
                raise LeaseError(f"comparison {comparison_id} has no answer by {labeler} to undo")
            c.execute("UPDATE comparisons SET labeler=NULL WHERE id=?", (comparison_id,))
            c.execute("INSERT INTO events (comparison_id, kind, label, labeler, at) VALUES (?, 'undo', NULL, ?, ?)",
                      (comparison_id, labeler, now))

    def answer_many(self, comparison_ids: Sequence[int], labels: np.ndarray, labeler: str) -> None:
        for cid, label in zip(comparison_ids, labels, strict=True):
            self.answer(int(cid), float(label), labeler)

    # -- reading -------------------------------------------------------------------------------------------

    def counts(self) -> StoreCounts:
        rows = dict(self._conn.execute("SELECT status, COUNT(*) FROM comparisons GROUP BY status").fetchall())
        n_labels, n_pending, n_inc = rows.get("answered", 0), rows.get("pending", 0), rows.get("incomparable", 0)
        (n_leased,) = self._conn.execute("SELECT COUNT(*) FROM comparisons WHERE status='pending'"
                                         " AND leased_by IS NOT NULL AND lease_expires >= ?", (time.time(),)).fetchone()
        return StoreCounts(n_labels, n_pending, n_inc, n_labels + n_pending + n_inc, n_leased)

    def comparisons(self, status: str | None = None) -> list[Comparison]:
        sql = f"SELECT {_COMPARISON_COLUMNS} FROM comparisons"
        rows = self._conn.execute(sql + (" WHERE status=?" if status else "") + " ORDER BY id",
                                  (status,) if status else ()).fetchall()
        return [Comparison(*r) for r in rows]

    def asked_pairs(self) -> set[tuple[int, int]]:
        """(first_id, second_id) of every comparison ever asked."""
        return set(self._conn.execute("SELECT first_id, second_id FROM comparisons").fetchall())

    def segment(self, segment_id: int) -> Segment:
        if segment_id in self._segment_cache:
            self._segment_cache.move_to_end(segment_id)
            return self._segment_cache[segment_id]
        row = self._conn.execute(
            "SELECT policy_step, episode, env_step, env_index, data FROM segments WHERE id=?", (segment_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no segment {segment_id} in {self.path}")
        with np.load(io.BytesIO(row[4])) as z:
            seg = Segment(obs=z["obs"], acts=z["acts"], true_rews=z["true_rews"], policy_step=row[0],
                          episode=row[1], env_step=row[2], env_index=row[3],
                          states=z["states"] if "states" in z.files else None, id=segment_id)
        self._cache(seg)
        return seg

    def _cache(self, seg: Segment) -> None:
        """Keep ``seg`` in memory, dropping the least recently used segments beyond ``SEGMENT_CACHE_BYTES`` (an
        Atari segment is 706 KB: an unbounded cache grew with every query asked)."""
        assert seg.id is not None
        old = self._segment_cache.pop(seg.id, None)
        self._cache_bytes += _nbytes(seg) - (_nbytes(old) if old is not None else 0)
        self._segment_cache[seg.id] = seg
        while self._cache_bytes > SEGMENT_CACHE_BYTES and len(self._segment_cache) > 1:
            _, dropped = self._segment_cache.popitem(last=False)
            self._cache_bytes -= _nbytes(dropped)

    def answered(self, max_labels: int | None = None) -> list[Comparison]:
        """Answered comparisons, the most recent ``max_labels`` if given (a FIFO cap)."""
        comps = self.comparisons("answered")
        return comps[-max_labels:] if max_labels is not None else comps

    def labelled(self, max_labels: int | None = None) -> tuple[list[Comparison], list[tuple[Segment, Segment]]]:
        """Answered comparisons (the most recent ``max_labels`` if given: a FIFO cap) with their segments."""
        comps = self.answered(max_labels)
        return comps, [(self.segment(c.first_id), self.segment(c.second_id)) for c in comps]


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, *_) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
