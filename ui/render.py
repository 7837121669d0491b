"""Clips for people: frames rendered from a segment's saved simulator states, only for the pairs being asked.

``ClipRenderer`` sets each saved MuJoCo state (qpos||qvel) in turn and renders it with a camera that tracks the
body from the side, with shadows and reflections off (they cost 2-5x the frame time in software rendering).
Segments without simulator states (classic-control envs, or stores written without them) get a plain picture of
the observation vector per step instead, so every run can be labelled and the app can be tested anywhere.
A renderer is used from one thread only: the OpenGL context belongs to the thread that made it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pbrl.envs import make_env
from pbrl.segments import Segment


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


class ClipRenderer:
    """Render MuJoCo segments of ``env_id`` from their saved states at ``size`` x ``size`` pixels."""

    def __init__(self, env_id: str, size: int = 256, max_episode_steps: int | None = None):
        import mujoco  # after pbrl.envs (imported above), which picks the headless GL backend

        self.env = make_env(env_id, max_episode_steps=max_episode_steps)
        unwrapped = self.env.unwrapped
        self.model, self.data = unwrapped.model, unwrapped.data  # type: ignore[attr-defined]
        self.fps = float(unwrapped.metadata.get("render_fps") or round(1.0 / unwrapped.dt))  # type: ignore[attr-defined]
        self.renderer = mujoco.Renderer(self.model, size, size)
        flags = self.renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        cam_cfg = dict(getattr(getattr(unwrapped, "mujoco_renderer", None), "default_cam_config", None) or {})
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        self.camera.trackbodyid = 1  # the root body (Hopper's torso, the cheetah's torso): stays in view in a flip
        self.camera.distance = float(cam_cfg.get("distance", 1.5 * self.model.stat.extent))
        self.camera.elevation = float(cam_cfg.get("elevation", -20.0))
        self.camera.azimuth = float(cam_cfg.get("azimuth", 90.0))  # side view of the planar bodies
        self._mujoco = mujoco

    def frames(self, segment: Segment) -> np.ndarray:
        if segment.states is None:
            raise ValueError(f"segment {segment.id} has no simulator states to render")
        nq = self.model.nq
        out = np.empty((segment.length, self.renderer.height, self.renderer.width, 3), dtype=np.uint8)
        for t, state in enumerate(segment.states):
            self.data.qpos[:] = state[:nq]
            self.data.qvel[:] = state[nq:]
            self._mujoco.mj_forward(self.model, self.data)
            self.renderer.update_scene(self.data, camera=self.camera)
            out[t] = self.renderer.render()
        return out

    def close(self) -> None:
        self.renderer.close()
        self.env.close()


class AutoRenderer:
    """MuJoCo clips where segments carry simulator states, observation bars otherwise (built on first use)."""

    def __init__(self, env_id: str, size: int = 256, max_episode_steps: int | None = None):
        self.env_id, self.size, self.max_episode_steps = env_id, size, max_episode_steps
        self._clips: ClipRenderer | None = None
        self._bars = ObservationBars(size)
        self.fps = self._bars.fps

    def frames(self, segment: Segment) -> np.ndarray:
        if segment.states is None:
            self.fps = self._bars.fps
            return self._bars.frames(segment)
        if self._clips is None:
            self._clips = ClipRenderer(self.env_id, self.size, self.max_episode_steps)
        self.fps = self._clips.fps
        return self._clips.frames(segment)

    def close(self) -> None:
        if self._clips is not None:
            self._clips.close()
