"""Clips for the page: each segment rendered once, the way the window renders it, and encoded as H.264 MP4.

``ClipCache`` keeps them in ``RUN_DIR/web_clips/SIZEpx/`` (``seg-0000123.mp4`` with a ``.json`` beside it saying its
frame rate and size), so a clip is encoded once per run however many labelers see it and whichever server is
running. Its worker threads render ahead of the labelers: every second they look at the oldest pending comparisons
in the store and encode the segments not cached yet; a clip a labeler's session asks for goes first. Each worker owns
its renderer (an OpenGL context belongs to one thread) and encodes clips in batches, one ffmpeg process for several
(starting ffmpeg costs 50-100 ms, more than encoding a small clip: batches of 8 make 5-8 times more clips a second).
A clip is written under a temporary name and renamed, its ``.json`` last, so a killed server leaves whole clips or
none.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.segments import Segment
from pbrl.store import PreferenceStore
from pbrl.ui.render import RenderStopped

URGENT, AHEAD = 0, 1  # priorities: a clip a session waits for, a clip of a pending comparison
SCAN_S = 1.0  # how often the workers look for pending comparisons to encode ahead
SCAN_PAIRS = 100  # how many of the oldest pending comparisons they encode ahead
URGENT_BATCH, AHEAD_BATCH = 4, 8  # clips encoded by one ffmpeg process: waited for, ahead


@dataclass(frozen=True)
class EncodedClip:
    """One segment's clip, encoded."""

    segment_id: int
    path: Path
    fps: float
    n_frames: int
    width: int
    height: int


X264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-crf", "20",
        # a keyframe every 8 frames: the page seeks one clip to the other's time to keep them in lock-step
        "-g", "8", "-movflags", "+faststart", "-an", "-f", "mp4"]


def encode_mp4s(clips: Sequence[tuple[np.ndarray, Path]], fps: float) -> tuple[int, int]:
    """Write each ``(frames, path)`` of ``clips`` (frames (T, H, W, 3) uint8, one (H, W) for all) as an H.264 MP4
    at ``fps``: yuv420p, the moov atom first (a browser starts playing before the whole file is in), each under a
    temporary name renamed to its path. One ffmpeg process encodes them all (its start costs more than encoding a
    small clip): the clips go in as one stream and a ``trim`` per clip cuts it apart. Returns (width, height)."""
    import imageio_ffmpeg

    frames = [f for f, _ in clips]
    h, w = frames[0].shape[1:3]
    pad = ((0, 0), (0, h % 2), (0, w % 2), (0, 0))  # yuv420p needs even sides: one black row or column
    stream = b"".join(np.ascontiguousarray(np.pad(f, pad) if h % 2 or w % 2 else f).tobytes() for f in frames)
    bounds = np.cumsum([0] + [len(f) for f in frames])
    n = len(clips)
    graph = [f"[0:v]split={n}" + "".join(f"[s{i}]" for i in range(n))] if n > 1 else []
    graph += [f"[{f's{i}' if n > 1 else '0:v'}]trim=start_frame={bounds[i]}:end_frame={bounds[i + 1]},"
              f"setpts=PTS-STARTPTS[v{i}]" for i in range(n)]
    tmps = [path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.mp4") for _, path in clips]
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-s", f"{w + w % 2}x{h + h % 2}", "-r", f"{fps:g}", "-i", "-",
           "-filter_complex", ";".join(graph)]
    for i, tmp in enumerate(tmps):
        cmd += ["-map", f"[v{i}]", *X264, str(tmp)]
    try:
        done = subprocess.run(cmd, input=stream, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"ffmpeg could not encode the clips: {done.stderr.decode(errors='replace')[-500:]}")
        for tmp, (_, path) in zip(tmps, clips, strict=True):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    return w + w % 2, h + h % 2


