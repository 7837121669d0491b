"""The page's side of labelling, without HTTP: labelers, their sessions, the run's progress and every answer.

``LabelServer`` holds one ``pbrl.ui.session.LabelSession`` per labeler (the core the pygame window uses: leases,
answers, undo), with ``CachedClips`` as its renderer, so the page's pairs come from the same queue as the window's.
Its methods take a labeler's name (``pbrl.web.app`` has checked the token) and return a ``Reply``: an HTTP status
and a JSON body. What a labeler may do is decided here:

- answer only the pair on their own screen, once it has been shown (another labeler's pair: 403; a pair not in the
  store: 404; one of theirs not on screen yet, or answered already: 409);
- a request repeated with the same key (a retry after a lost reply) stores nothing and says "saved" again;
- undo only their own last answer, named by its pair, so a repeated undo takes back one answer, not two.

A maintenance thread renews leases, gives back the pairs of labelers who went away, re-reads the run's progress and
the open tokens (a ``pbrl serve --revoke`` from another shell takes effect within a second) and closes the sessions
of the run when it has finished.
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pbrl.run_dir import RunDir
from pbrl.store import LeaseError, PreferenceStore, StoreError
from pbrl.store.invitations import open_tokens, token_hash
from pbrl.ui.progress import RunInfo, RunWatcher, agent_words, progress_line, waiting_text
from pbrl.ui.session import CHOICES, SAID, LabelSession
from pbrl.web.clips import CachedClips, ClipCache

TICK_S = 0.25  # the maintenance thread's period
AWAY_S = 30.0  # a labeler with no page open (no event stream) this long gives their pairs back at once


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"error": message})


class Notifier:
    """Wakes a labeler's event streams (from any thread) when what their page shows may have changed."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self, name: str | None = None) -> None:
        """Wake ``name``'s streams, or everyone's."""
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._wake, name)
            except RuntimeError:  # the loop closed meanwhile: nobody is listening
                pass

    def _wake(self, name: str | None) -> None:
        for who in [name] if name is not None else list(self._events):
            event = self._events.pop(who, None)
            if event is not None:
                event.set()

    def arm(self, name: str) -> asyncio.Event:
        """The event the next wake of ``name`` sets; taken (in the event loop) before reading what the page shows,
        so that a change made meanwhile is not missed."""
        return self._events.setdefault(name, asyncio.Event())

    @staticmethod
    async def wait(event: asyncio.Event, timeout: float) -> bool:
        """Until ``event`` is set (True) or ``timeout`` seconds have passed (False)."""
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False


@dataclass
class _Labeler:
    session: LabelSession
    lock: threading.Lock = field(default_factory=threading.Lock)  # one request at a time changes their queue
    streams: int = 0  # event streams open (pages listening)
    last_seen: float = field(default_factory=time.time)


