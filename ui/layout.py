"""Where the window's parts go at any window size: ``Layout.fit`` lays out two clips side by side, the answer buttons
under them and the text around them, keeping the clips' aspect and growing the text with the window. Pure
arithmetic, without pygame (``pbrl.ui.app`` draws what it says).
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_SHARE = 2 / 3  # of the screen's width, for a window opened at its default size
BASE_WIDTH = 760  # the window width at which text is drawn at its base size


@dataclass(frozen=True)
class Layout:
    """Where everything goes in a ``width`` x ``height`` window for clips of aspect ``clip_aspect`` (w / h)."""

    width: int
    height: int
    scale: float  # of the text and the spacing
    clips: tuple[tuple[int, int, int, int], tuple[int, int, int, int]]  # (x, y, w, h) of the left and right clip
    buttons: tuple[tuple[int, int, int, int], ...]  # (x, y, w, h), in the order of BUTTONS
    title_y: int
    status_y: tuple[int, int]
    message_y: int
    help_y: tuple[int, int]
    text_width: int  # every line of text fits in this width

    @staticmethod
    def chrome(scale: float) -> tuple[int, int]:
        """Pixels above and below the clips at ``scale``."""
        return round(96 * scale), round(140 * scale)

    @classmethod
    def fit(cls, width: int, height: int, clip_aspect: float) -> Layout:
        scale = min(max(width / BASE_WIDTH, 0.7), 2.5)
        margin, gap = round(20 * scale), round(20 * scale)
        above, below = cls.chrome(scale)
        clip_h = max(min(height - above - below, (width - 2 * margin - gap) / (2 * clip_aspect)), 8)
        clip_w = clip_h * clip_aspect
        span = 2 * clip_w + gap
        x0 = (width - span) / 2
        left = (round(x0), above, round(clip_w), round(clip_h))
        right = (round(x0 + clip_w + gap), above, round(clip_w), round(clip_h))
        y = round(above + clip_h + 12 * scale)
        space = 8 * scale
        bw = (max(span, 4 * 40 * scale) - 3 * space) / 4  # the buttons span the clips (or a minimum width)
        bx0 = (width - (4 * bw + 3 * space)) / 2
        buttons = tuple((round(bx0 + k * (bw + space)), y, round(bw), round(34 * scale)) for k in range(4))
        below_buttons = y + round(34 * scale)
        return cls(width, height, scale, (left, right), buttons, title_y=round(22 * scale),
                   status_y=(round(46 * scale), round(68 * scale)), message_y=below_buttons + round(12 * scale),
                   help_y=(below_buttons + round(38 * scale), below_buttons + round(58 * scale)),
                   text_width=width - 2 * margin)

    @classmethod
    def window_for(cls, clip_height: int, clip_aspect: float) -> tuple[int, int]:
        """The window size whose layout shows clips ``clip_height`` pixels tall."""
        width = BASE_WIDTH
        for _ in range(8):  # the scale depends on the width, and the width on the scale: a few rounds settle it
            scale = min(max(width / BASE_WIDTH, 0.7), 2.5)
            width = round(2 * clip_height * clip_aspect + 60 * scale)
        above, below = cls.chrome(min(max(width / BASE_WIDTH, 0.7), 2.5))
        return max(width, 480), clip_height + above + below


def default_clip_height(screen: tuple[int, int], clip_aspect: float) -> int:
    """The clip height of a window about two thirds of the screen's width that fits the screen's height."""
    width = int(screen[0] * WINDOW_SHARE)
    layout = Layout.fit(width, int(screen[1] * 0.85), clip_aspect)
    return max(layout.clips[0][3], 32)
