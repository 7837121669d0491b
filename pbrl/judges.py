"""Scripted judges: stand-ins for a person teaching a behaviour that has no reward (a backflip, one-leg running).

A judge is a labeler (the same interface as the synthetic oracle and the person in the window) that scores each
segment from its saved simulator states the way a person given the task's instruction would, and prefers the higher
score. It lets the behaviour experiments run and be tested without a person; it is **not** a reward the agent sees,
and it is deliberately plain. Scores that differ by less than ``tie`` are "equally good" (0.5): 0.3 rad (17 degrees)
of rotation is about what a person can tell apart in a short clip. ``JUDGES`` lists them: ``backflip``
(``backflip_terms`` says what each step earns) and ``one-leg`` (``one_leg_score``).
"""

# The backflip judge is the sixteenth version; the fifteen before it taught standing, tipping over, rolling, rocking,
# spinning or a leap onto the back (results/behaviours/backflip_attempts.md). Under it one learned-reward seed of
# seven flipped; PPO paid version 12's per-step score as its reward flipped in four seeds of seven
# (results/behaviours/backflip_dense.md).

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
        self.kinematics = env.unwrapped.kinematics  # type: ignore[attr-defined]
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

    The score is a sum over steps, so that a reward model, which sums a reward per step, can represent it exactly.
    Rotation is read from the simulator's unwrapped torso angle, which is how the judge tells a landed flip from
    standing still, even when the turn began before the clip. Rolling along the floor is not a flip, a flip is turned
    in the air, coming back the way it went undoes the turn, and swinging back and forth after a whole turn gains
    nothing; a foot put down after the turn is led towards a landing:

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
