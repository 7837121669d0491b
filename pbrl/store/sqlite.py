"""SQLite underneath the preference store: its errors as one-line ``StoreError``s, and the write transaction.

Every write of the store goes through ``transaction`` (``BEGIN IMMEDIATE`` ... ``COMMIT``); an SQLite error that
means the store itself cannot be used (damaged, not writable, a full disk, locked for too long) comes out as a
``StoreError`` whose message names the file and says what to do. Errors of a call itself (a broken constraint)
pass through unchanged.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from pbrl.errors import UserError
from pbrl.faults import kill_point

BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's transaction before giving up


class LeaseError(KeyError):
    """The comparison is not (or no longer) this labelling session's to answer."""


class StoreError(UserError):
    """A store that cannot be used as asked: missing, damaged, from a newer pbrl, or not writable by this user.

    The message is one line that names the file and says what to do.
    """


class StoreVersionError(StoreError, RuntimeError):
    """The store has a newer schema than this pbrl reads. Also a ``RuntimeError``, which this case raised before
    ``StoreError`` existed, so code that caught that keeps working."""


# SQLite's primary result codes (``exc.sqlite_errorcode & 0xFF``) that say the store itself cannot be used. Python
# 3.10 has no ``sqlite_errorcode``; there the code is found from SQLite's fixed message for it.
PERM, BUSY, LOCKED, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB = 3, 5, 6, 8, 10, 11, 13, 14, 26
_CODE_OF_MESSAGE = {
    "access permission denied": PERM, "database is locked": BUSY, "database table is locked": LOCKED,
    "attempt to write a readonly database": READONLY, "disk I/O error": IOERR,
    "database disk image is malformed": CORRUPT, "database or disk is full": FULL,
    "unable to open database file": CANTOPEN, "file is not a database": NOTADB,
}


def sqlite_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if code is not None else _CODE_OF_MESSAGE.get(str(exc))


def store_error(path: Path, exc: sqlite3.Error, writing: bool) -> StoreError | None:
    """The one-line ``StoreError`` for an SQLite error that means the store at ``path`` cannot be used, or None
    for an error of the call itself (a broken constraint, a closed store), which stays as it is."""
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
        return None
    code, verb = sqlite_code(exc), "write" if writing else "read"
    if code in (CORRUPT, NOTADB):
        return StoreError(f"{path} is damaged or is not a pbrl store ({exc}): restore it from a backup, or move it "
                          "aside to start a new store")
    if code in (READONLY, PERM, CANTOPEN) and writing:
        if not path.parent.is_dir():
            return StoreError(f"cannot create {path}: its directory {path.parent} does not exist")
        return StoreError(f"cannot write {path}: the store or its directory is not writable by this user ({exc}); "
                          "run as the run's owner or fix the permissions (`pbrl status` and `pbrl eval` only read it)")
    if code == READONLY:  # a WAL reader must write its -shm beside the file
        return StoreError(f"cannot read {path} ({exc}): reading a store that a run may have open needs its directory "
                          "to be writable by this user; read it as the run's owner, or read a copy of the run")
    if code in (PERM, CANTOPEN):
        return StoreError(f"cannot read {path} ({exc}): check that this user can read the file and its directory")
    if code == FULL:
        return StoreError(f"cannot write {path}: the disk is full ({exc}); free some space and retry")
    if code in (BUSY, LOCKED):
        return StoreError(f"{path} stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s ({exc}); retry "
                          "when it is done")
    return StoreError(f"cannot {verb} {path} ({exc}): check the disk it is on; the file may be damaged or from "
                      "another version of pbrl")


@contextlib.contextmanager
def store_errors(path: Path, writing: bool) -> Iterator[None]:
    """Raise the one-line ``StoreError`` for an SQLite error that means the store cannot be used; others pass."""
    try:
        yield
    except sqlite3.Error as exc:
        err = store_error(path, exc, writing)
        if err is None:
            raise
        raise err from exc


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection; an SQLite error
    that means the store cannot be written (permissions, damage, a full disk) comes out as ``StoreError``."""
    with store_errors(path, writing=True):
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            kill_point("store-commit")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # after some errors (a full disk) SQLite has rolled back already
                conn.execute("ROLLBACK")
            raise


# One lock per store file for the writers of this process: they queue here, in order, rather than in SQLite's busy
# handler, which sleeps 1, 2, 5, 10... ms between tries (a web server's many sessions write to one store).
_WRITERS: dict[str, threading.Lock] = {}
_WRITERS_LOCK = threading.Lock()


def writer_lock(path: Path) -> threading.Lock:
    """The lock this process's writers of the store at ``path`` take around a transaction."""
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(os.path.realpath(path), threading.Lock())


def uri(path: Path, **params: str) -> str:
    """The SQLite URI of ``path`` with ``params``, quoted: a space, '?' or '#' in the path is part of its name."""
    return f"file:{urllib.parse.quote(path.absolute().as_posix(), safe='/')}?{urllib.parse.urlencode(params)}"
