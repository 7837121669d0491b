"""Scripted judges: stand-ins for a person teaching a behaviour that has no reward (a backflip, one-leg running).

A judge is a labeler (same interface as the synthetic oracle and the person in the window) that scores each segment
from its saved simulator states the way a person given the task's instruction would, and prefers the higher score.
It exists so the behaviour experiments can be run and tested without a person; it is **not** a reward the agent
sees, and it is deliberately plain. Scores that differ by less than ``tie`` are "equally good" (0.5): 0.3 rad
(17 degrees) of rotation is about what a person can tell apart in a short clip.

- ``backflip`` (pbrl/HopperBackflip-v0, "do a backflip and land on your foot"): more net backward rotation of the
  torso, while it is up off the floor, is better (rolling along the ground is not a flip), and rotation in the air
  (nothing touching the floor) counts three times, as far as it is net rotation (rocking back in the air and forward
  on the ground earns nothing); forward rotation, anywhere, counts against the clip three times over, as much as
  turning back in the air earned (coming back the way it went is undoing the flip); a jump is better than staying
  low; getting back up on the foot after turning, at any moment of the clip, is better than falling (and getting
  partly up, torso rising upright, is better than lying after the turn), and a whole flip landed within the clip is
  best; lying still on the ground is worst. Standing still earns nothing (a first version paid the landing bonus for
  it and taught the agent to stand); without the air term agents settled on tipping over backwards, with the landing
  counted only at the clip's end they tumbled backwards along the ground without ever landing, with rotation counted
  anywhere they rolled along it, curled up, and with forward rotation counted only while up they leapt back onto the
  head and rolled forward again, over and over, and with only a full landing paid they rolled backwards over onto
  the ground and lay there (``results/backflip_attempts.md``).
- ``one-leg`` (pbrl/HalfCheetahOneLeg-v0, "run forward on one leg"): forward distance covered while the front foot
  is off the ground, plus a quarter of the distance covered on both legs; flipping onto the back is worst.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from pbrl.segments import Segment, SegmentPair

LANDED_BONUS = 3.0  # radians' worth: back up on the foot after a turn beats almost half a turn further but fallen
GETTING_UP_SHARE = 0.5  # of the landing bonus, at most, for coming upright after a turn without being on the foot
FLIP_BONUS = 2 * math.pi  # a whole backflip landed inside the clip counts as a second turn on top of its rotation
ON_FOOT_HEIGHT = 0.7  # metres: a landing holds the torso at least this high (upright and low is a body on the floor)
LIFTED_HEIGHT = 0.9  # metres: rotation counts while the torso is this high; a hopper rolling on the ground is lower
STUCK_PENALTY = 1.0  # lying on the ground without turning is the worst segment there is
AIR_SPIN_BONUS = 2.0  # backward rotation with no part of the body on the ground counts three times in all: a
#                     backward leap that turns is a flip begun, a tip-over onto the back is not
UNDO_COST = 1.0 + AIR_SPIN_BONUS  # per radian of forward rotation, anywhere: undoing a turn costs what turning
#                                  back in the air earned, so a leap back that comes down on the head and rolls
#                                  forward again is worth no more than standing
JUMP_BONUS = 5.0  # per metre the torso rises above its standing height: a jump is closer to a flip than a fall
STANDING_HEIGHT = 1.25  # metres, the Hopper torso's height standing upright
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


def backflip_score(judge: Judge, segment: Segment) -> float:
    """Backward rotation (rad) with the torso up off the floor, with twice more for rotation while airborne, less
    three times the forward rotation anywhere, + a bonus for getting back up on the foot after turning + a bonus
    per whole flip landed in the clip + a bonus for jumping (the torso's rise above standing height) - a penalty
    for lying still.

    The landing bonus is scaled by how far the torso turned backwards before it came upright on the foot (full from
    half a turn on), so standing still upright is not a landing: a judge that paid for it taught the agent to stand.
    """
    # loads MuJoCo, so only when a backflip is judged
    from pbrl.envs.behaviours import UPRIGHT_COS, count_backflips, upright

    q = judge.kinematics.describe(segment.states)
    angle, height, feet = q["torso_angle"], q["torso_height"], q["feet_down"]
    rotation = float(angle[0] - angle[-1])  # rooty decreases when the torso turns backwards
    turned = -np.diff(angle)  # backward rotation in each step
    # net backward rotation in the steps that start with the torso up: a v7 judge that counted all of it taught
    # rolling along the ground, curled up (6 rad a 1.5 s clip, torso 0.26 m high)
    lifted = height[:-1] > LIFTED_HEIGHT
    # forward rotation counts against the clip wherever it happens: a v8 judge that counted it only while lifted
    # taught bending back onto the head while up and coming forward again low down, for net pay every rock
    lifted_rotation = float(turned[lifted & (turned > 0)].sum() + UNDO_COST * turned[turned < 0].sum())
    air_rotation = float(turned[lifted & q["airborne"][:-1]].sum())  # turned in steps that start up in the air
    # the air bonus pays only for net backward rotation: a v5 judge without this cap taught rocking back in the air
    # and forward on the ground (net rotation 0, air rotation 0.6 rad a segment)
    air_rotation = min(max(air_rotation, 0.0), max(rotation, 0.0))
    on_foot = feet & upright(angle) & (height > ON_FOOT_HEIGHT)
    # backward turn completed at each step, from the most forward angle before it, less the tilt that still counts
    # as upright: rocking back and up onto the foot again earns nothing
    tilt = math.acos(UPRIGHT_COS)
    turn_before = np.maximum.accumulate(angle) - angle - tilt
    # getting up after the turn earns a share of the landing on the way: torso uprightness times its height, so a
    # body that rolled over and lies still earns nothing and one halfway up on its foot earns part (v9 agents
    # rolled backwards along the ground to 290 degrees and lay there)
    rising = np.clip(np.cos(angle), 0.0, 1.0) * np.clip(height / STANDING_HEIGHT, 0.0, 1.0)
    up = np.where(on_foot, 1.0, GETTING_UP_SHARE * rising)
    landed = float((np.clip(turn_before / (np.pi - tilt), 0.0, 1.0) * up).max())
    flips = count_backflips(angle, feet & (height > ON_FOOT_HEIGHT))
    jump = max(0.0, float(height.max()) - STANDING_HEIGHT)
    stuck = float(np.mean(height < 0.6)) > 0.5 and abs(rotation) < 0.5
    return (lifted_rotation + AIR_SPIN_BONUS * air_rotation + LANDED_BONUS * landed + FLIP_BONUS * flips
            + JUMP_BONUS * jump - STUCK_PENALTY * stuck)


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
