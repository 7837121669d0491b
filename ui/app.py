"""The clip-comparison window: two clips side by side, looping in lock-step, answered by key or mouse.

``LabelApp.step()`` handles pending input and draws one frame, so tests can drive the app with posted pygame
events (``SDL_VIDEODRIVER=dummy``); ``run()`` loops it at the display rate. The window opens at a size that fits the
screen, can be resized, and lays itself out anew (``layout``: clips keep their aspect, text grows with the window).
A key is matched on the character it types first, then on the key (``action_for``), so Shift+"=" is "+". An answer
counts only for a pair that has been drawn; one that comes before is refused with a visible sign. The app's log
(JSON lines in ``<run>/label_logs/``) records every answer with the delay until the next pair was on screen.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pbrl.run_dir import RunDir
from pbrl.ui import require_pygame
from pbrl.ui.session import Item, LabelSession

pygame = require_pygame()

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)
LOOP_PAUSE_S = 0.5  # the last frame holds this long before a clip starts again
HELP = ("keys:  left arrow: left is better   right arrow: right is better   up or =: equally good   down: can't tell",
        "space: pause   r: replay   + / -: speed   u or backspace: undo   q or Esc: quit")
BG, FG, DIM, ACCENT, WARN = (24, 26, 30), (230, 232, 236), (150, 155, 165), (90, 160, 250), (250, 170, 60)
BUTTONS = (("left", "< Left is better"), ("equal", "Equally good (up)"), ("cant_tell", "Can't tell (down)"),
           ("right", "Right is better >"))
SHORT = {"left": "< Left", "equal": "Equal", "cant_tell": "Can't tell", "right": "Right >"}  # on narrow buttons
SAID = {"left": "left is better", "right": "right is better", "equal": "equally good", "cant_tell": "can't tell"}
WINDOW_SHARE = 2 / 3  # of the screen's width, for a window opened at its default size
BASE_WIDTH = 760  # the window width at which text is drawn at its base size


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


@dataclass
class RunInfo:
    """What the status line shows about the training side (re-read about once a second)."""

    budget: int = 0
    timesteps: int | None = None
    val_accuracy: float | None = None
    n_labels: int = 0
    n_pending: int = 0
    n_leased: int = 0
    n_incomparable: int = 0
    n_asked: int = 0
    finished: bool = False  # the run wrote metrics.json
    pretrained: bool = False
    next_round_step: int | None = None
    trainer_pid: int | None = None  # 0: no trainer holds the run; None: the OS does not say

    @property
    def n_answered(self) -> int:
        """Every answer a person gave, "can't tell" included: each took their time and counts against the budget."""
        return self.n_labels + self.n_incomparable


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
        self._round_steps: int | None = None
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
        counts = self.session.store.counts()
        info = dataclasses.replace(self.info, n_labels=counts.n_labels, n_pending=counts.n_pending,
                                   n_leased=counts.n_leased, n_incomparable=counts.n_incomparable,
                                   n_asked=counts.n_asked, finished=self.run_dir.metrics.exists(),
                                   trainer_pid=self.run_dir.writer_pid())
        try:
            if not info.budget:  # the config never changes what was asked once the run exists
                from pbrl.config import TrainConfig

                cfg = TrainConfig.load(self.run_dir.config)
                info.budget, self._round_steps = cfg.n_labels, cfg.round_steps
            if self.run_dir.holds_checkpoint():
                state = self.run_dir.read_json(self.run_dir.state)
                info.timesteps = state.get("num_timesteps")
                info.pretrained = bool(state.get("pretrained"))
                info.val_accuracy = state.get("last_fit", {}).get("val_accuracy")
                if self._round_steps and info.timesteps is not None:
                    info.next_round_step = (info.timesteps // self._round_steps + 1) * self._round_steps
        except (OSError, ValueError):  # a file being replaced right now: keep the last figures
            pass
        self.info = info
        if info.finished:
            self.session.close_run()

    def status_lines(self) -> tuple[str, str]:
        """Answers against the budget (can't-tell ones included), queued, rate, ETA; then the training side."""
        i, rate = self.info, self.session.stats.per_minute()
        left = max(i.budget - i.n_answered, 0)
        eta = f"{left / rate:.0f} min" if rate > 0 and left else "-"
        answered = f"answered {i.n_answered}/{i.budget}"
        if i.n_incomparable:
            answered += f" ({i.n_incomparable} can't tell)"
        labels = [answered, f"queued {i.n_pending}", f"{rate:.1f} labels/min", f"ETA {eta}"]
        agent = [f"agent step {i.timesteps:,}" if i.timesteps is not None else "agent not started"]
        if i.val_accuracy is not None:
            agent.append(f"reward model val acc {i.val_accuracy:.2f}")
        agent.append("clips paused (space)" if self.paused else f"clips at {self.speed:g}x")
        return "   ".join(labels), "   ".join(agent)

    def waiting_text(self) -> str:
        """What the window waits for when no pair is on screen."""
        i, run = self.info, self.run_dir.path
        if self.session.error is not None:
            return f"clips cannot be rendered: {self.session.error}"
        if i.finished:
            return f"Training has finished: all {i.n_answered} answers are in. Thank you! Close the window (q)."
        if i.budget and i.n_answered >= i.budget:
            return f"The label budget is spent: all {i.budget} answers are in. Close the window (q)."
        if self.session.idle:
            return "Paused because you were away: press any key to go on"
        if self.session.has_next():
            return "Loading the next pair..."
        if i.n_pending > i.n_leased:
            return "Loading the next pair..."
        if i.trainer_pid == 0:
            return f"The trainer is not running: start it with  pbrl train --resume --run-dir {run}"
        if i.n_pending:
            return "Every open question is on another labeler's screen; more come with the trainer's next round"
        if not i.pretrained:
            return "Waiting for the trainer's first questions..."
        step = f" at agent step {i.next_round_step:,}" if i.next_round_step else ""
        return f"All caught up: the trainer asks its next questions{step}"

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