class LabelServer:
    """The labelers of one run served by one process; ``renderer_factory`` renders a segment's frames (as the
    window's ``AutoRenderer``), ``clip_root`` is where the encoded clips are kept."""

    def __init__(self, run: RunDir, renderer_factory: Callable[[], Any], clip_root, instructions: str = "",
                 lease_s: float = 120.0, ahead: int = 1, n_encoders: int = 1, log: Callable[[str], None] = print,
                 away_s: float = AWAY_S, seed: int | None = None):
        """``seed`` fixes which side each labeler's pairs are shown on (their session's generator is seeded with
        it and the labeler's name); None draws it fresh."""
        self.run, self.instructions, self.lease_s, self.ahead, self.away_s = run, instructions, lease_s, ahead, away_s
        self.seed = seed
        self.log = log
        self.store = PreferenceStore(run.store)
        self.cache = ClipCache(clip_root, run.store, renderer_factory, n_workers=n_encoders)
        self.notifier = Notifier()
        self.info = RunInfo()
        self._watcher = RunWatcher(run, self.store)
        self._labelers: dict[str, _Labeler] = {}
        self._labelers_lock = threading.Lock()
        self._tokens: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._maintain, name="pbrl-serve", daemon=True)
        self.n_answers = 0
        self._info_due = False  # an answer or undo: the progress is re-read at the next tick, not a second later
        self.refresh_tokens()
        self.info = self._watcher.read(self.info)

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is not None:
            self.notifier.bind(loop)
        self.cache.start()
        self._thread.start()

    def close(self) -> None:
        """Give every labeler's pairs back and stop; what was answered is on disk already. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for name in self._labeler_list():
            self._drop(name)
        self.cache.close()
        self.store.close()

    # -- who is who --------------------------------------------------------------------------------------

    def labeler_of(self, token: str | None) -> str | None:
        """The labeler a token was issued to, or None for no token, a wrong one or a revoked one."""
        if not token or len(token) > 256:
            return None
        return self._tokens.get(token_hash(token))

    def refresh_tokens(self) -> None:
        self._tokens = open_tokens(self.store)

    def _labeler(self, name: str) -> _Labeler:
        """``name``'s session, started on first use: it leases and prepares their first pairs at once."""
        with self._labelers_lock:
            lab = self._labelers.get(name)
            if lab is None:
                session = LabelSession(self.run.store, name, lambda: CachedClips(self.cache), ahead=self.ahead,
                                       lease_s=self.lease_s, on_change=lambda: self.notifier.notify(name),
                                       seed=None if self.seed is None else [self.seed, zlib.crc32(name.encode())])
                if self.info.finished:
                    session.close_run()
                lab = self._labelers[name] = _Labeler(session)
            lab.last_seen = time.time()
            return lab

    def _drop(self, name: str) -> None:
        """End ``name``'s session: their held pairs go back to the queue."""
        with self._labelers_lock:
            lab = self._labelers.pop(name, None)
        if lab is not None:
            lab.session.close()
            self.notifier.notify(name)

    def stream_opened(self, name: str) -> None:
        self._labeler(name).streams += 1

    def stream_closed(self, name: str) -> None:
        with self._labelers_lock:
            lab = self._labelers.get(name)
        if lab is not None:
            lab.streams = max(lab.streams - 1, 0)
            lab.last_seen = time.time()

    # -- what the page shows -------------------------------------------------------------------------------

    def per_minute(self) -> float:
        """Answers per minute of every labeler on this server together: the ETA is the whole team's."""
        return sum(lab.session.stats.per_minute() for lab in self._labeler_list().values())

    def state(self, name: str) -> dict[str, Any]:
        """Everything ``name``'s page shows: the pair on screen (the next one is put there if ready), progress,
        and what the page waits for when there is no pair."""
        session = self._labeler(name).session
        item = session.next()
        pair = None
        if item is not None:
            pair = {"id": item.comparison.id, "left": f"/clips/{item.left.segment_id}.mp4",
                    "right": f"/clips/{item.right.segment_id}.mp4", "fps": item.fps,
                    "n_frames": max(item.left.n_frames, item.right.n_frames), "width": item.left.width,
                    "height": item.left.height, "shown": item.shown_at is not None}
        upcoming = [f"/clips/{clip.segment_id}.mp4" for i in session.queued() for clip in (i.left, i.right)]
        info = self.info
        return {"labeler": name, "instructions": self.instructions, "pair": pair, "upcoming": upcoming,
                "progress": progress_line(info, self.per_minute()), "agent": "   ".join(agent_words(info)),
                "waiting": None if pair else waiting_text(info, self.run.path, session, close="Close this page"),
                "preparing": pair is None and session.has_next(), "can_undo": bool(session.history),
                "idle": session.idle, "finished": info.finished}

    def clip(self, name: str, segment_id: int):
        """The file of a clip of a pair ``name`` holds (on screen or next), or None: no labeler fetches clips of
        pairs that are not theirs, and no path but the cache's is ever served."""
        with self._labelers_lock:
            lab = self._labelers.get(name)
        if lab is None:
            return None
        if any(segment_id in (i.left.segment_id, i.right.segment_id) for i in lab.session.held()):
            clip = self.cache.cached(segment_id)
            return None if clip is None else clip.path
        return None

    # -- what the labeler does -----------------------------------------------------------------------------

    def shown(self, name: str, pair: int) -> Reply:
        """The page has started playing ``pair``: from now on it may be answered (response time counts from here)."""
        lab = self._labeler(name)
        item = lab.session.current
        if item is None or item.comparison.id != pair:
            return self._not_on_screen(name, lab, pair)
        lab.session.shown(item)
        return Reply(200, {"shown": pair})

    def touch(self, name: str) -> Reply:
        """A key or a click on the page: the labeler is here (an idle session comes back)."""
        lab = self._labeler(name)
        lab.session.touch()
        return Reply(200, self.state(name))

    def answer(self, name: str, pair: int, choice: str, key: str) -> Reply:
        """Store ``name``'s ``choice`` (a key of ``CHOICES``) for ``pair``, once per request ``key``."""
        assert choice in CHOICES
        lab = self._labeler(name)
        with lab.lock:
            lab.session.touch()
            item = lab.session.current
            on_screen = item is not None and item.comparison.id == pair and item.shown_at is not None
            if not (on_screen and lab.session.answer(choice, comparison_id=pair, request_key=key)):
                done = self.store.event_of_request(key)
                if done is not None:  # a retry of a request that was stored: nothing more is stored
                    if done != (pair, name, "answer"):
                        return _error(409, "this request key was used for another answer; reload the page")
                    return Reply(200, {"saved": True, "repeated": True, "pair": pair, "state": self.state(name)})
                if item is None or item.comparison.id != pair:
                    return self._not_on_screen(name, lab, pair)
                if item.shown_at is None:
                    return _error(409, f"pair #{pair} has not been shown yet: wait until both clips play")
                return _error(409, f"pair #{pair} went back to the queue (another labeler took it); here is the next")
            self.n_answers += 1
            self._info_due = True
        label = item.label_for_first(choice)
        self.log(f"pbrl serve: {name} answered pair #{pair}: {SAID[choice]} (P(first) {label:g}, "
                 f"{time.time() - (item.shown_at or time.time()):.1f} s after it was shown)")
        return Reply(200, {"saved": True, "pair": pair, "said": SAID[choice], "state": self.state(name)})

    def undo(self, name: str, pair: int, key: str) -> Reply:
        """Take back ``name``'s last answer, which must be ``pair``, once per request ``key``; that pair is on
        screen again."""
        lab = self._labeler(name)
        with lab.lock:
            lab.session.touch()
            done = self.store.event_of_request(key)
            if done is not None:
                if done != (pair, name, "undo"):
                    return _error(409, "this request key was used for another request; reload the page")
                return Reply(200, {"undone": pair, "repeated": True, "state": self.state(name)})
            history = lab.session.history
            if not history:
                return _error(409, "nothing to undo on this page")
            if history[-1].comparison.id != pair:
                return _error(409, f"pair #{pair} is not your last answer on this page")
            try:
                if lab.session.undo(comparison_id=pair, request_key=key) is None:
                    return _error(409, f"pair #{pair} could not be taken back")
            except LeaseError:
                return _error(409, f"pair #{pair} has no answer of yours to take back")
        self._info_due = True
        self.log(f"pbrl serve: {name} took back the answer to pair #{pair}")
        return Reply(200, {"undone": pair, "state": self.state(name)})

    def leave(self, name: str) -> Reply:
        """The labeler quit (q): their pairs go back to the queue now, not after ``lease_s``."""
        self._drop(name)
        return Reply(200, {"left": True})

    def _not_on_screen(self, name: str, lab: _Labeler, pair: int) -> Reply:
        comp = self.store.comparison(pair)
        if comp is None:
            return _error(404, f"no pair #{pair} in this run")
        if comp.status != "pending" and comp.labeler == name:
            return _error(409, f"pair #{pair} is answered already (undo to change the answer)")
        if lab.session.find(pair) is not None:
            return _error(409, f"pair #{pair} is not on your screen yet")
        return _error(403, f"pair #{pair} is not yours to answer")

    # -- the maintenance thread ------------------------------------------------------------------------------

    def _labeler_list(self) -> dict[str, _Labeler]:
        """A copy of the labelers, taken under the lock (requests add labelers meanwhile)."""
        with self._labelers_lock:
            return dict(self._labelers)

    def _maintain(self) -> None:
        tokens_at = info_at = 0.0
        failed = ""
        while not self._stop.wait(TICK_S):
            try:
                now = time.time()
                if now - tokens_at >= 1.0:
                    tokens_at = now
                    self.refresh_tokens()
                    open_names = set(self._tokens.values())
                    for name in [n for n in self._labeler_list() if n not in open_names]:
                        self.log(f"pbrl serve: {name}'s invitation was revoked; their pairs went back to the queue")
                        self._drop(name)
                if now - info_at >= 1.0 or self._info_due:
                    info_at, self._info_due = now, False
                    info = self._watcher.read(self.info)
                    if info.finished:  # the pairs go back before any page is told the run has finished
                        for lab in self._labeler_list().values():
                            lab.session.close_run()
                    changed, self.info = info != self.info, info
                    if changed:
                        self.notifier.notify()
                for name, lab in self._labeler_list().items():
                    lab.session.maintain()
                    if lab.streams == 0 and now - lab.last_seen > self.away_s:
                        self._drop(name)
                failed = ""
            except Exception as exc:  # a store locked or a disk full for a while: say so once, and go on
                said = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
                if said != failed:
                    failed = said
                    self.log(f"pbrl serve: {said}")
