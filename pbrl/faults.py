"""Deterministic crash points for the crash-safety tests and ``scripts/experiments/fault_injection.py``.

With ``PBRL_KILL_AT=POINT`` (or ``POINT:N``) in the environment, the process kills itself with SIGKILL the first (or
N-th) time it reaches ``kill_point(POINT)``: no handler, no flush, no cleanup, as a power cut or the OOM killer
would. Without the variable a kill point costs one comparison. The points:

    write:NAME      a file of a checkpoint (or config.json, the manifest checkpoint.json) is written under its
                    temporary name and not yet renamed
    checkpointed    the manifest names the new generation; the older generations are not yet pruned
    store-commit    inside a label or query transaction of the preference store, before its COMMIT
    store-migrate   inside the transaction that moves an older preference store to the current schema
    pretrain        the initial labels are in; the reward model is about to be pretrained
    created         a new run's config.json is saved; its first checkpoint is not yet written
"""

from __future__ import annotations

import os
import signal


def _target(spec: str) -> tuple[str, int] | None:
    """``POINT`` or ``POINT:N`` (points may hold a colon themselves: ``write:policy.zip:3``)."""
    point, _, nth = spec.rpartition(":")
    return (point, int(nth)) if point and nth.isdigit() else ((spec, 1) if spec else None)


_TARGET = _target(os.environ.get("PBRL_KILL_AT", ""))
_seen = 0


def kill_point(name: str) -> None:
    """SIGKILL this process here if ``PBRL_KILL_AT`` names this point (and this is its N-th arrival)."""
    global _seen
    if _TARGET is None or name != _TARGET[0]:
        return
    _seen += 1
    if _seen == _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)
