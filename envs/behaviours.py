"""Environments for behaviours nobody wrote a reward for: the paper's Hopper backflip and cheetah on one leg.

Both are the Gymnasium v5 bodies with no early termination, a fixed episode length and **no task reward**: the env
pays 0, and ``info`` carries what a judge (a person, or ``pbrl.judges``) looks at. They are registered as
``pbrl/HopperBackflip-v0`` and ``pbrl/HalfCheetahOneLeg-v0`` when ``pbrl.envs`` is imported.

The quantities are computed from the simulator state (qpos||qvel, the same state a segment saves for its clip), so
a judge can recompute them for any stored segment: ``HopperKinematics`` and ``CheetahKinematics`` do that.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv

FOOT_DOWN_Z = 0.12  # foot geom centre height (m) below which a Hopper foot counts as on the ground
UPRIGHT_COS = 0.9  # cos(torso angle) above which the torso counts as upright (|angle mod 2pi| < ~26 degrees)

# A camera far enough back to keep a flipping hopper (or a rearing cheetah) in view, following the torso.
_CAMERA = {"trackbodyid": 1, "distance": 4.0, "lookat": np.array([0.0, 0.0, 1.0]), "elevation": -10.0}


class _Kinematics:
    """Positions of named geoms for a batch of saved states, by forward kinematics on a private MjData."""

    def __init__(self, model: mujoco.MjModel):
        self.model, self.data = model, mujoco.MjData(model)

    def _posed(self, states: np.ndarray, collide: bool = False):
        """Put the private MjData in each saved state in turn (positions only; with ``collide``, contacts too)."""
        nq = self.model.nq
        step = mujoco.mj_fwdPosition if collide else mujoco.mj_kinematics
        for state in states:
            self.data.qpos[:] = state[:nq]
            step(self.model, self.data)
            yield self.data

    def geom_z(self, states: np.ndarray, geoms: list[str]) -> np.ndarray:
        """Height of each geom's centre at each state.  # (T, n_geoms)"""
        ids = [self.model.geom(g).id for g in geoms]
        return np.array([d.geom_xpos[ids, 2] for d in self._posed(states)]).reshape(len(states), len(ids))

    def touching(self, states: np.ndarray, geoms: list[str] | None = None) -> np.ndarray:
        """Whether any part of the body touches something at each state; with ``geoms``, whether any of those parts
        touches the floor (the body folded onto itself is not on the floor).  # (T,) bool"""
        if geoms is None:
            return np.array([d.ncon > 0 for d in self._posed(states, collide=True)], dtype=bool)
        ids, floor = {self.model.geom(g).id for g in geoms}, self.model.geom("floor").id
        return np.array([any({int(c.geom1), int(c.geom2)} - {floor} <= ids and floor in (c.geom1, c.geom2)
                             for c in d.contact[:d.ncon])
                         for d in self._posed(states, collide=True)], dtype=bool)


class HopperKinematics(_Kinematics):
    """What a backflip judge sees in a Hopper state: torso angle (unwrapped), angular velocity, height, feet."""

    def describe(self, states: np.ndarray) -> dict[str, np.ndarray]:
        nq = self.model.nq
        return {
            "torso_angle": states[:, 2].astype(np.float64),  # rooty; + leans forward, so a backflip turns it down
            "torso_angular_velocity": states[:, nq + 2].astype(np.float64),
            "torso_height": states[:, 1].astype(np.float64),
            "feet_down": self.geom_z(states, ["foot_geom"])[:, 0] < FOOT_DOWN_Z,
            "airborne": ~self.touching(states),
            # the torso or the thigh on the floor: the body is down (rolling, lying), not on its foot or in the air
            "body_down": self.touching(states, ["torso_geom", "thigh_geom"]),
        }


def upright(angle: np.ndarray | float) -> np.ndarray | bool:
    return np.cos(angle) > UPRIGHT_COS


def count_backflips(angle: np.ndarray, feet_down: np.ndarray) -> int:
    """Full backflips in a trajectory: 2*pi of net backward rotation since the last landing, then feet down with
    the torso upright (which is the next landing)."""
    flips, ref = 0, float(angle[0])
    for a, down in zip(angle, feet_down, strict=True):
        if down and upright(a):
            if ref - a >= 2 * math.pi - 0.3:  # allow a landing a little short of a whole turn (17 degrees)
                flips += 1
            ref = float(a)
    return flips


class HopperBackflipEnv(HopperEnv):
    """Hopper-v5 body, fixed-length episodes, reward 0; ``info`` holds the backflip quantities."""

    def __init__(self, **kwargs):
        kwargs.setdefault("default_camera_config", _CAMERA)
        super().__init__(terminate_when_unhealthy=False, ctrl_cost_weight=0.0, healthy_reward=0.0,
                         forward_reward_weight=0.0, **kwargs)
        self._kin = HopperKinematics(self.model)

    @property
    def kinematics(self) -> HopperKinematics:
        """What a backflip judge computes from saved states of this body (``pbrl.judges``)."""
        return self._kin

    def _judge_info(self) -> dict[str, float | bool]:
        state = np.concatenate([self.data.qpos, self.data.qvel])[None]
        info = {k: v[0] for k, v in self._kin.describe(state).items()}
        return {k: bool(v) if isinstance(v, np.bool_) else float(v) for k, v in info.items()}

    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, 0.0, terminated, truncated, {**info, **self._judge_info()}


class CheetahKinematics(_Kinematics):
    """What a one-leg judge sees in a HalfCheetah state: forward velocity, torso pitch, each foot's height."""

    def describe(self, states: np.ndarray) -> dict[str, np.ndarray]:
        nq = self.model.nq
        feet = self.geom_z(states, ["bfoot", "ffoot"])
        return {
            "forward_velocity": states[:, nq].astype(np.float64),
            "torso_angle": states[:, 2].astype(np.float64),
            "back_foot_height": feet[:, 0],
            "front_foot_height": feet[:, 1],
        }


class HalfCheetahOneLegEnv(HalfCheetahEnv):
    """HalfCheetah-v5 body, reward 0; ``info`` holds forward velocity, torso pitch and both foot heights."""

    def __init__(self, **kwargs):
        kwargs.setdefault("default_camera_config", {**_CAMERA, "distance": 5.0, "lookat": np.array([0, 0, 0.5])})
        super().__init__(ctrl_cost_weight=0.0, forward_reward_weight=0.0, **kwargs)
        self._kin = CheetahKinematics(self.model)

    @property
    def kinematics(self) -> CheetahKinematics:
        """What a one-leg judge computes from saved states of this body (``pbrl.judges``)."""
        return self._kin

    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        state = np.concatenate([self.data.qpos, self.data.qvel])[None]
        extra = {k: float(v[0]) for k, v in self._kin.describe(state).items()}
        return obs, 0.0, terminated, truncated, {**info, **extra}


