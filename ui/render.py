"""Clips for people: frames rendered from a segment's saved simulator states, only for the pairs being asked.

``ClipRenderer`` (in ``pbrl.envs.render``, shared with ``pbrl video``) renders MuJoCo states, square.
Atari segments are replayed in full colour from their saved emulator states (``AtariClipRenderer``), at the screen's
160:210 aspect. Segments without saved states get what their observations show: frame stacks their newest 84x84
frame, vectors a plain picture of the observation per step, both square, so every run can be labelled and the app
can be tested anywhere. A renderer is used from one thread only: the OpenGL context belongs to the thread that made it.

Every renderer here answers ``FrameRenderer``: ``clip_shape`` says the (height, width) of its clips before any is
rendered (``clip_shape_for`` says it from the env id alone, for a window that lays out its panels before its
background thread has built the renderer), and ``frames(segment, should_stop)`` gives up between two frames with
``RenderStopped`` once ``should_stop()`` is true, so closing a window never waits for a clip to finish.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from pbrl.envs.atari import AtariClipRenderer
from pbrl.envs.render import ClipRenderer, RenderStopped, check_clip_size
from pbrl.families import game_of
from pbrl.segments import Segment

__all__ = ["AutoRenderer", "ClipRenderer", "FrameRenderer", "ObservationBars", "RenderStopped", "StackedFrames",
           "clip_shape_for"]


class FrameRenderer(Protocol):
    fps: float

    @property
    def clip_shape(self) -> tuple[int, int]:
        """(height, width) in pixels of the clips ``frames`` returns, known before any segment is rendered."""

    def frames(self, segment: Segment, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """The clip of one segment; raises ``RenderStopped`` between frames once ``should_stop()`` is true.
        # (T, H, W, 3) uint8, (H, W) == clip_shape"""

    def close(self) -> None:
        """Free the simulator and its GL context (quick; from the thread that rendered)."""


def clip_shape_for(env_id: str, size: int) -> tuple[int, int]:
    """(height, width) of the clips ``AutoRenderer(env_id, size)`` replays from saved states, from the id alone:
    Atari games keep the screen's aspect, everything else is square."""
    return AtariClipRenderer.shape_for(size) if game_of(env_id) is not None else ClipRenderer.shape_for(size)


class ObservationBars:
    """A frame per step showing each observation component as a bar around a middle line (no simulator needed)."""

    def __init__(self, size: int = 256, fps: float = 30.0):
        self.size, self.fps = size, fps

    @property
    def clip_shape(self) -> tuple[int, int]:
        return self.size, self.size

    def frames(self, segment: Segment, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        obs = segment.obs.reshape(segment.length, -1).astype(np.float32)
        scale = float(np.abs(obs).max()) or 1.0
        n_dims, s = obs.shape[1], self.size
        width = max(1, (s - 8) // max(n_dims, 1))
        out = np.full((segment.length, s, s, 3), 245, dtype=np.uint8)
        out[:, s // 2, :] = 160
        mid = s // 2
        for t in range(segment.length):
            if should_stop is not None and should_stop():
                raise RenderStopped(f"stopped after {t} of {segment.length} frames")
            for d in range(n_dims):
                h = int(round(obs[t, d] / scale * (s // 2 - 4)))
                lo, hi = (mid - h, mid) if h >= 0 else (mid, mid - h)
                x0 = 4 + d * width
                out[t, lo:hi, x0:x0 + max(1, width - 2)] = (40, 90, 200) if h >= 0 else (200, 80, 40)
        return out

    def close(self) -> None:
        pass  # nothing to free


class StackedFrames:
    """Image observations (T, frames, H, W): the newest frame of each step's stack, grey, scaled to ``size``."""

    def __init__(self, size: int = 256, fps: float = 15.0):
        self.size, self.fps = size, fps  # 15 agent steps/s: Atari's 60 Hz with a frameskip of 4

    @property
    def clip_shape(self) -> tuple[int, int]:
        return self.size, self.size  # the observations are square (84x84); the agent sees them so

    def frames(self, segment: Segment, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """``should_stop`` is not asked: the whole clip is one array operation of a few milliseconds."""
        newest = segment.obs[:, -1]  # (T, H, W) uint8
        h, w = newest.shape[1:]
        rows = np.arange(self.size) * h // self.size
        cols = np.arange(self.size) * w // self.size
        grey = newest[:, rows][:, :, cols]  # nearest-neighbour scaling
        return np.repeat(grey[..., None], 3, axis=-1)

    def close(self) -> None:
        pass  # nothing to free


#: The frame rate a window shows at most; MuJoCo clips of faster envs are thinned to it.
DISPLAY_FPS = 60.0


class AutoRenderer:
    """Clips replayed from saved states where segments carry them (MuJoCo or Atari, by the env id), pictures of the
    observations otherwise. The simulator is built on first use, in the thread that renders."""

    def __init__(self, env_id: str, size: int = 256, max_episode_steps: int | None = None,
                 env_kwargs: dict[str, Any] | None = None):
        self.env_id, self.size, self.max_episode_steps = env_id, check_clip_size(size), max_episode_steps
        self.env_kwargs = env_kwargs
        self._atari = game_of(env_id) is not None
        self._clips: ClipRenderer | AtariClipRenderer | None = None
        self._bars = ObservationBars(size)
        self._stacked = StackedFrames(size)
        self.fps = self._bars.fps

    @property
    def clip_shape(self) -> tuple[int, int]:
        """(height, width) of clips replayed from saved states, decided by the env id; segments without states
        (runs recorded before states were saved) come as ``size`` x ``size`` pictures of their observations."""
        return clip_shape_for(self.env_id, self.size)

    def _renderer_for(self, segment: Segment) -> FrameRenderer:
        if segment.states is None:
            return self._stacked if segment.obs.ndim == 4 else self._bars
        if self._clips is None:
            self._clips = (AtariClipRenderer(self.env_id, self.size) if self._atari else
                           ClipRenderer(self.env_id, self.size, self.max_episode_steps, self.env_kwargs))
        return self._clips

    def frames(self, segment: Segment, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        renderer = self._renderer_for(segment)
        if isinstance(renderer, ClipRenderer) and renderer.fps > DISPLAY_FPS:
            # a screen shows 60 frames a second: of Hopper's 125 steps a second every other one is drawn, which
            # halves the time a pair takes to render (it could not keep up with a person at 400 px)
            every = int(renderer.fps // DISPLAY_FPS)
            self.fps = renderer.fps / every
            return renderer.render_states(segment.states[::every], should_stop)
        self.fps = renderer.fps
        return renderer.frames(segment, should_stop)

    def close(self) -> None:
        if self._clips is not None:
            self._clips.close()
