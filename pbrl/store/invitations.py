"""Who may label a run through ``pbrl serve``: named labelers, each with secret tokens kept only as their hashes.

A token is 192 random bits (``secrets``), shown once in an invitation link and stored as its SHA-256: a copy of the
run directory lets nobody in. A token that is random and this long needs no slow password hash; looking up its hash
compares no secret byte by byte. ``revoke`` closes every token of a name at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

from pbrl.store.preferences import PreferenceStore

TOKEN_BYTES = 24  # 192 bits; the issue asks for at least 128
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def check_name(name: str) -> str:
    """``name`` if it can name a labeler (1-64 letters, digits, ``._@-``, starting with a letter or digit)."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"a labeler's name is 1 to 64 letters, digits or ._@- (starting with a letter or digit), "
                         f"got {name!r}")
    return name


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite(store: PreferenceStore, name: str) -> str:
    """A new token for ``name`` (earlier ones stay valid until revoked); only its hash is stored."""
    check_name(name)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with store._tx() as c:
        c.execute("INSERT INTO invitations (token_sha256, labeler, created_at) VALUES (?, ?, ?)",
                  (token_hash(token), name, time.time()))
    return token


def revoke(store: PreferenceStore, name: str) -> int:
    """Close every open token of ``name``; returns how many were open."""
    with store._tx() as c:
        cur = c.execute("UPDATE invitations SET revoked_at=? WHERE labeler=? AND revoked_at IS NULL",
                        (time.time(), name))
        return cur.rowcount


def labelers(store: PreferenceStore) -> dict[str, int]:
    """Every labeler ever invited, with the number of tokens still open (0: revoked)."""
    rows = store._rows("SELECT labeler, SUM(revoked_at IS NULL) FROM invitations GROUP BY labeler ORDER BY labeler")
    return {name: int(n) for name, n in rows}


def open_tokens(store: PreferenceStore) -> dict[str, str]:
    """token hash -> labeler, for every token not revoked."""
    return dict(store._rows("SELECT token_sha256, labeler FROM invitations WHERE revoked_at IS NULL"))
