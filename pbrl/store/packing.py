"""Segments as the store keeps them: checked for NaN and infinity, packed as compressed npz, read back.

``SEGMENT_CACHE_BYTES`` bounds the recently used segments a store keeps in memory (``nbytes`` sizes one).
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pbrl.finite import can_be_nonfinite, describe_nonfinite
from pbrl.segments import Segment
from pbrl.store.sqlite import StoreError

SEGMENT_CACHE_BYTES = 64 * 2**20  # recently used segments kept in memory; the rest are read back from the database


def nonfinite(seg: Segment) -> str | None:
    """What in ``seg`` is NaN or infinite, or None when all of it is finite (integer frames always are)."""
    with np.errstate(over="ignore"):  # a float32 sum that overflows is reported below, not warned about
        true_return = seg.true_return
    if not math.isfinite(true_return):
        return f"true_return is {true_return}"
    for name, x in (("true_rews", seg.true_rews), ("obs", seg.obs), ("acts", seg.acts), ("states", seg.states)):
        if x is not None and can_be_nonfinite(x.dtype) and not np.isfinite(x).all():
            return describe_nonfinite(name, x)
    return None


def check_finite(pairs: Sequence[tuple[Segment, Segment]]) -> None:
    """Refuse a new segment with a NaN or an infinity in it, naming it. The loop checks what it records; this is the
    last line of defence (SQLite would turn a NaN return into NULL and refuse it with a bare IntegrityError)."""
    for i, pair in enumerate(pairs):
        for which, seg in zip(("first", "second"), pair, strict=True):
            bad = nonfinite(seg) if seg.id is None else None  # one with an id is stored already
            if bad is not None:
                raise ValueError(f"refusing to store the {which} segment of pair {i} (env {seg.env_index}, episode "
                                 f"{seg.episode}, step {seg.env_step}, policy_step {seg.policy_step}): its {bad}; "
                                 "nothing was stored")


def pack(seg: Segment) -> bytes:
    buf = io.BytesIO()
    arrays = {"obs": seg.obs, "acts": seg.acts, "true_rews": seg.true_rews}
    if seg.states is not None:
        arrays["states"] = seg.states
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def unpack(data: bytes, segment_id: int, meta: tuple[int, int, int, int], path: Path) -> Segment:
    """The segment stored as ``data`` with ``meta`` = (policy_step, episode, env_step, env_index); a damaged blob
    raises ``StoreError`` naming the segment and the store at ``path``."""
    try:
        with np.load(io.BytesIO(data)) as z:
            return Segment(obs=z["obs"], acts=z["acts"], true_rews=z["true_rews"], policy_step=meta[0],
                           episode=meta[1], env_step=meta[2], env_index=meta[3],
                           states=z["states"] if "states" in z.files else None, id=segment_id)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, ValueError) as exc:
        raise StoreError(f"segment {segment_id} in {path} is damaged ({type(exc).__name__}: {exc}): "
                         "restore the store from a backup") from exc


def nbytes(seg: Segment) -> int:
    states = seg.states.nbytes if seg.states is not None else 0
    return seg.obs.nbytes + seg.acts.nbytes + seg.true_rews.nbytes + states
