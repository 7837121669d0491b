"""The preference store's tables, and opening a store: created when new, migrated when older, refused when newer.

A store written by an older pbrl is brought to ``SCHEMA_VERSION`` the first time it is opened to write, in one
transaction: a kill at any instant (``PBRL_KILL_AT=store-migrate`` tests it) leaves it at its old version, whole,
and the next open migrates it again. Read-only readers (``pbrl status``) read any older version as it stands.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from pbrl.faults import kill_point
from pbrl.store.sqlite import (
    BUSY_TIMEOUT_S,
    CANTOPEN,
    READONLY,
    StoreError,
    StoreVersionError,
    sqlite_code,
    uri,
)

SCHEMA_VERSION = 3  # 2: comparisons.shown_at; 3: who answered how in events, invitations for pbrl serve

SCHEMA = """
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
    at REAL NOT NULL,
    shown_at REAL,                  -- an answer's: when the pair was on the person's screen
    response_s REAL,                -- an answer's: seconds from shown to answered
    request_key TEXT                -- the page's key for its request: a retried request is done once
);
CREATE UNIQUE INDEX IF NOT EXISTS events_request_key ON events(request_key) WHERE request_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS invitations (
    token_sha256 TEXT PRIMARY KEY,  -- the SHA-256 of a labeler's secret token (the token itself is never stored)
    labeler TEXT NOT NULL,          -- the name stored with every answer given with the token
    created_at REAL NOT NULL,
    revoked_at REAL                 -- set by pbrl serve --revoke NAME; the token no longer opens the page
);
"""
TABLES = {"meta", "segments", "comparisons", "events", "invitations"}

# Columns added since schema 1, by table: a migration adds the ones a store lacks.
_ADDED_COLUMNS = {"comparisons": [("shown_at", "REAL")],
                  "events": [("shown_at", "REAL"), ("response_s", "REAL"), ("request_key", "TEXT")]}


def schema_statements() -> list[str]:
    """``SCHEMA`` one statement at a time, to run inside a transaction (``executescript`` would commit it)."""
    statements, pending = [], ""
    for line in SCHEMA.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):  # knows a ';' in a comment from one that ends a statement
            statements.append(pending.strip())
            pending = ""
    return statements


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring an older store to ``SCHEMA_VERSION`` inside the caller's transaction: the columns it lacks, then the
    tables and indexes (``IF NOT EXISTS``) of the current schema."""
    for table, columns in _ADDED_COLUMNS.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns:
            if name not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    for statement in schema_statements():
        conn.execute(statement)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))


def schema_version(conn: sqlite3.Connection, path: Path) -> int | None:
    """The store's schema version; None for a file with no store in it yet (new, or empty)."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables:
        others = sorted(t for t in tables - TABLES if not t.startswith("sqlite_"))
        if others:
            raise StoreError(f"{path} is an SQLite database with other tables ({', '.join(others[:5])}), "
                             "not a pbrl store: check the path")
        return None
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        return None
    if not str(row[0]).isdigit() or int(row[0]) < 1:
        raise StoreError(f"{path} has an unknown store schema {row[0]!r}: it is damaged or not a pbrl store")
    if int(row[0]) > SCHEMA_VERSION:
        raise StoreVersionError(f"{path} has store schema {row[0]}, from a newer pbrl; this one reads "
                                f"schema {SCHEMA_VERSION} and older: upgrade pbrl")
    return int(row[0])


def open_writable(path: Path) -> sqlite3.Connection:
    """A connection that may write the store at ``path``: created if new, migrated if older.

    ``check_same_thread=False``: the store serialises its own use of the connection (a web server answers on
    several threads); SQLite itself is built thread-safe.
    """
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        schema_version(conn, path)  # before writing anything: a store from a newer pbrl is left as it is
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN IMMEDIATE")
        version = schema_version(conn, path)  # again, under the write lock: another process may have made it
        if version is None:
            for statement in schema_statements():
                conn.execute(statement)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif version < SCHEMA_VERSION:
            _migrate(conn)
            kill_point("store-migrate")
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


def open_readonly(path: Path) -> sqlite3.Connection:
    """A connection that reads the store at ``path`` as it stands (any schema up to this pbrl's) and never writes."""
    try:
        return _connect_readonly(path, uri(path, mode="ro"))
    except sqlite3.OperationalError as exc:
        # A WAL store in a directory this user cannot write, with no -wal file: SQLite cannot make the -wal and
        # -shm files it reads through. Without a -wal every committed page is in the file and no writer has it
        # open (a writer keeps its -wal until it closes), so the file is read as it stands; only in this case,
        # since an immutable reader would not see a writer's changes.
        if (sqlite_code(exc) not in (CANTOPEN, READONLY) or os.access(path.parent, os.W_OK)
                or Path(f"{path}-wal").exists()):
            raise
    return _connect_readonly(path, uri(path, mode="ro", immutable="1"))


def _connect_readonly(path: Path, address: str) -> sqlite3.Connection:
    conn = sqlite3.connect(address, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=False)
    try:
        if schema_version(conn, path) is None:
            raise StoreError(f"{path} holds no pbrl store (no schema version in it): check the path")
    except BaseException:
        conn.close()
        raise
    return conn
