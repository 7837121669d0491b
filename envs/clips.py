"""What both clip renderers share (MuJoCo's ``render.ClipRenderer`` and Atari's ``atari.AtariClipRenderer``): the sizes
a clip can be rendered at, and the exception that abandons a clip between two frames."""

from __future__ import annotations

MIN_CLIP_SIZE = 16
# A 125-frame clip at 2048 px is 1.5 GB of pixels and a window holds several; larger is no use on any screen.
MAX_CLIP_SIZE = 2048


class RenderStopped(Exception):
    """A clip was abandoned between frames because its caller's ``should_stop()`` turned true."""


def check_clip_size(size: int) -> int:
    """``size`` if clips can be rendered at it, else a ``ValueError`` naming the sizes that work."""
    if not MIN_CLIP_SIZE <= size <= MAX_CLIP_SIZE:
        raise ValueError(f"clip size must be from {MIN_CLIP_SIZE} to {MAX_CLIP_SIZE} pixels, got {size}")
    return size
