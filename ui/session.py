"""One person's labelling session against a run's store: leases, clips rendered ahead, answers, undo.

This is the labelling core that both front ends use: the pygame window (``pbrl.ui.app``) and ``pbrl serve``'s page
(``pbrl.web``); no pygame here, so the logic is testable on its own. A session holds its pairs under a lease in the
store (a token per session), so two sessions on one run never get the same pair; a background thread leases the
next pairs and renders their clips ahead of time, so the next pair is ready the moment an answer is stored. Leases
are renewed while the person is active; after ``lease_s`` without any input the session gives its pairs back to the
queue. Every answer is committed to the store before ``answer`` returns.

What "rendering" makes of a segment is the renderer's business: the window's renderers return frames
(``(T, H, W, 3)`` arrays), the page's returns the segment's clip encoded as a video file. The session only carries
them, in the order shown.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from pbrl.store import Comparison, LeaseError, PreferenceStore
from pbrl.ui.render import RenderStopped

#: What each choice means for the segment shown on the left: P(left preferred), NaN = can't tell (dropped).
CHOICES = {"left": 1.0, "right": 0.0, "equal": 0.5, "cant_tell": math.nan}
#: Each choice in words, as the front ends say what was saved.
SAID = {"left": "left is better", "right": "right is better", "equal": "equally good", "cant_tell": "can't tell"}


ClipT = TypeVar("ClipT")


@dataclass
class Item(Generic[ClipT]):
    """A leased comparison with its two clips, in the order shown."""

    comparison: Comparison
    left: ClipT  # the window's: (T, H, W, 3) uint8 frames; the page's: an encoded video
    right: ClipT
    swapped: bool  # True: the comparison's first segment is on the right
    fps: float
    shown_at: float | None = None  # when the window first drew it: only a pair the person has seen is answered
    rendered_in_s: float = 0.0

    def label_for_first(self, choice: str) -> float:
        p_left = CHOICES[choice]
        return p_left if math.isnan(p_left) or not self.swapped else 1.0 - p_left


@dataclass
class SessionStats:
    answered: int = 0
    started: float = field(default_factory=time.time)
    answer_times: list[float] = field(default_factory=list)

    def per_minute(self, window_s: float = 300.0) -> float:
        """Answers per minute over the last ``window_s`` seconds of this session."""
        now = time.time()
        recent = [t for t in self.answer_times if now - t <= window_s]
        span = min(window_s, now - self.started)
        return 60.0 * len(recent) / span if span > 1.0 else 0.0


class LabelSession:
    """Lease, prefetch and answer comparisons of the store at ``store_path`` as ``name``."""

    def __init__(self, store_path, name: str, renderer_factory: Callable[[], Any], ahead: int = 3,
                 lease_s: float = 120.0, seed: int | Sequence[int] | None = None,
                 on_change: Callable[[], None] | None = None):
        """``renderer_factory`` builds, in the background thread, what renders a segment's clip (``fps`` and
        ``frames(segment, should_stop)``, as ``pbrl.ui.render.FrameRenderer``); ``on_change`` is called (from any
        thread, quickly) when the pair to show may have changed: one became ready, was lost or given back."""
        self.store_path, self.name, self.lease_s, self.ahead = store_path, name, lease_s, ahead
        self._on_change = on_change
        self.token = f"{name}:{uuid.uuid4().hex[:8]}"
        self.store = PreferenceStore(store_path)
        self.stats = SessionStats()
        self.rng = np.random.default_rng(seed)
        self.current: Item | None = None
        self.history: list[Item] = []  # answered in this session, for undo
        self._ready: deque[Item] = deque()
        self._in_flight: set[int] = set()
        self._lock = threading.Lock()  # the queue: current, ready, in flight
        self._busy = threading.RLock()  # one answer or undo at a time (a page may send two at once)
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._closed_run = threading.Event()  # the run has finished: no more pairs are offered
        self._wake = threading.Event()
        self.last_input = time.time()
        self._last_renewal = time.time()
        self.error: BaseException | None = None
        self._renderer_factory = renderer_factory
        self._thread = threading.Thread(target=self._prefetch, name="pbrl-prefetch", daemon=True)
        self._thread.start()

    # -- the background thread: lease the next pairs and render them --------------------------------------

    def _prefetch(self) -> None:
        store = PreferenceStore(self.store_path)
        renderer = None
        try:
            renderer = self._renderer_factory()
            while not self._stop.is_set():
                if self._idle.is_set() or self._closed_run.is_set() or self.n_ready() >= self.ahead:
                    self._wake.wait(0.2)
                    self._wake.clear()
                    continue
                with self._lock:
                    exclude = self.held_ids()
                comp = store.lease_next(self.token, self.lease_s, exclude)
                if comp is None:
                    self._wake.wait(0.5)
                    self._wake.clear()
                    continue
                with self._lock:
                    self._in_flight.add(comp.id)
                t0 = time.perf_counter()
                try:  # a clip is abandoned between frames when the window closes
                    first, second = (renderer.frames(store.segment(i), should_stop=self._stop.is_set)
                                     for i in (comp.first_id, comp.second_id))
                except RenderStopped:
                    break
                swapped = bool(self.rng.random() < 0.5)
                left, right = (second, first) if swapped else (first, second)
                item = Item(comp, left, right, swapped, renderer.fps, rendered_in_s=time.perf_counter() - t0)
                with self._lock:
                    self._in_flight.discard(comp.id)
                    if self._idle.is_set() or self._closed_run.is_set():  # not to be shown now: give it back
                        store.release([comp.id], self.token)
                    else:
                        self._ready.append(item)
                self._changed()
        except BaseException as exc:  # surfaced on screen by the app, never a silent dead thread
            self.error = exc
            self._changed()
        finally:
            if renderer is not None and hasattr(renderer, "close"):
                try:
                    renderer.close()
                except Exception:  # noqa: S110 - a GL context that cannot be freed at exit costs nothing
                    pass
            store.close()

    # -- the main thread (the window's; the page's request handlers) --------------------------------------

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def held_ids(self) -> list[int]:
        """Ids this session holds: on screen, rendered and waiting, or being rendered (call under the lock)."""
        ids = [i.comparison.id for i in self._ready] + list(self._in_flight)
        return ids + ([self.current.comparison.id] if self.current else [])

    def n_ready(self) -> int:
        with self._lock:
            return len(self._ready)

    def has_next(self) -> bool:
        """A pair is rendered and waiting, or being rendered now."""
        with self._lock:
            return bool(self._ready or self._in_flight)

    def queued(self) -> list[Item]:
        """The pairs rendered and waiting, next first."""
        with self._lock:
            return list(self._ready)

    def held(self) -> list[Item]:
        """The pair on screen (if any) and those rendered and waiting."""
        with self._lock:
            return ([self.current] if self.current is not None else []) + list(self._ready)

    def find(self, comparison_id: int) -> Item | None:
        """The held pair ``comparison_id`` (on screen or rendered and waiting), or None."""
        return next((i for i in self.held() if i.comparison.id == comparison_id), None)

    def next(self) -> Item | None:
        """Put the next rendered pair on screen (None when nothing is ready yet); the window marks it ``shown``
        once it has drawn it."""
        with self._lock:
            if self.current is None and self._ready:
                self.current = self._ready.popleft()
        self._wake.set()
        return self.current

    def shown(self, item: Item) -> None:
        """The window has drawn ``item``: from now on the person can answer it (the response time counts from here)."""
        if item.shown_at is None:
            item.shown_at = time.time()

    def close_run(self) -> None:
        """The run has finished: answers would no longer be used, so no pair is offered and every held one goes
        back to the store."""
        if not self._closed_run.is_set():
            self._closed_run.set()
            self._give_back()
            self._changed()

    @property
    def run_closed(self) -> bool:
        return self._closed_run.is_set()

    def touch(self) -> None:
        """The person did something: leases stay renewed; an idle session comes back."""
        self.last_input = time.time()
        if self._idle.is_set():
            self._idle.clear()
            self._wake.set()

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    def maintain(self) -> None:
        """Call often: renews leases while the person is active, gives the pairs back after ``lease_s`` idle."""
        now = time.time()
        if self._idle.is_set():
            return
        if now - self.last_input > self.lease_s:
            self._go_idle()
            self._changed()
        elif now - self._last_renewal > self.lease_s / 4:
            with self._lock:
                ids = self.held_ids()
            held = set(self.store.renew_leases(ids, self.token, self.lease_s))
            self._last_renewal = now
            with self._lock:  # a lease lost (another window took a lapsed pair) is never shown here again
                lost = self.current is not None and self.current.comparison.id not in held
                self._ready = deque(i for i in self._ready if i.comparison.id in held)
                if lost:
                    self.current = None
            if lost:
                self._changed()

    def _go_idle(self) -> None:
        self._idle.set()
        self._give_back()

    def _give_back(self) -> None:
        with self._lock:
            ids = self.held_ids()
            self._ready.clear()
            self.current = None
        self.store.release(ids, self.token)

    def answer(self, choice: str, comparison_id: int | None = None, request_key: str | None = None) -> bool:
        """Store the person's choice for the pair on screen; False if no pair has been shown, if it is not
        ``comparison_id`` (when given: the pair the page answered), if the pair was no longer ours, or if
        ``request_key`` (a page's key for its request) was stored before."""
        with self._busy:
            item = self.current
            if item is None or item.shown_at is None:
                return False
            if comparison_id is not None and item.comparison.id != comparison_id:
                return False
            now = time.time()
            try:
                stored = self.store.answer(item.comparison.id, item.label_for_first(choice), self.name,
                                           response_s=now - (item.shown_at or now), swapped=item.swapped,
                                           shown_at=item.shown_at, session=self.token, request_key=request_key)
            except LeaseError:
                with self._lock:
                    if self.current is item:
                        self.current = None
                self._changed()
                return False
            if not stored:
                return False
            with self._lock:
                self.history.append(item)
                self.current = None
            self.stats.answered += 1
            self.stats.answer_times.append(now)
            self._wake.set()
            return True

    def undo(self, comparison_id: int | None = None, request_key: str | None = None) -> Item | None:
        """Take back this session's last answer and show that pair again (the undo is recorded in the store);
        None if there is none, if it is not ``comparison_id`` (when given: the pair the page means), or if
        ``request_key`` (a page's key for its request) was done before."""
        with self._busy:
            if not self.history or comparison_id not in (None, self.history[-1].comparison.id):
                return None
            item = self.history[-1]
            if not self.store.undo(item.comparison.id, self.name, self.token, self.lease_s, request_key):
                return None
            self.history.pop()
            with self._lock:
                if self.current is not None:
                    self._ready.appendleft(self.current)
                item.shown_at = time.time()
                self.current = item
            self.stats.answered -= 1
            if self.stats.answer_times:
                self.stats.answer_times.pop()
            return item

    def close(self) -> None:
        """Stop rendering (a clip is abandoned between frames) and give every held pair back to the queue."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._give_back()
        self.store.close()
