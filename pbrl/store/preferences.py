"""``PreferenceStore``: a run's comparisons, labels and segments in one SQLite file, written in transactions.

Leasing, answering and undo are single transactions here, so that any number of labelling front ends (pygame
windows, ``pbrl serve``'s page) and the trainer can share one store: a pair leased to one session is offered to no
other until the lease lapses or is given back, and an answer is on disk when ``answer`` returns. One store object
may be used from several threads (a web server's): it serialises its own use of its connection.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pbrl.segments import Segment
from pbrl.store import packing
from pbrl.store.answers import Answering
from pbrl.store.records import COMPARISON_COLUMNS, Comparison, StoreCounts
from pbrl.store.schema import open_readonly, open_writable
from pbrl.store.sqlite import StoreError, store_errors, transaction, writer_lock


class PreferenceStore(Answering):
    """SQLite-backed comparisons and segments of one run.

    ``readonly=True`` opens an existing store without writing anything to it (nor creating, nor migrating it), for
    readers such as ``pbrl status``; its write methods raise ``StoreError``. Opening reads the schema and the counts,
    so a missing, truncated or damaged file, or one from a newer pbrl, fails here with ``StoreError``.
    """

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()  # one transaction or read at a time on this store's connection
        self._writer = writer_lock(self.path)
        self._segment_cache: collections.OrderedDict[int, Segment] = collections.OrderedDict()  # least recent first
        self._cache_bytes = 0
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory, not a store: give the store's file "
                             "(a run keeps it in RUN_DIR/preferences.sqlite)")
        if readonly and not self.path.exists():
            raise StoreError(f"no preference store at {self.path}: check the path "
                             "(a run keeps it in RUN_DIR/preferences.sqlite)")
        with store_errors(self.path, writing=not readonly):
            self._conn = open_readonly(self.path) if readonly else open_writable(self.path)
            try:
                # touch the data, not only the schema, so that a truncated or damaged file fails at open; a full
                # check reads every page of what can be hundreds of MB (check_integrity does that, when asked)
                self.counts()
                self._rows("SELECT MAX(id) FROM segments")
            except BaseException:
                self._conn.close()
                raise

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        """One write transaction, alone on this store's connection (also used by ``pbrl.store.invitations``)."""
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only: open it with readonly=False to write to it")
        with self._lock, self._writer, transaction(self._conn, self.path) as conn:
            yield conn

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of a read; an SQLite error there (a damaged store) comes out as ``StoreError``."""
        with self._lock, store_errors(self.path, writing=False):
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PreferenceStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_integrity(self) -> list[str]:
        """SQLite's ``PRAGMA integrity_check``: ``["ok"]`` for a sound store, else one line per problem found.

        It reads every page, so it takes a while on a big store; opening a store reads only a few.
        """
        return [line for (line,) in self._rows("PRAGMA integrity_check")]

    # -- asking --------------------------------------------------------------------------------------------

    def add_queries(
        self, pairs: Sequence[tuple[Segment, Segment]], splits: Sequence[str], round_idx: int, policy_step: int
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Store the segments (those without an id yet) and a pending comparison per pair, in one transaction.

        Returns the comparison ids and, per pair, the ids of its two segments. A new segment with a NaN or an
        infinity in it is refused with ``ValueError`` (nothing is stored).
        """
        packing.check_finite(pairs)
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
                             seg.true_return, packing.pack(seg), now),
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

    # -- reading -------------------------------------------------------------------------------------------

    def counts(self) -> StoreCounts:
        rows = dict(self._rows("SELECT status, COUNT(*) FROM comparisons GROUP BY status"))
        n_labels, n_pending, n_inc = rows.get("answered", 0), rows.get("pending", 0), rows.get("incomparable", 0)
        [(n_leased,)] = self._rows("SELECT COUNT(*) FROM comparisons WHERE status='pending'"
                                   " AND leased_by IS NOT NULL AND lease_expires >= ?", (time.time(),))
        return StoreCounts(n_labels, n_pending, n_inc, n_labels + n_pending + n_inc, n_leased)

    def comparisons(self, status: str | None = None) -> list[Comparison]:
        sql = f"SELECT {COMPARISON_COLUMNS} FROM comparisons"
        rows = self._rows(sql + (" WHERE status=?" if status else "") + " ORDER BY id", (status,) if status else ())
        return [Comparison(*r) for r in rows]

    def comparison(self, comparison_id: int) -> Comparison | None:
        rows = self._rows(f"SELECT {COMPARISON_COLUMNS} FROM comparisons WHERE id=?", (int(comparison_id),))
        return Comparison(*rows[0]) if rows else None

    def event_of_request(self, request_key: str) -> tuple[int, str, str] | None:
        """(comparison id, labeler, 'answer' or 'undo') of what a page's request ``request_key`` did, or None."""
        rows = self._rows("SELECT comparison_id, labeler, kind FROM events WHERE request_key=?", (request_key,))
        return (int(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None

    def pending_segment_ids(self, limit: int = 200) -> list[int]:
        """The segments of the ``limit`` oldest pending comparisons, in the order they will be offered."""
        rows = self._rows("SELECT first_id, second_id FROM comparisons WHERE status='pending' ORDER BY id LIMIT ?",
                          (int(limit),))
        return list(dict.fromkeys(sid for pair in rows for sid in pair))

    def asked_pairs(self) -> set[tuple[int, int]]:
        """(first_id, second_id) of every comparison ever asked."""
        return set(self._rows("SELECT first_id, second_id FROM comparisons"))

    def segment(self, segment_id: int) -> Segment:
        with self._lock:
            if segment_id in self._segment_cache:
                self._segment_cache.move_to_end(segment_id)
                return self._segment_cache[segment_id]
        rows = self._rows("SELECT policy_step, episode, env_step, env_index, data FROM segments WHERE id=?",
                          (segment_id,))
        if not rows:
            raise KeyError(f"no segment {segment_id} in {self.path}")
        row = rows[0]
        seg = packing.unpack(row[4], segment_id, row[:4], self.path)
        self._cache(seg)
        return seg

    def _cache(self, seg: Segment) -> None:
        """Keep ``seg`` in memory, dropping the least recently used segments beyond ``SEGMENT_CACHE_BYTES`` (an
        Atari segment is 706 KB: an unbounded cache grew with every query asked)."""
        assert seg.id is not None
        with self._lock:
            old = self._segment_cache.pop(seg.id, None)
            self._cache_bytes += packing.nbytes(seg) - (packing.nbytes(old) if old is not None else 0)
            self._segment_cache[seg.id] = seg
            while self._cache_bytes > packing.SEGMENT_CACHE_BYTES and len(self._segment_cache) > 1:
                _, dropped = self._segment_cache.popitem(last=False)
                self._cache_bytes -= packing.nbytes(dropped)

    def answered(self, max_labels: int | None = None) -> list[Comparison]:
        """Answered comparisons, the most recent ``max_labels`` if given (a FIFO cap)."""
        comps = self.comparisons("answered")
        return comps[-max_labels:] if max_labels is not None else comps

    def labelled(self, max_labels: int | None = None) -> tuple[list[Comparison], list[tuple[Segment, Segment]]]:
        """Answered comparisons (the most recent ``max_labels`` if given: a FIFO cap) with their segments."""
        comps = self.answered(max_labels)
        return comps, [(self.segment(c.first_id), self.segment(c.second_id)) for c in comps]
