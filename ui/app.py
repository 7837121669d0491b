"""The clip-comparison window: two clips side by side, looping in lock-step, answered by key or mouse.

``LabelApp.step()`` handles pending input and draws one frame, so tests can drive the app with posted pygame
events (``SDL_VIDEODRIVER=dummy``); ``run()`` loops it at the display rate. The window opens at a size that fits the
screen, can be resized, and lays itself out anew (``layout``: clips keep their aspect, text grows with the window).
A key is matched on the character it types first, then on the key (``action_for``), so Shift+"=" is "+". An answer
counts only for a pair that has been drawn; one that comes before is refused with a visible sign. The app's log
(JSON lines in ``<run>/label_logs/``) records every answer with the delay until the next pair was on screen.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from pbrl.run_dir import RunDir
from pbrl.ui import require_pygame
from pbrl.ui.layout import Layout, default_clip_height
from pbrl.ui.progress import RunInfo, RunWatcher, agent_words, progress_line, waiting_text
from pbrl.ui.session import SAID, Item, LabelSession

__all__ = ["LabelApp", "Layout", "NoScreen", "RunInfo", "action_for", "default_clip_height", "screen_size"]

pygame = require_pygame()

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)
LOOP_PAUSE_S = 0.5  # the last frame holds this long before a clip starts again
HELP = ("keys:  left arrow: left is better   right arrow: right is better   up or =: equally good   down: can't tell",
        "space: pause   r: replay   + / -: speed   u or backspace: undo   q or Esc: quit")
BG, FG, DIM, ACCENT, WARN = (24, 26, 30), (230, 232, 236), (150, 155, 165), (90, 160, 250), (250, 170, 60)
BUTTONS = (("left", "< Left is better"), ("equal", "Equally good (up)"), ("cant_tell", "Can't tell (down)"),
           ("right", "Right is better >"))
SHORT = {"left": "< Left", "equal": "Equal", "cant_tell": "Can't tell", "right": "Right >"}  # on narrow buttons


def action_for(key: int, mod: int, text: str) -> str | None:
    """What a key press means: an answer ("left", "right", "equal", "cant_tell") or "faster", "slower", "pause",
    "replay", "undo", "quit"; None for other keys. The typed character decides first, so Shift+"=" (which types "+"
    on a US keyboard) is "faster", not "equal"; keys that type nothing (arrows, the keypad) go by their key code."""
    if mod & (pygame.KMOD_CTRL | pygame.KMOD_ALT | pygame.KMOD_META):  # shortcuts of other programs, but quit
        return "quit" if key in (pygame.K_q, pygame.K_w) else None
    by_text = {"+": "faster", "-": "slower", "=": "equal", " ": "pause", "r": "replay", "u": "undo", "q": "quit"}
    if text in by_text:
        return by_text[text]
    if key == pygame.K_EQUALS and mod & pygame.KMOD_SHIFT:  # "+" where no text came with the key
        return "faster"
    by_key = {pygame.K_LEFT: "left", pygame.K_RIGHT: "right", pygame.K_UP: "equal", pygame.K_DOWN: "cant_tell",
              pygame.K_KP_EQUALS: "equal", pygame.K_EQUALS: "equal", pygame.K_KP_PLUS: "faster",
              pygame.K_PLUS: "faster", pygame.K_KP_MINUS: "slower", pygame.K_MINUS: "slower",
              pygame.K_SPACE: "pause", pygame.K_r: "replay", pygame.K_u: "undo", pygame.K_BACKSPACE: "undo",
              pygame.K_q: "quit", pygame.K_ESCAPE: "quit"}
    return by_key.get(key)


class NoScreen(ValueError):
    """There is no screen to open the window on; the message says what to do."""


def screen_size() -> tuple[int, int]:
    """The desktop's size in pixels (the first display's). Raises ``NoScreen`` where SDL finds no screen and would
    draw the window off screen, where nobody sees it (no DISPLAY or WAYLAND_DISPLAY: a server, an ssh session)."""
    chosen = os.environ.get("SDL_VIDEODRIVER")
    if sys.platform.startswith("linux") and not (chosen or os.environ.get("DISPLAY") or
                                                 os.environ.get("WAYLAND_DISPLAY")):
        raise NoScreen("no screen to open the labelling window on (DISPLAY and WAYLAND_DISPLAY are not set); run "
                       "pbrl label where there is a display, or over ssh -X")
    try:
        pygame.display.init()
    except pygame.error as exc:
        raise NoScreen(f"no screen to open the labelling window on ({exc}); run pbrl label where there is a "
                       "display (or over ssh -X)") from None
    if pygame.display.get_driver() in ("offscreen", "dummy") and not chosen:
        raise NoScreen("no screen to open the labelling window on (SDL found none); run pbrl label where there is a "
                       "display, or over ssh -X")
    sizes = pygame.display.get_desktop_sizes()
    return sizes[0] if sizes else (1280, 800)


class LabelApp:
    def __init__(self, run_dir: str | Path, session: LabelSession, instructions: str = "", clip_size: int = 256,
                 log_dir: str | Path | None = None, clip_aspect: float = 1.0, window: tuple[int, int] | None = None):
        self.run_dir = RunDir(run_dir)
        self.session = session
        self.instructions = instructions
        self.clip_aspect = clip_aspect
        os.environ.setdefault("SDL_VIDEO_X11_WMCLASS", "pbrl")  # the window's class, for window managers
        pygame.display.init()  # not pygame.init(): no sound, no joystick
        pygame.font.init()
        pygame.display.set_caption(f"pbrl label: {self.run_dir.path.name} ({session.name})")
        size = window or Layout.window_for(clip_size, clip_aspect)
        self.screen = pygame.display.set_mode(size, pygame.RESIZABLE)
        self.layout = Layout.fit(*self.screen.get_size(), clip_aspect)
        self._fonts: dict[int, pygame.font.Font] = {}
        self.clock = pygame.time.Clock()
        self.speed_index = SPEEDS.index(1.0)
        self.paused = False
        self.clip_t = 0.0  # seconds into the current loop, at 1x
        self.running = True
        self.message, self.message_color = "", ACCENT
        self.info = RunInfo()
        self._info_at = 0.0
        self._watcher = RunWatcher(self.run_dir, session.store)
        self._pending_answer_at: float | None = None  # when the last answer was stored, until the next pair shows
        self.delays_ms: list[float] = []
        self._shown: Item | None = None
        self._surfaces: tuple[dict, dict] = ({}, {})
        self._answer_had_next = False
        log_dir = Path(log_dir) if log_dir else self.run_dir.path / "label_logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{session.token.replace(':', '-')}.jsonl"
        self._log = open(self.log_path, "a", buffering=1)
        self._log_event("open", name=session.name, window=list(self.screen.get_size()))

    @property
    def speed(self) -> float:
        return SPEEDS[self.speed_index]

    @property
    def buttons(self) -> list[tuple[pygame.Rect, str]]:
        return [(pygame.Rect(r), choice) for r, (choice, _) in zip(self.layout.buttons, BUTTONS, strict=True)]

    # -- input ---------------------------------------------------------------------------------------

    def handle(self, event) -> None:
        if event.type == pygame.QUIT:
            self.running = False
            return
        if event.type == pygame.VIDEORESIZE:
            self.resize(event.w, event.h)
            return
        if event.type not in (pygame.KEYDOWN, pygame.MOUSEBUTTONDOWN):
            return
        self.session.touch()
        if event.type == pygame.MOUSEBUTTONDOWN:
            if event.button == 1:
                for rect, choice in self.buttons:
                    if rect.collidepoint(event.pos):
                        self.choose(choice)
            return
        action = action_for(event.key, getattr(event, "mod", 0), getattr(event, "unicode", ""))
        if action == "quit":
            self.running = False
        elif action in SAID:
            self.choose(action)
        elif action == "pause":
            self.paused = not self.paused
        elif action == "replay":
            self.clip_t, self.paused = 0.0, False
        elif action == "faster":
            self.speed_index = min(self.speed_index + 1, len(SPEEDS) - 1)
        elif action == "slower":
            self.speed_index = max(self.speed_index - 1, 0)
        elif action == "undo":
            self.undo()

    def resize(self, width: int, height: int) -> None:
        width, height = max(width, 320), max(height, 240)
        self.screen = pygame.display.set_mode((width, height), pygame.RESIZABLE)
        self.layout = Layout.fit(width, height, self.clip_aspect)
        self._surfaces = ({}, {})  # frames are scaled to the new clip size when next drawn

    def _say(self, text: str, color=ACCENT) -> None:
        self.message, self.message_color = text, color

    def choose(self, choice: str) -> None:
        item = self.session.current
        if item is None or item.shown_at is None:  # the person cannot have meant a pair they have not seen
            self._say(f"not saved: {SAID[choice]} came before a pair was on screen", WARN)
            self._log_event("refused", choice=choice, reason="no pair on screen")
            return
        if self.session.answer(choice):
            self._pending_answer_at = time.perf_counter()
            self._answer_had_next = self.session.has_next()
            self._say(f"saved: {SAID[choice]} (pair #{item.comparison.id})")
            self._log_event("answer", comparison=item.comparison.id, choice=choice, swapped=item.swapped,
                            label=item.label_for_first(choice))
        else:
            self._say("not saved: that pair went back to the queue (another window took it); here is the next one",
                      WARN)
        self.clip_t = 0.0

    def undo(self) -> None:
        item = self.session.undo()
        if item is None:
            self._say("nothing to undo in this session", WARN)
            return
        self._say(f"undone: pair #{item.comparison.id} is back on screen")
        self._log_event("undo", comparison=item.comparison.id)
        self.clip_t = 0.0

    # -- the training side ---------------------------------------------------------------------------

    def _refresh_info(self) -> None:
        if time.time() - self._info_at < 1.0:
            return
        self._info_at = time.time()
        self.info = self._watcher.read(self.info)
        if self.info.finished:
            self.session.close_run()

    def status_lines(self) -> tuple[str, str]:
        """Answers against the budget (can't-tell ones included), queued, rate, ETA; then the training side."""
        agent = agent_words(self.info)
        agent.append("clips paused (space)" if self.paused else f"clips at {self.speed:g}x")
        return progress_line(self.info, self.session.stats.per_minute()), "   ".join(agent)

    def waiting_text(self) -> str:
        """What the window waits for when no pair is on screen."""
        return waiting_text(self.info, self.run_dir.path, self.session)

    # -- drawing -------------------------------------------------------------------------------------

    def _font(self, size: float):
        px = max(int(round(size * self.layout.scale)), 10)
        if px not in self._fonts:
            self._fonts[px] = pygame.font.Font(None, px)
        return self._fonts[px]

    def _text(self, text: str, pos: tuple[int, int], size: float = 22, color=FG, center: bool = False,
              box: bool = False, max_width: int | None = None) -> None:
        """Draw ``text``, shrunk (then cut with an ellipsis) to fit ``max_width`` (the window's text width)."""
        max_width = max_width or self.layout.text_width
        font = self._font(size)
        while font.size(text)[0] > max_width and font.get_height() > 12:
            font = pygame.font.Font(None, font.get_height() - 2)
        while font.size(text)[0] > max_width and len(text) > 4:
            text = text[:-4] + "..."
        surf = font.render(text, True, color)
        rect = surf.get_rect(center=pos) if center else surf.get_rect(topleft=pos)
        if box:  # a dark backing box keeps a caption readable on any clip
            backing = rect.inflate(10, 4)
            shade = pygame.Surface(backing.size, pygame.SRCALPHA)
            shade.fill((0, 0, 0, 170))
            self.screen.blit(shade, backing)
        self.screen.blit(surf, rect)

    def _frame_index(self, n_frames: int, fps: float) -> int:
        loop_s = n_frames / fps + LOOP_PAUSE_S
        t = self.clip_t % loop_s
        return min(int(t * fps), n_frames - 1)

    def _surface(self, item: Item, side: int, k: int, size: tuple[int, int]):
        """Frame ``k`` of the left (0) or right (1) clip as a surface of ``size``, converted once, when first drawn."""
        if self._shown is not item:
            self._shown, self._surfaces = item, ({}, {})
        cache = self._surfaces[side]
        if k not in cache:
            frame = (item.left, item.right)[side][k]
            surf = pygame.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1)))
            if surf.get_size() != size:
                surf = pygame.transform.smoothscale(surf, size)
            cache[k] = surf
        return cache[k]

    def draw(self) -> None:
        s, lay = self.screen, self.layout
        s.fill(BG)
        title = self.instructions or "Which clip is better? Compare the two and answer."
        self._text(title, (lay.width // 2, lay.title_y), 28, FG, center=True)
        margin = (lay.width - lay.text_width) // 2
        for y, line in zip(lay.status_y, self.status_lines(), strict=True):
            self._text(line, (margin, y), 20, DIM)
        item = self.session.current
        (lx, ly, lw, lh), (rx, ry, rw, rh) = lay.clips
        if item is not None:
            n = max(len(item.left), len(item.right))
            k = self._frame_index(n, item.fps)  # one clock for both: the clips play in lock-step
            s.blit(self._surface(item, 0, min(k, len(item.left) - 1), (lw, lh)), (lx, ly))
            s.blit(self._surface(item, 1, min(k, len(item.right) - 1), (rw, rh)), (rx, ry))
        else:
            for x, y, w, h in lay.clips:
                pygame.draw.rect(s, (40, 43, 50), (x, y, w, h))
            span = rx + rw - lx
            self._text(self.waiting_text(), (lay.width // 2, ly + lh // 2), 24, DIM, center=True, max_width=span)
        for (x, y, _, _), caption in zip(lay.clips, ("left", "right"), strict=True):
            self._text(caption, (x + round(6 * lay.scale), y + round(5 * lay.scale)), 20, FG, box=True)
        mouse = pygame.mouse.get_pos()
        for (rect, choice), (_, label) in zip(self.buttons, BUTTONS, strict=True):
            color = ACCENT if rect.collidepoint(mouse) and item is not None else (55, 60, 70)
            pygame.draw.rect(s, color, rect, border_radius=round(6 * lay.scale))
            room = rect.width - round(10 * lay.scale)
            if self._font(20).size(label)[0] > room:
                label = SHORT[choice]
            self._text(label, rect.center, 20, FG, center=True, max_width=room)
        self._text(self.message, (margin, lay.message_y), 20, self.message_color)
        for y, line in zip(lay.help_y, HELP, strict=True):
            self._text(line, (margin, y), 18, DIM)
        pygame.display.flip()
        if item is not None and item.shown_at is None:  # on screen from now: the person may answer it
            self.session.shown(item)
            self._log_event("shown", comparison=item.comparison.id, swapped=item.swapped,
                            delay_ms=None if self._pending_answer_at is None else
                            round(1000.0 * (time.perf_counter() - self._pending_answer_at), 2),
                            queued=self._answer_had_next)
            if self._pending_answer_at is not None:
                if self._answer_had_next:  # a pair was queued or rendering: this delay is the app's own
                    self.delays_ms.append(1000.0 * (time.perf_counter() - self._pending_answer_at))
                self._pending_answer_at = None

    # -- the loop ------------------------------------------------------------------------------------

    def step(self, dt: float | None = None) -> bool:
        """Handle input, advance the clips by ``dt`` seconds (measured if None), draw; False once quit."""
        for event in pygame.event.get():
            self.handle(event)
            if not self.running:
                return False
        self.session.maintain()
        before = self.session.current
        self.session.next()
        if self.session.current is not before:  # a new pair starts playing from its start, whatever came before
            self.clip_t, self.paused = 0.0, False
        self._refresh_info()
        dt = self.clock.tick(60) / 1000.0 if dt is None else dt
        if not self.paused:
            self.clip_t += dt * self.speed
        self.draw()
        return True

    def run(self) -> None:
        try:
            while self.step():
                pass
        finally:
            self.close()

    def close(self) -> None:
        if self._log.closed:
            return
        self.session.close()  # its renderer stops within a frame; before SDL lets go of a GL display they may share
        pygame.display.quit()
        summary = self.summary()
        self._log_event("close", **summary)
        self._log.close()
        pygame.quit()

    def summary(self) -> dict:
        d = self.delays_ms
        return {"answered": self.session.stats.answered, "n_delays": len(d),
                "median_delay_ms": round(statistics.median(d), 2) if d else None,
                "max_delay_ms": round(max(d), 2) if d else None}

    def _log_event(self, kind: str, **fields) -> None:
        fields = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in fields.items()}
        self._log.write(json.dumps({"t": round(time.time(), 4), "event": kind, **fields}) + "\n")
