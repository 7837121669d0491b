"""The preference store: the only owner of labels, on SQLite, written in transactions.

It holds every comparison pbrl asks for (the two segment ids, where each came from, the label, the labeler, when it
was asked and answered) and the segments those comparisons refer to (compressed arrays in the same database, so a
comparison never points at a missing segment). The training loop and any number of labelling windows meet here and
nowhere else; WAL mode lets them read while one writes, and a label is on disk when ``answer`` returns. Readers
that must not write (``pbrl status``, ``pbrl eval``) open it with ``readonly=True``. A store that cannot be used
(missing, damaged, written by a newer pbrl, not writable) raises ``StoreError``: one line naming the file and the fix.
"""

from __future__ import annotations

import collections
import contextlib
import io
import math
import os
import sqlite3
import time
import urllib.parse
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.errors import UserError
from pbrl.faults import kill_point
from pbrl.finite import can_be_nonfinite, describe_nonfinite
from pbrl.segments import Segment

SCHEMA_VERSION = 2  # 2: comparisons.shown_at
SEGMENT_CACHE_BYTES = 64 * 2**20  # recently used segments kept in memory; the rest are read back from the database
BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's transaction before giving up

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


class StoreError(UserError):
    """A store that cannot be used as asked: missing, damaged, from a newer pbrl, or not writable by this user.

    The message is one line that names the file and says what to do.
    """


class StoreVersionError(StoreError, RuntimeError):
    """The store has a newer schema than this pbrl reads. Also a ``RuntimeError``, which this case raised before
    ``StoreError`` existed, so code that caught that keeps working."""


_COMPARISON_COLUMNS = "id, first_id, second_id, round, policy_step, split, status, label, labeler"
_STORE_TABLES = {"meta", "segments", "comparisons", "events"}

# SQLite's primary result codes (``exc.sqlite_errorcode & 0xFF``) that say the store itself cannot be used. Python
# 3.10 has no ``sqlite_errorcode``; there the code is found from SQLite's fixed message for it.
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 3, 5, 6, 8, 10, 11, 13, 14, 26
_CODE_OF_MESSAGE = {
    "access permission denied": _PERM, "database is locked": _BUSY, "database table is locked": _LOCKED,
    "attempt to write a readonly database": _READONLY, "disk I/O error": _IOERR,
    "database disk image is malformed": _CORRUPT, "database or disk is full": _FULL,
    "unable to open database file": _CANTOPEN, "file is not a database": _NOTADB,
}


def _sqlite_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if code is not None else _CODE_OF_MESSAGE.get(str(exc))


def _store_error(path: Path, exc: sqlite3.Error, writing: bool) -> StoreError | None:
    """The one-line ``StoreError`` for an SQLite error that means the store at ``path`` cannot be used, or None
    for an error of the call itself (a broken constraint, a closed store), which stays as it is."""
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
        return None
    code, verb = _sqlite_code(exc), "write" if writing else "read"
    if code in (_CORRUPT, _NOTADB):
        return StoreError(f"{path} is damaged or is not a pbrl store ({exc}): restore it from a backup, or move it "
                          "aside to start a new store")
    if code in (_READONLY, _PERM, _CANTOPEN) and writing:
        if not path.parent.is_dir():
            return StoreError(f"cannot create {path}: its directory {path.parent} does not exist")
        return StoreError(f"cannot write {path}: the store or its directory is not writable by this user ({exc}); "
                          "run as the run's owner or fix the permissions (`pbrl status` and `pbrl eval` only read it)")
    if code == _READONLY:  # a WAL reader must write its -shm beside the file
        return StoreError(f"cannot read {path} ({exc}): reading a store that a run may have open needs its directory "
                          "to be writable by this user; read it as the run's owner, or read a copy of the run")
    if code in (_PERM, _CANTOPEN):
        return StoreError(f"cannot read {path} ({exc}): check that this user can read the file and its directory")
    if code == _FULL:
        return StoreError(f"cannot write {path}: the disk is full ({exc}); free some space and retry")
    if code in (_BUSY, _LOCKED):
        return StoreError(f"{path} stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s ({exc}); retry "
                          "when it is done")
    return StoreError(f"cannot {verb} {path} ({exc}): check the disk it is on; the file may be damaged or from "
                      "another version of pbrl")