class ClipCache:
    """Encoded clips of a run's segments, made by ``n_workers`` threads from ``renderer_factory()`` renderers."""

    def __init__(self, root: Path, store_path: Path, renderer_factory: Callable[[], Any], n_workers: int = 1,
                 ahead: bool = True):
        self.root, self.store_path, self.ahead = Path(root), Path(store_path), ahead
        self.root.mkdir(parents=True, exist_ok=True)
        self._renderer_factory = renderer_factory
        self._cond = threading.Condition()
        self._queue: list[tuple[int, int, int]] = []  # (priority, order, segment id): a heap
        self._queued: set[int] = set()
        self._working: set[int] = set()
        self._segments: dict[int, Segment] = {}  # handed in by sessions, so a worker need not read them again
        self._clips: dict[int, EncodedClip] = {}
        self._errors: dict[int, BaseException] = {}
        self._order = itertools.count()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"pbrl-clips-{i}", daemon=True)
                         for i in range(max(1, n_workers))]
        self.n_encoded = 0
        self.encode_s = 0.0

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=10)

    def path_of(self, segment_id: int) -> Path:
        """Where segment ``segment_id``'s clip is: a name made of the number alone, always inside ``root``."""
        return self.root / f"seg-{int(segment_id):07d}.mp4"

    def cached(self, segment_id: int) -> EncodedClip | None:
        """The clip of ``segment_id`` if it is encoded (by this server or an earlier one), else None."""
        with self._cond:
            if segment_id in self._clips:
                return self._clips[segment_id]
        path = self.path_of(segment_id)
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            clip = EncodedClip(segment_id, path, float(meta["fps"]), int(meta["n_frames"]), int(meta["width"]),
                               int(meta["height"]))
            if path.stat().st_size != int(meta["bytes"]):
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        with self._cond:
            self._clips[segment_id] = clip
        return clip

    def get(self, segment: Segment, should_stop: Callable[[], bool] | None = None) -> EncodedClip:
        """The clip of ``segment`` (stored, with an id), encoded first if need be: it jumps the queue. Raises
        ``RenderStopped`` once ``should_stop()`` is true, and what rendering raised if it failed."""
        assert segment.id is not None
        sid = int(segment.id)
        clip = self.cached(sid)
        if clip is not None:
            return clip
        with self._cond:
            self._segments[sid] = segment
            self._push(sid, URGENT)
            while sid not in self._clips:
                if sid in self._errors:
                    raise self._errors.pop(sid)
                if self._stop.is_set() or (should_stop is not None and should_stop()):
                    raise RenderStopped(f"stopped waiting for the clip of segment {sid}")
                self._cond.wait(0.1)
            return self._clips[sid]

    def _push(self, sid: int, priority: int) -> None:
        """Queue ``sid`` (under the condition); an urgent request of a queued segment queues it again, first."""
        if sid in self._working or (sid in self._queued and priority == AHEAD):
            return
        self._queued.add(sid)
        heapq.heappush(self._queue, (priority, next(self._order), sid))
        self._cond.notify()

    def _take(self, store: PreferenceStore, last_scan: list[float]) -> list[int]:
        """The next segments to encode together, waiting for some: up to ``URGENT_BATCH`` that sessions wait for,
        else up to ``AHEAD_BATCH`` of pending comparisons; looks at the store for pending work every ``SCAN_S``."""
        while not self._stop.is_set():
            if self.ahead and time.monotonic() - last_scan[0] > SCAN_S:
                last_scan[0] = time.monotonic()
                todo = [s for s in store.pending_segment_ids(SCAN_PAIRS) if self.cached(s) is None]
                with self._cond:
                    for sid in todo:
                        self._push(sid, AHEAD)
            with self._cond:
                batch: list[int] = []
                while self._queue and len(batch) < (URGENT_BATCH if self._queue[0][0] == URGENT else AHEAD_BATCH):
                    priority, _, sid = heapq.heappop(self._queue)
                    if sid in self._queued and sid not in self._working and sid not in self._clips:
                        self._queued.discard(sid)
                        self._working.add(sid)
                        batch.append(sid)
                    if batch and self._queue and self._queue[0][0] != priority:
                        break
                if batch:
                    return batch
                self._cond.wait(SCAN_S)
        return []

    def _work(self) -> None:
        store = PreferenceStore(self.store_path, readonly=True)
        renderer = None
        last_scan = [0.0]
        try:
            while batch := self._take(store, last_scan):
                try:
                    if renderer is None:
                        renderer = self._renderer_factory()
                    self._encode(renderer, store, batch)
                except RenderStopped:
                    break
                except Exception as exc:  # handed to the sessions that wait for these clips, shown on their page
                    with self._cond:
                        self._errors.update({sid: exc for sid in batch})
                finally:
                    with self._cond:
                        self._working.difference_update(batch)
                        self._cond.notify_all()
        finally:
            if renderer is not None and hasattr(renderer, "close"):
                renderer.close()
            store.close()

    def _encode(self, renderer: Any, store: PreferenceStore, batch: list[int]) -> None:
        """Render the segments of ``batch`` not cached yet, and encode those of one size and frame rate together."""
        t0 = time.perf_counter()
        groups: dict[tuple[int, int, float], dict[int, tuple[np.ndarray, Path]]] = {}
        for sid in batch:
            if self.cached(sid) is not None:
                continue
            with self._cond:
                segment = self._segments.pop(sid, None)
            frames = renderer.frames(segment if segment is not None else store.segment(sid),
                                     should_stop=self._stop.is_set)  # (T, H, W, 3) uint8
            groups.setdefault((*frames.shape[1:3], float(renderer.fps)), {})[sid] = (frames, self.path_of(sid))
        for (_, _, fps), clips in groups.items():
            width, height = encode_mp4s(list(clips.values()), fps)
            for sid, (frames, path) in clips.items():
                clip = EncodedClip(sid, path, fps, len(frames), width, height)
                meta = {"fps": fps, "n_frames": len(frames), "width": width, "height": height,
                        "bytes": path.stat().st_size}
                tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.json")
                tmp.write_text(json.dumps(meta))
                os.replace(tmp, path.with_suffix(".json"))
                with self._cond:
                    self._clips[clip.segment_id] = clip
                    self.n_encoded += 1
        with self._cond:
            self.encode_s += time.perf_counter() - t0


class CachedClips:
    """A session's "renderer" on the page: the clip of a segment is its encoded file in the cache."""

    def __init__(self, cache: ClipCache):
        self.cache = cache
        self.fps = 30.0

    def frames(self, segment: Segment, should_stop: Callable[[], bool] | None = None) -> EncodedClip:
        clip = self.cache.get(segment, should_stop)
        self.fps = clip.fps
        return clip

    def close(self) -> None:
        pass  # the cache's workers own the renderers
