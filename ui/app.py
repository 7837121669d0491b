"""The clip-comparison window: two clips side by side, looping in lock-step, answered by key or mouse.

``LabelApp.step()`` handles pending input and draws one frame, so tests can drive the app with posted pygame
events (``SDL_VIDEODRIVER=dummy``); ``run()`` loops it at the display rate. The app's log (JSON lines in
``<run>/label_logs/``) records every answer with the delay until the next pair was on screen.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
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
HELP = ("keys:  <- left better   -> right better   up or = equally good   down can't tell",
        "space pause   r replay   + / - speed   u or backspace undo   q or Esc quit")
BG, FG, DIM, ACCENT = (24, 26, 30), (230, 232, 236), (150, 155, 165), (90, 160, 250)

KEYS = {
    pygame.K_LEFT: "left", pygame.K_RIGHT: "right", pygame.K_UP: "equal", pygame.K_EQUALS: "equal",
    pygame.K_KP_EQUALS: "equal", pygame.K_DOWN: "cant_tell",
}
BUTTONS = (("left", "Left is better  <-"), ("equal", "Equally good  ^"), ("cant_tell", "Can't tell  v"),
           ("right", "Right is better  ->"))


@dataclass
class RunInfo:
    """What the status line shows about the training side (re-read about once a second)."""

    budget: int = 0
    timesteps: int | None = None
    val_accuracy: float | None = None
    n_labels: int = 0
    n_pending: int = 0
    n_leased: int = 0


class LabelApp:
    def __init__(self, run_dir: str | Path, session: LabelSession, instructions: str = "", clip_size: int = 256,
                 log_dir: str | Path | None = None):
        self.run_dir = RunDir(run_dir)
        self.session = session
        self.instructions = instructions
        self.clip_size = clip_size
        pygame.display.init()  # not pygame.init(): no sound, no joystick
        pygame.font.init()
        pygame.display.set_caption(f"pbrl label: {self.run_dir.path.name} ({session.name})")
        self.margin, self.top, self.gap = 24, 88, 24
        width = max(2 * clip_size + self.gap + 2 * self.margin, 600)
        height = self.top + clip_size + 136
        self.screen = pygame.display.set_mode((width, height))
        self.font = pygame.font.Font(None, 22)
        self.big = pygame.font.Font(None, 28)
        self.clock = pygame.time.Clock()
        self.speed_index = SPEEDS.index(1.0)
        self.paused = False
        self.clip_t = 0.0  # seconds into the current loop, at 1x
        self.running = True
        self.message = ""
        self.info = RunInfo()
        self._info_at = 0.0
        self._pending_answer_at: float | None = None  # when the last answer was stored, until the next pair shows
        self.delays_ms: list[float] = []
        self._shown: Item | None = None
        self._surfaces: tuple[dict, dict] = ({}, {})
        self._answer_had_next = False
        log_dir = Path(log_dir) if log_dir else self.run_dir.path / "label_logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{session.token.replace(':', '-')}.jsonl"
        self._log = open(self.log_path, "a", buffering=1)
        self._log_event("open", name=session.name)
        self.buttons: list[tuple[pygame.Rect, str]] = []
        y = self.top + clip_size + 16
        bw = (width - 2 * self.margin - 3 * 8) // 4
        for k, (choice, _) in enumerate(BUTTONS):
            self.buttons.append((pygame.Rect(self.margin + k * (bw + 8), y, bw, 34), choice))

    @property
    def speed(self) -> float:
        return SPEEDS[self.speed_index]

    # -- input ---------------------------------------------------------------------------------------

    def handle(self, event) -> None:
        if event.type == pygame.QUIT:
            self.running = False
            return
        if event.type not in (pygame.KEYDOWN, pygame.MOUSEBUTTONDOWN):
            return
        self.session.touch()
        if event.type == pygame.MOUSEBUTTONDOWN:
            for rect, choice in self.buttons:
                if rect.collidepoint(event.pos):
                    self.choose(choice)
            return
        key, text = event.key, getattr(event, "unicode", "")
        if key in (pygame.K_q, pygame.K_ESCAPE):
            self.running = False
        elif key in KEYS:
            self.choose(KEYS[key])
        elif key == pygame.K_SPACE:
            self.paused = not self.paused
        elif key == pygame.K_r:
            self.clip_t, self.paused = 0.0, False
        elif key in (pygame.K_PLUS, pygame.K_KP_PLUS) or text == "+":
            self.speed_index = min(self.speed_index + 1, len(SPEEDS) - 1)
        elif key in (pygame.K_MINUS, pygame.K_KP_MINUS) or text == "-":
            self.speed_index = max(self.speed_index - 1, 0)
        elif key in (pygame.K_u, pygame.K_BACKSPACE):
            self.undo()

    def choose(self, choice: str) -> None:
        item = self.session.current
        if item is None:
            return
        if self.session.answer(choice):
            self._pending_answer_at = time.perf_counter()
            self._answer_had_next = self.session.has_next()
            self.message = f"saved: {choice.replace('_', ' ')} (#{item.comparison.id})"
            self._log_event("answer", comparison=item.comparison.id, choice=choice, swapped=item.swapped,
                            label=item.label_for_first(choice))
        else:
            self.message = "that pair was taken back to the queue; here is the next one"
        self.clip_t = 0.0

    def undo(self) -> None:
        item = self.session.undo()
        if item is None:
            self.message = "nothing to undo in this session"
            return
        self.message = f"undone: pair #{item.comparison.id} is back on screen"
        self._log_event("undo", comparison=item.comparison.id)
        self.clip_t = 0.0

    # -- drawing -------------------------------------------------------------------------------------

    def _refresh_info(self) -> None:
        if time.time() - self._info_at < 1.0:
            return
        self._info_at = time.time()
        counts = self.session.store.counts()
        info = dataclasses.replace(self.info, n_labels=counts.n_labels, n_pending=counts.n_pending,
                                   n_leased=counts.n_leased)
        try:
            if not info.budget:  # the config never changes once the run exists
                info.budget = int(self.run_dir.read_json(self.run_dir.config).get("n_labels", 0))
            if self.run_dir.state.exists():
                state = self.run_dir.read_json(self.run_dir.state)
                info.timesteps = state.get("num_timesteps")
                info.val_accuracy = state.get("last_fit", {}).get("val_accuracy")
        except (OSError, ValueError):  # a file being replaced right now: keep the last figures
            pass
        self.info = info

    def status_lines(self) -> tuple[str, str]:
        """Labels (answered / budget, queued, rate, ETA), then the training side and the playback mode."""
        i, rate = self.info, self.session.stats.per_minute()
        left = max(i.budget - i.n_labels, 0)
        eta = f"{left / rate:.0f} min" if rate > 0 and left else "-"
        labels = [f"answered {i.n_labels}/{i.budget}", f"queued {i.n_pending}", f"{rate:.1f} labels/min",
                  f"ETA {eta}"]
        agent = [f"agent step {i.timesteps:,}" if i.timesteps is not None else "agent not started"]
        if i.val_accuracy is not None:
            agent.append(f"reward model val acc {i.val_accuracy:.2f}")
        agent.append("clips paused" if self.paused else f"clips at {self.speed:g}x")
        return "   ".join(labels), "   ".join(agent)

    def _text(self, text: str, pos: tuple[int, int], font=None, color=FG, center: bool = False) -> None:
        surf = (font or self.font).render(text, True, color)
        rect = surf.get_rect(center=pos) if center else surf.get_rect(topleft=pos)
        self.screen.blit(surf, rect)

    def _frame_index(self, n_frames: int, fps: float) -> int:
        loop_s = n_frames / fps + LOOP_PAUSE_S
        t = self.clip_t % loop_s
        return min(int(t * fps), n_frames - 1)

    def _surface(self, item: Item, side: int, k: int):
        """Frame ``k`` of the left (0) or right (1) clip as a surface, converted once, when first drawn."""
        if self._shown is not item:
            self._shown, self._surfaces = item, ({}, {})
        cache = self._surfaces[side]
        if k not in cache:
            frame = (item.left, item.right)[side][k]
            surf = pygame.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1)))
            if surf.get_size() != (self.clip_size, self.clip_size):
                surf = pygame.transform.scale(surf, (self.clip_size, self.clip_size))
            cache[k] = surf
        return cache[k]

    def draw(self) -> None:
        s, m, top, size = self.screen, self.margin, self.top, self.clip_size
        s.fill(BG)
        title = self.instructions or "Which clip is better? Compare the two and answer."
        self._text(title, (s.get_width() // 2, 20), self.big, FG, center=True)
        for k, line in enumerate(self.status_lines()):
            self._text(line, (m, 40 + 20 * k), color=DIM)
        item = self.session.current
        x_right = m + size + self.gap
        if item is not None:
            n = max(len(item.left), len(item.right))
            k = self._frame_index(n, item.fps)  # one clock for both: the clips play in lock-step
            s.blit(self._surface(item, 0, min(k, len(item.left) - 1)), (m, top))
            s.blit(self._surface(item, 1, min(k, len(item.right) - 1)), (x_right, top))
            if self._pending_answer_at is not None:  # the first frame of the next pair is drawn now
                delay = 1000.0 * (time.perf_counter() - self._pending_answer_at)
                if self._answer_had_next:  # a pair was queued or rendering: this delay is the app's own
                    self.delays_ms.append(delay)
                self._log_event("shown", comparison=item.comparison.id, delay_ms=round(delay, 2),
                                queued=self._answer_had_next)
                self._pending_answer_at = None
        else:
            for x in (m, x_right):
                pygame.draw.rect(s, (40, 43, 50), (x, top, size, size))
            if self.session.error is not None:
                text = f"clips cannot be rendered: {self.session.error}"
            elif self.session.idle:
                text = "Paused because you were away: press any key to go on"
            else:
                text = "Nothing to label yet: the agent is producing new behaviour..."
            self._text(text, (s.get_width() // 2, top + size // 2), self.big, DIM, center=True)
        self._text("left", (m + 4, top + 4), color=(20, 20, 20))
        self._text("right", (x_right + 4, top + 4), color=(20, 20, 20))
        mouse = pygame.mouse.get_pos()
        for (rect, _), (_, label) in zip(self.buttons, BUTTONS, strict=True):
            color = ACCENT if rect.collidepoint(mouse) and item is not None else (55, 60, 70)
            pygame.draw.rect(s, color, rect, border_radius=6)
            self._text(label, rect.center, color=FG, center=True)
        self._text(self.message, (m, top + size + 60), color=ACCENT)
        for k, line in enumerate(HELP):
            self._text(line, (m, top + size + 84 + 18 * k), color=DIM)
        pygame.display.flip()

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
        if self.session.current is not before:
            self.clip_t = 0.0
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
        self.session.close()
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