@contextlib.contextmanager
def _store_errors(path: Path, writing: bool) -> Iterator[None]:
    """Raise the one-line ``StoreError`` for an SQLite error that means the store cannot be used; others pass."""
    try:
        yield
    except sqlite3.Error as exc:
        err = _store_error(path, exc, writing)
        if err is None:
            raise
        raise err from exc


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection; an SQLite error
    that means the store cannot be written (permissions, damage, a full disk) comes out as ``StoreError``."""
    with _store_errors(path, writing=True):
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            kill_point("store-commit")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # after some errors (a full disk) SQLite has rolled back already
                conn.execute("ROLLBACK")
            raise


def _uri(path: Path, **params: str) -> str:
    """The SQLite URI of ``path`` with ``params``, quoted: a space, '?' or '#' in the path is part of its name."""
    return f"file:{urllib.parse.quote(path.absolute().as_posix(), safe='/')}?{urllib.parse.urlencode(params)}"


def _schema_statements() -> list[str]:
    """``_SCHEMA`` one statement at a time, to run inside a transaction (``executescript`` would commit it)."""
    statements, pending = [], ""
    for line in _SCHEMA.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):  # knows a ';' in a comment from one that ends a statement
            statements.append(pending.strip())
            pending = ""
    return statements


def _nonfinite(seg: Segment) -> str | None:
    """What in ``seg`` is NaN or infinite, or None when all of it is finite (integer frames always are)."""
    with np.errstate(over="ignore"):  # a float32 sum that overflows is reported below, not warned about
        true_return = seg.true_return
    if not math.isfinite(true_return):
        return f"true_return is {true_return}"
    for name, x in (("true_rews", seg.true_rews), ("obs", seg.obs), ("acts", seg.acts), ("states", seg.states)):
        if x is not None and can_be_nonfinite(x.dtype) and not np.isfinite(x).all():
            return describe_nonfinite(name, x)
    return None


def _check_finite(pairs: Sequence[tuple[Segment, Segment]]) -> None:
    """Refuse a new segment with a NaN or an infinity in it, naming it. The loop checks what it records; this is the
    last line of defence (SQLite would turn a NaN return into NULL and refuse it with a bare IntegrityError)."""
    for i, pair in enumerate(pairs):
        for which, seg in zip(("first", "second"), pair, strict=True):
            bad = _nonfinite(seg) if seg.id is None else None  # one with an id is stored already
            if bad is not None:
                raise ValueError(f"refusing to store the {which} segment of pair {i} (env {seg.env_index}, episode "
                                 f"{seg.episode}, step {seg.env_step}, policy_step {seg.policy_step}): its {bad}; "
                                 "nothing was stored")


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
    """SQLite-backed comparisons and segments of one run.

    ``readonly=True`` opens an existing store without writing anything to it (nor creating, nor migrating it), for
    readers such as ``pbrl status``; its write methods raise ``StoreError``. Opening reads the schema and the counts,
    so a missing, truncated or damaged file, or one from a newer pbrl, fails here with ``StoreError``.
    """

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._segment_cache: collections.OrderedDict[int, Segment] = collections.OrderedDict()  # least recent first
        self._cache_bytes = 0
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory, not a store: give the store's file "
                             "(a run keeps it in RUN_DIR/preferences.sqlite)")
        if readonly and not self.path.exists():
            raise StoreError(f"no preference store at {self.path}: check the path "
                             "(a run keeps it in RUN_DIR/preferences.sqlite)")
        with _store_errors(self.path, writing=not readonly):
            self._conn = self._open_readonly() if readonly else self._open_writable()
            try:
                # touch the data, not only the schema, so that a truncated or damaged file fails at open; a full
                # check reads every page of what can be hundreds of MB (check_integrity does that, when asked)
                self.counts()
                self._rows("SELECT MAX(id) FROM segments")
            except BaseException:
                self._conn.close()
                raise

    def _open_readonly(self) -> sqlite3.Connection:
        try:
            return self._connect_readonly(_uri(self.path, mode="ro"))
        except sqlite3.OperationalError as exc:
            # A WAL store in a directory this user cannot write, with no -wal file: SQLite cannot make the -wal and
            # -shm files it reads through. Without a -wal every committed page is in the file and no writer has it
            # open (a writer keeps its -wal until it closes), so the file is read as it stands; only in this case,
            # since an immutable reader would not see a writer's changes.
            if (_sqlite_code(exc) not in (_CANTOPEN, _READONLY) or os.access(self.path.parent, os.W_OK)
                    or Path(f"{self.path}-wal").exists()):
                raise
        return self._connect_readonly(_uri(self.path, mode="ro", immutable="1"))

    def _connect_readonly(self, uri: str) -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            version = self._schema_version(conn)
            if version is None:
                raise StoreError(f"{self.path} holds no pbrl store (no schema version in it): check the path")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_writable(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            self._schema_version(conn)  # before writing anything: a store from a newer pbrl is left as it is
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("BEGIN IMMEDIATE")
            version = self._schema_version(conn)  # again, under the write lock: another process may have made it
            if version is None:
                for statement in _schema_statements():
                    conn.execute(statement)
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif version == 1:  # schema 1 lacked shown_at; everything else is the same
                conn.execute("ALTER TABLE comparisons ADD COLUMN shown_at REAL")
                conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
            else:
                # A write that changes nothing, rolled back below: in WAL mode SQLite finds a read-only file only
                # when a statement writes, and a store this user cannot write should fail at open, not at its first
                # label.
                conn.execute("UPDATE meta SET value=value WHERE key='schema_version'")
            conn.execute("ROLLBACK" if version == SCHEMA_VERSION else "COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            raise
        return conn

    def _schema_version(self, conn: sqlite3.Connection) -> int | None:
        """The store's schema version; None for a file with no store in it yet (new, or empty)."""
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            others = sorted(t for t in tables - _STORE_TABLES if not t.startswith("sqlite_"))
            if others:
                raise StoreError(f"{self.path} is an SQLite database with other tables ({', '.join(others[:5])}), "
                                 "not a pbrl store: check the path")
            return None
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            return None
        if not str(row[0]).isdigit() or int(row[0]) < 1:
            raise StoreError(f"{self.path} has an unknown store schema {row[0]!r}: it is damaged or not a pbrl store")
        if int(row[0]) > SCHEMA_VERSION:
            raise StoreVersionError(f"{self.path} has store schema {row[0]}, from a newer pbrl; this one reads "
                                    f"schema {SCHEMA_VERSION} and older: upgrade pbrl")
        return int(row[0])

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only: open it with readonly=False to write to it")
        return _transaction(self._conn, self.path)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of a read; an SQLite error there (a damaged store) comes out as ``StoreError``."""
        with _store_errors(self.path, writing=False):
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
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

    # -- writing -------------------------------------------------------------------------------------------

    def add_queries(
        self, pairs: Sequence[tuple[Segment, Segment]], splits: Sequence[str], round_idx: int, policy_step: int
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Store the segments (those without an id yet) and a pending comparison per pair, in one transaction.

        Returns the comparison ids and, per pair, the ids of its two segments. A new segment with a NaN or an
        infinity in it is refused with ``ValueError`` (nothing is stored).
        """
        _check_finite(pairs)
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
        rows = dict(self._rows("SELECT status, COUNT(*) FROM comparisons GROUP BY status"))
        n_labels, n_pending, n_inc = rows.get("answered", 0), rows.get("pending", 0), rows.get("incomparable", 0)
        [(n_leased,)] = self._rows("SELECT COUNT(*) FROM comparisons WHERE status='pending'"
                                   " AND leased_by IS NOT NULL AND lease_expires >= ?", (time.time(),))
        return StoreCounts(n_labels, n_pending, n_inc, n_labels + n_pending + n_inc, n_leased)

    def comparisons(self, status: str | None = None) -> list[Comparison]:
        sql = f"SELECT {_COMPARISON_COLUMNS} FROM comparisons"
        rows = self._rows(sql + (" WHERE status=?" if status else "") + " ORDER BY id", (status,) if status else ())
        return [Comparison(*r) for r in rows]

    def asked_pairs(self) -> set[tuple[int, int]]:
        """(first_id, second_id) of every comparison ever asked."""
        return set(self._rows("SELECT first_id, second_id FROM comparisons"))

    def segment(self, segment_id: int) -> Segment:
        if segment_id in self._segment_cache:
            self._segment_cache.move_to_end(segment_id)
            return self._segment_cache[segment_id]
        rows = self._rows("SELECT policy_step, episode, env_step, env_index, data FROM segments WHERE id=?",
                          (segment_id,))
        if not rows:
            raise KeyError(f"no segment {segment_id} in {self.path}")
        row = rows[0]
        try:
            with np.load(io.BytesIO(row[4])) as z:
                seg = Segment(obs=z["obs"], acts=z["acts"], true_rews=z["true_rews"], policy_step=row[0],
                              episode=row[1], env_step=row[2], env_index=row[3],
                              states=z["states"] if "states" in z.files else None, id=segment_id)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, ValueError) as exc:
            raise StoreError(f"segment {segment_id} in {self.path} is damaged ({type(exc).__name__}: {exc}): "
                             "restore the store from a backup") from exc
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

