"""Clips for people: frames rendered from a segment's saved simulator states, only for the pairs being asked.

``ClipRenderer`` (in ``pbrl.envs.render``, shared with ``pbrl video``) renders MuJoCo states.
Atari segments are replayed in full colour from their saved emulator states (``AtariClipRenderer``). Segments
without saved states get what their observations show: frame stacks their newest 84x84 frame, vectors a plain
picture of the observation per step, so every run can be labelled and the app can be tested anywhere.
A renderer is used from one thread only: the OpenGL context belongs to the thread that made it.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from pbrl.envs.atari import AtariClipRenderer
from pbrl.envs.render import ClipRenderer
from pbrl.segments import Segment

__all__ = ["AutoRenderer", "ClipRenderer", "FrameRenderer", "ObservationBars", "StackedFrames"]


class FrameRenderer(Protocol):
    fps: float

    def frames(self, segment: Segment) -> np.ndarray:
        """The clip of one segment.  # (T, H, W, 3) uint8"""


class ObservationBars:
    """A frame per step showing each observation component as a bar around a middle line (no simulator needed)."""

    def __init__(self, size: int = 256, fps: float = 30.0):
        self.size, self.fps = size, fps

    def frames(self, segment: Segment) -> np.ndarray:
        obs = segment.obs.reshape(segment.length, -1).astype(np.float32)
        scale = float(np.abs(obs).max()) or 1.0
        n_dims, s = obs.shape[1], self.size
        width = max(1, (s - 8) // max(n_dims, 1))
        out = np.full((segment.length, s, s, 3), 245, dtype=np.uint8)
        out[:, s // 2, :] = 160
        mid = s // 2
        for t in range(segment.length):
            for d in range(n_dims):
                h = int(round(obs[t, d] / scale * (s // 2 - 4)))
                lo, hi = (mid - h, mid) if h >= 0 else (mid, mid - h)
                x0 = 4 + d * width
                out[t, lo:hi, x0:x0 + max(1, width - 2)] = (40, 90, 200) if h >= 0 else (200, 80, 40)
        return out


class StackedFrames:
    """Image observations (T, frames, H, W): the newest frame of each step's stack, grey, scaled to ``size``."""

    def __init__(self, size: int = 256, fps: float = 15.0):
        self.size, self.fps = size, fps  # 15 agent steps/s: Atari's 60 Hz with a frameskip of 4

    def frames(self, segment: Segment) -> np.ndarray:
        newest = segment.obs[:, -1]  # (T, H, W) uint8
        h, w = newest.shape[1:]
        rows = np.arange(self.size) * h // self.size
        cols = np.arange(self.size) * w // self.size
        grey = newest[:, rows][:, :, cols]  # nearest-neighbour scaling
        return np.repeat(grey[..., None], 3, axis=-1)


class AutoRenderer:
    """MuJoCo clips where segments carry simulator states, observation bars otherwise (built on first use)."""

    def __init__(self, env_id: str, size: int = 256, max_episode_steps: int | None = None,
                 env_kwargs: dict[str, Any] | None = None):
        self.env_id, self.size, self.max_episode_steps = env_id, size, max_episode_steps
        self.env_kwargs = env_kwargs
        self._clips: ClipRenderer | AtariClipRenderer | None = None
        self._bars = ObservationBars(size)
        self._stacked = StackedFrames(size)
        self.fps = self._bars.fps

    def frames(self, segment: Segment) -> np.ndarray:
        if segment.states is not None and self.env_id.startswith("ALE/"):
            if self._clips is None:
                from pbrl.envs.atari import AtariClipRenderer

                self._clips = AtariClipRenderer(self.env_id, self.size)
            self.fps = self._clips.fps
            return self._clips.frames(segment)
        if segment.states is None and segment.obs.ndim == 4:
            self.fps = self._stacked.fps
            return self._stacked.frames(segment)
        if segment.states is None:
            self.fps = self._bars.fps
            return self._bars.frames(segment)
        if self._clips is None:
            self._clips = ClipRenderer(self.env_id, self.size, self.max_episode_steps, self.env_kwargs)
        self.fps = self._clips.fps
        return self._clips.frames(segment)

    def close(self) -> None:
        if self._clips is not None:
            self._clips.close()
