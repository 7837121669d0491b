"""The answering half of ``PreferenceStore``: leases (which labelling session holds which pending pair), answers
and undo, each one write transaction, so that any number of front ends and the trainer can share one store. A
request key (a web page's, for its request) makes a retried answer or undo store nothing the second time."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from pbrl.store.records import COMPARISON_COLUMNS, Comparison
from pbrl.store.sqlite import LeaseError


def _check_label(label: float) -> None:
    if not (math.isnan(label) or label in (0.0, 0.5, 1.0)):
        raise ValueError(f"label must be 0, 0.5, 1 or NaN (incomparable), got {label}")


class Answering:
    """Leasing, answering and undo over the connection of the ``PreferenceStore`` it is part of (its ``_tx`` write
    transactions and ``_rows`` reads)."""

    readonly: bool
    _tx: Callable[[], AbstractContextManager[Any]]  # one write transaction
    _rows: Callable[..., list[Any]]  # every row of a read

    def answer(
        self, comparison_id: int, label: float, labeler: str, response_s: float | None = None,
        swapped: bool | None = None, shown_at: float | None = None, session: str | None = None,
        request_key: str | None = None,
    ) -> bool:
        """Record one answer durably: a label in {0, 0.5, 1}, or NaN for "can't tell" (the pair is dropped).

        With ``session`` (a labelling window's lease token) the answer is refused with ``LeaseError`` when another
        session holds a live lease on the pair. With ``request_key`` (a page's key for its request) a request that
        was stored before stores nothing and returns False; the same key for another answer is a ``LeaseError``.
        Returns True when the answer was stored.
        """
        _check_label(label)
        with self._tx() as c:
            if self._repeated(c, request_key, comparison_id, labeler, "answer"):
                return False
            self._answer(c, comparison_id, label, labeler, response_s, swapped, shown_at, session, request_key)
        return True

    @staticmethod
    def _answer(c: Any, comparison_id: int, label: float, labeler: str, response_s: float | None = None,
                swapped: bool | None = None, shown_at: float | None = None, session: str | None = None,
                request_key: str | None = None) -> None:
        """``answer``'s writes, inside the caller's transaction ``c``."""
        incomparable = math.isnan(label)
        now = time.time()
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
            "INSERT INTO events (comparison_id, kind, label, labeler, at, shown_at, response_s, request_key)"
            " VALUES (?, 'answer', ?, ?, ?, ?, ?, ?)",
            (comparison_id, None if incomparable else float(label), labeler, now, shown_at, response_s,
             request_key),
        )

    def lease_next(self, session: str, lease_s: float, exclude: Sequence[int] = ()) -> Comparison | None:
        """Lease the oldest pending comparison that no live lease holds (and not in ``exclude``) to ``session``."""
        now = time.time()
        skip = ",".join(str(int(i)) for i in exclude) or "-1"
        free = (f"FROM comparisons WHERE status='pending' AND id NOT IN ({skip})"
                " AND (leased_by IS NULL OR lease_expires < ?) ORDER BY id LIMIT 1")
        if not self.readonly and not self._rows(f"SELECT id {free}", (now,)):
            return None  # a read first: sessions polling an empty queue take no write lock from those answering
        with self._tx() as c:
            row = c.execute(f"SELECT {COMPARISON_COLUMNS} {free}", (now,)).fetchone()
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

    def undo(self, comparison_id: int, labeler: str, session: str, lease_s: float,
             request_key: str | None = None) -> bool:
        """Take back an answer: the comparison is pending again (leased to ``session``) and an 'undo' event says so.

        The original answer stays in the events table; only answers given by ``labeler`` can be undone. With
        ``request_key`` a request that was done before does nothing and returns False (as ``answer``).
        """
        now = time.time()
        with self._tx() as c:
            if self._repeated(c, request_key, comparison_id, labeler, "undo"):
                return False
            cur = c.execute(
                "UPDATE comparisons SET status='pending', label=NULL, answered_at=NULL, response_s=NULL, swapped=NULL,"
                " shown_at=NULL, leased_by=?, lease_expires=? WHERE id=? AND status!='pending' AND labeler=?",
                (session, now + lease_s, comparison_id, labeler))
            if cur.rowcount != 1:
                raise LeaseError(f"comparison {comparison_id} has no answer by {labeler} to undo")
            c.execute("UPDATE comparisons SET labeler=NULL WHERE id=?", (comparison_id,))
            c.execute("INSERT INTO events (comparison_id, kind, label, labeler, at, request_key)"
                      " VALUES (?, 'undo', NULL, ?, ?, ?)", (comparison_id, labeler, now, request_key))
        return True

    @staticmethod
    def _repeated(c: Any, request_key: str | None, comparison_id: int, labeler: str, kind: str) -> bool:
        """True if ``request_key`` was done before as this very request; the key used for another is a
        ``LeaseError``."""
        if request_key is None:
            return False
        done = c.execute("SELECT comparison_id, labeler, kind FROM events WHERE request_key=?",
                         (request_key,)).fetchone()
        if done is None:
            return False
        if tuple(done) != (comparison_id, labeler, kind):
            raise LeaseError(f"request key {request_key!r} was used for another request")
        return True

    def answer_many(self, comparison_ids: Sequence[int], labels: np.ndarray, labeler: str) -> None:
        """Answers of a scripted labeler, all in one transaction (one sync to disk, not one per label): all of them
        are stored or, after a crash, none (the pairs are still pending and are labelled again)."""
        for label in labels:
            _check_label(float(label))
        with self._tx() as c:
            for cid, label in zip(comparison_ids, labels, strict=True):
                self._answer(c, int(cid), float(label), labeler)
