"""Frames of a MuJoCo body from saved simulator states: the clips people compare and the videos of a policy.

``ClipRenderer`` sets each saved state (qpos||qvel) in turn and renders it with a camera that tracks the body from
the side, with shadows and reflections off (they cost 2-5x the frame time in software rendering). Clips are square,
``size`` x ``size`` pixels, any size from ``MIN_CLIP_SIZE`` to ``MAX_CLIP_SIZE``: the model's offscreen framebuffer
(640x480 unless its XML says otherwise) is enlarged to fit. On headless Linux ``pbrl.envs`` selects EGL before mujoco
loads. A renderer is used from one thread only: the OpenGL context belongs to the thread that made it.

A clip can be abandoned between two frames: ``frames(segment, should_stop)`` raises ``RenderStopped`` as soon as
``should_stop()`` is true, so a window that quits never waits for a whole clip (the Atari renderer does the same).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from pbrl.envs.clips import MAX_CLIP_SIZE, MIN_CLIP_SIZE, RenderStopped, check_clip_size
from pbrl.envs.make import make_env
from pbrl.segments import Segment

__all__ = ["MAX_CLIP_SIZE", "MIN_CLIP_SIZE", "ClipRenderer", "RenderStopped", "check_clip_size"]

# MuJoCo's default offscreen framebuffer, which every GL driver that runs MuJoCo can allocate.
DEFAULT_BUFFER_HEIGHT = 480


class ClipRenderer:
    """Render MuJoCo segments of ``env_id`` from their saved states at ``size`` x ``size`` pixels."""

    def __init__(self, env_id: str, size: int = 256, max_episode_steps: int | None = None,
                 env_kwargs: dict[str, Any] | None = None):
        import mujoco  # after pbrl.envs (imported above), which picks the headless GL backend

        check_clip_size(size)
        self.size = size
        self.env = make_env(env_id, max_episode_steps=max_episode_steps, env_kwargs=env_kwargs)
        unwrapped = self.env.unwrapped
        if not hasattr(unwrapped, "model"):
            self.env.close()
            raise ValueError(f"{env_id} is not a MuJoCo env; clips and videos are rendered from MuJoCo states")
        self.model, self.data = unwrapped.model, unwrapped.data  # type: ignore[attr-defined]
        self.fps = float(unwrapped.metadata.get("render_fps") or round(1.0 / unwrapped.dt))  # type: ignore[attr-defined]
        # mujoco.Renderer refuses images larger than the model's offscreen framebuffer; only this renderer draws
        # from this env's model, so growing the buffer changes nothing else.
        buffer = self.model.vis.global_
        buffer.offwidth, buffer.offheight = max(buffer.offwidth, size), max(buffer.offheight, size)
        try:
            self.renderer = mujoco.Renderer(self.model, size, size)
        except (mujoco.FatalError, ValueError, RuntimeError) as exc:  # the GL driver cannot allocate the buffer
            self.env.close()
            reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            raise ValueError(f"{size} px MuJoCo clips cannot be rendered here (MUJOCO_GL="
                             f"{os.environ.get('MUJOCO_GL', '')}: {reason}); sizes from {MIN_CLIP_SIZE} to "
                             f"{DEFAULT_BUFFER_HEIGHT} px work with every GL driver") from None
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

    @staticmethod
    def shape_for(size: int) -> tuple[int, int]:
        """The (height, width) of clips at ``size``: square, the tracking camera's view."""
        return size, size

    @property
    def clip_shape(self) -> tuple[int, int]:
        """(height, width) of every clip this renderer makes, ``frames(...).shape[1:3]``."""
        return self.shape_for(self.size)

    def frames(self, segment: Segment, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """The clip of one segment, or ``RenderStopped`` once ``should_stop()`` is true.  # (T, H, W, 3) uint8"""
        if segment.states is None:
            raise ValueError(f"segment {segment.id} has no simulator states to render")
        return self.render_states(segment.states, should_stop)

    def render_states(self, states: np.ndarray, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """One frame per saved state (``should_stop`` is asked before each frame).  # (T, H, W, 3) uint8"""
        nq = self.model.nq
        out = np.empty((len(states), *self.clip_shape, 3), dtype=np.uint8)
        for t, state in enumerate(states):
            if should_stop is not None and should_stop():
                raise RenderStopped(f"stopped after {t} of {len(states)} frames")
            self.data.qpos[:] = state[:nq]
            self.data.qvel[:] = state[nq:]
            self._mujoco.mj_forward(self.model, self.data)
            self.renderer.update_scene(self.data, camera=self.camera)
            out[t] = self.renderer.render()
        return out

    def close(self) -> None:
        self.renderer.close()  # safe to call twice
        self.env.close()
