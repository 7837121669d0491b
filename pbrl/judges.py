"""Scripted judges: stand-ins for a person teaching a behaviour that has no reward (a backflip, one-leg running).

A judge is a labeler (same interface as the synthetic oracle and the person in the window) that scores each segment
from its saved simulator states the way a person given the task's instruction would, and prefers the higher score.
It exists so the behaviour experiments can be run and tested without a person; it is **not** a reward the agent
sees, and it is deliberately plain. Scores that differ by less than ``tie`` are "equally good" (0.5): 0.3 rad
(17 degrees) of rotation is about what a person can tell apart in a short clip.

- ``backflip`` (pbrl/HopperBackflip-v0, "do a backflip and land on your foot"): the clip's score is a sum over its
  steps, so that a reward model, which sums a reward per step, can represent it exactly. Each step earns the torso's
  backward rotation in it, unless the torso or the thigh is on the floor (rolling along the ground is not a flip),
  and three times that while nothing touches the floor at all (a flip is turned in the air, not by tipping over).
  Forward rotation counts against the clip wherever it happens (coming back the way it went undoes the turn), and
  three times over once the torso is past a whole backward turn, so that swinging back and forth after the turn
  gains nothing. Every moment with the foot down after one or more whole backward turns, the torso and thigh off
  the floor, earns ``LANDED_RATE`` per second times how upright the torso is ((1 + cos angle) / 2: all of it
  upright, none upside down), so a foot put down after the turn is led towards a landing. Whole turns are read from
  the simulator's unwrapped torso angle, which is why the judge can tell a landed flip from standing still, even
  when the turn began before the clip. This is v16; fifteen earlier judges (``results/backflip_attempts.md``)
  taught standing, tipping over, rolling, rocking, spinning, or a leap onto the back, and no flip that held. Under
  v16, one learned-reward seed of seven flipped (900 labels, 1M steps); the others rock short of a whole turn.
  PPO on v12's score (this one with the landing only within 26 degrees of upright and forward rotation counted
  once) as its reward flipped within 250k steps in four seeds of seven (``results/backflip_dense.md``).
- ``one-leg`` (pbrl/HalfCheetahOneLeg-v0, "run forward on one leg"): forward distance covered while the front foot
  is off the ground, plus a quarter of the distance covered on both legs; flipping onto the back is worst.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from pbrl.segments import Segment, SegmentPair

LANDED_RATE = 30.0  # radians' worth per second with the foot down, upright, after whole backward turns
AIR_TURN_EXTRA = 2.0  # a backward turn while nothing touches the floor counts this much more again; so does a
#                       forward turn past a whole backward turn
LANDED_SLACK = 0.45  # radians: "past a whole turn" starts this short of one (about the upright tilt, 26 degrees)
FRONT_FOOT_UP_Z = 0.25  # metres: the cheetah's front foot counts as lifted above this
ON_BACK_PENALTY = 100.0  # metres' worth: a cheetah on its back loses to any running


class Judge:
    """Prefers the segment with the higher ``score``; needs segments with simulator states."""

    def __init__(self, name: str, env_id: str, score: Callable[[object, Segment], float], tie: float = 1e-3):
        from pbrl.envs import make_env

        env = make_env(env_id)
        self.kinematics = env.unwrapped._kin  # type: ignore[attr-defined]
        self.dt = float(env.unwrapped.dt)  # type: ignore[attr-defined]
        env.close()
        self.name, self.env_id, self._score, self.tie = f"judge:{name}", env_id, score, tie

    def score(self, segment: Segment) -> float:
        if segment.states is None:
            raise ValueError(f"{self.name} needs segments with simulator states (segment {segment.id} has none)")
        return float(self._score(self, segment))

    def __call__(self, pairs: Sequence[SegmentPair]) -> np.ndarray:
        labels = np.empty(len(pairs))
        for k, pair in enumerate(pairs):
            diff = self.score(pair.first) - self.score(pair.second)
            labels[k] = 0.5 if abs(diff) < self.tie else float(diff > 0)
        return labels


def backflip_terms(judge: Judge, states: np.ndarray) -> dict[str, np.ndarray]:
    """The backflip judge's score of each step between consecutive saved states, term by term.  # each (T-1,)

    ``backward``: backward rotation of the torso (rad) unless the torso or thigh is on the floor at the step's end;
    ``air``: ``AIR_TURN_EXTRA`` times the backward rotation when nothing touches the floor; ``forward``: any forward
    rotation (negative), ``1 + AIR_TURN_EXTRA`` times over past a whole turn; ``landing``: ``LANDED_RATE`` per second
    times (1 + cos angle) / 2 for ending the step with the foot down past a whole turn, the torso and thigh off the
    floor. "Past a whole turn" is the unwrapped angle at the step's end, within ``LANDED_SLACK`` of one or beyond.
    """
    q = judge.kinematics.describe(states)
    angle = q["torso_angle"]
    turned = -np.diff(angle)  # rooty decreases when the torso turns backwards
    back = np.maximum(turned, 0.0)
    after, feet, body_down = angle[1:], q["feet_down"][1:], q["body_down"][1:]
    past = after < -2 * math.pi + LANDED_SLACK
    landed = (feet & past & ~body_down) * (1.0 + np.cos(after)) / 2
    forward = np.minimum(turned, 0.0) * (1 + AIR_TURN_EXTRA * past)
    return {"backward": np.where(body_down, 0.0, back), "air": AIR_TURN_EXTRA * q["airborne"][1:] * back,
            "forward": forward, "landing": LANDED_RATE * judge.dt * landed}


def backflip_steps(judge: Judge, states: np.ndarray) -> np.ndarray:
    """The backflip judge's score of each step: the sum of ``backflip_terms``.  # (T-1,)"""
    return sum(backflip_terms(judge, states).values())


def backflip_score(judge: Judge, segment: Segment) -> float:
    """The sum of ``backflip_steps`` over the clip."""
    return float(backflip_steps(judge, segment.states).sum())


def one_leg_score(judge: Judge, segment: Segment) -> float:
    """Metres run forward with the front foot lifted, plus a quarter of the metres run on both legs (some
    progress, far less than asked); any time on its back makes the segment the worst."""
    q = judge.kinematics.describe(segment.states)
    step_m = q["forward_velocity"] * judge.dt
    lifted = q["front_foot_height"] > FRONT_FOOT_UP_Z
    on_back = float(np.mean(np.cos(q["torso_angle"]) < 0))
    return float(step_m[lifted].sum() + 0.25 * step_m[~lifted].sum() - ON_BACK_PENALTY * on_back)


#: judge name -> (env id it judges, score function, the instruction a person would be given)
JUDGES: dict[str, tuple[str, Callable, str]] = {
    "backflip": ("pbrl/HopperBackflip-v0", backflip_score, "do a backflip and land on your foot"),
    "one-leg": ("pbrl/HalfCheetahOneLeg-v0", one_leg_score, "run forward on one leg"),
}
ALIASES = {"backflip-judge": "judge:backflip", "one-leg-judge": "judge:one-leg"}


def judge_name(labeler: str) -> str | None:
    """The judge a ``--labeler`` value names (``judge:NAME`` or an alias), or None for other labelers."""
    labeler = ALIASES.get(labeler, labeler)
    return labeler.split(":", 1)[1] if labeler.startswith("judge:") else None


def make_judge(name: str) -> Judge:
    if name not in JUDGES:
        raise ValueError(f"unknown judge {name!r}; judges: {', '.join(JUDGES)}")
    env_id, score, _ = JUDGES[name]
    return Judge(name, env_id, score, tie=0.3)
