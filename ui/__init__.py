"""The pygame clip-comparison app (an extra: ``pip install "pbrl[ui]"``).

``pbrl label --run-dir DIR`` opens it against a run's store. ``session`` (leases, rendering ahead, answers) and
``render`` (clips from saved simulator states) do not need pygame; ``app`` does.
"""

from __future__ import annotations

UI_EXTRA_HINT = 'the labelling window needs pygame: pip install "pbrl[ui]" (or pip install pygame)'


class UIUnavailable(ImportError):
    """pygame is not installed; the message names the extra to install."""


def require_pygame():
    """Import pygame quietly, or raise ``UIUnavailable`` with the install line."""
    import os

    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError:
        raise UIUnavailable(UI_EXTRA_HINT) from None
    return pygame
