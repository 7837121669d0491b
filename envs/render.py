"""Frames of a MuJoCo body from saved simulator states: the clips people compare and the videos of a policy.

``ClipRenderer`` sets each saved state (qpos||qvel) in turn and renders it with a camera that tracks the body from
the side, with shadows and reflections off (they cost 2-5x the frame time in software rendering). On headless Linux
``pbrl.envs`` selects EGL before mujoco loads. A renderer is used from one thread only: the OpenGL context belongs
to the thread that made it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pbrl.envs.make import make_env
from pbrl.segments import Segment


class ClipRenderer:
    """Render MuJoCo segments of ``env_id`` from their saved states at ``size`` x ``size`` pixels."""

    def __init__(self, env_id: str, size: int = 256, max_episode_steps: int | None = None,
                 env_kwargs: dict[str, Any] | None = None):
        import mujoco  # after pbrl.envs (imported above), which picks the headless GL backend

        self.env = make_env(env_id, max_episode_steps=max_episode_steps, env_kwargs=env_kwargs)
        unwrapped = self.env.unwrapped
        if not hasattr(unwrapped, "model"):
            self.env.close()
            raise ValueError(f"{env_id} is not a MuJoCo env; clips and videos are rendered from MuJoCo states")
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
        return self.render_states(segment.states)

    def render_states(self, states: np.ndarray) -> np.ndarray:
        """One frame per saved state.  # (T, H, W, 3) uint8"""
        nq = self.model.nq
        out = np.empty((len(states), self.renderer.height, self.renderer.width, 3), dtype=np.uint8)
        for t, state in enumerate(states):
            self.data.qpos[:] = state[:nq]
            self.data.qvel[:] = state[nq:]
            self._mujoco.mj_forward(self.model, self.data)
            self.renderer.update_scene(self.data, camera=self.camera)
            out[t] = self.renderer.render()
        return out

    def close(self) -> None:
        self.renderer.close()
        self.env.close()
