"""The pygame clip-comparison app (an extra: ``pip install "pbrl[ui]"``).

``pbrl label --run-dir DIR`` opens it against a run's store. ``session`` (leases, rendering ahead, answers, undo: the
labelling core that ``pbrl serve``'s page uses too), ``progress`` (what a labeler is told about the run), ``render``
(clips from saved simulator states) and ``layout`` do not need pygame; ``app`` does.
"""

from __future__ import annotations


def require_pygame():
    """Import pygame quietly, or raise ``pbrl.extras.MissingExtra`` with the install line."""
    import os

    from pbrl.extras import require

    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    return require("pygame", "ui", "the labelling window")
