"""Can PPO learn the Hopper backflip at all when the backflip score is its reward, step by step?

    python scripts/experiments/backflip_dense_sweep.py --variant torso+clean+land --seed 2 --steps 300000 \\
        --out runs/dense/s2

This is the question under the scripted-judge experiment: a judge whose clip score is a sum of per-step terms can be
represented exactly by a reward model, and PPO on those terms directly is what that reward model aims for. Each
run is plain SB3 PPO (pbrl's Hopper settings) on ``pbrl/HopperBackflip-v0`` with the reward below, and every
``--every`` steps it prints one JSON line: steps, minutes, backflips in 5 deterministic episodes
(``count_backflips``, as ``pbrl eval`` counts them), each episode's return and its lowest torso angle.

A variant names its reward terms, joined by "+" (per step of 0.008 s):
- ``torso`` / ``wb``: the turn is the torso's backward rotation in the step, or the whole body's (its angular
  momentum about the centre of mass over its standing inertia, times dt; a bend at the hip does not turn it).
- ``clean``: the turn counts unless the torso or thigh touches the floor; a forward turn always counts against.
- ``clean2``: as ``clean``, and the leg (shin) on the floor counts as the body down too: only the foot may touch.
- ``air``: the backward turn counts while nothing touches the floor (``air2``: twice). ``wbair2``: as ``air2``, but
  the turn counted in the air is the whole body's (in the air its angular momentum is fixed, so folding at the hip
  earns nothing there).
- ``air1``: with ``air2``, the extra counts only for the episode's first whole turn (the change in
  min(-angle, 2π), the unwrapped angle from the start, which a judge reads from any clip): turning on past a turn,
  spinning or rocking, earns only the plain turn, which a swing back takes away again.
- ``fwd3``: forward turning counts against three times (as much as a backward turn in the air earns with
  ``air2``), wherever it happens, so a rock whose backward swings are in the air and forward swings on the floor no
  longer gains on each swing.
- ``fwd3t``: as ``fwd3``, but only past a whole turn (the torso's unwrapped angle below -2π + the landing slack at the
  step's end): before the first turn the rock and the spin that grows out of it pay as under ``air2``; after it, a
  swing back costs what the swing out earned, so only turning on or landing gains.
- ``fwd3a``: with ``fwd3t``, forward turning while nothing touches the floor counts three times as well, the mirror of
  ``air2``: a swing back and forth in the air (folding and unfolding at the hip turns the torso) gains nothing.
- ``land``: 10 a second standing upright on the foot after whole backward turns (``land3``: 30, ``land10``: 100).
- ``hup``: 5 a second per metre the torso is above its standing height.
- ``soft``: with ``land``, standing on the foot after the turn pays in proportion to cos(torso angle) (above 0)
  instead of only within 26° of upright.
- ``near``: with a landing term, the foot down after whole turns, the torso and thigh off the floor, pays the landing
  rate times (1 + cos(torso angle))/2: nearly all of it upright, nothing upside down, so that a foot put down
  upside down after the turn (the learned runs' spin) is led towards a landing. Replaces the upright, 0.7 m test.
- ``one``: only the first whole turn counts (the torso's turn is measured as the change in min(-angle, 2π), so
  spinning on past one turn, or coming back from an overshoot, earns and costs nothing).
- ``armed``: a flip starts from the foot. The backward turn counts only from standing upright on the foot until the
  torso or thigh next touches the floor, and at most one whole turn from where it last stood; turning on after
  landing on the back (kicking off the floor, spinning) earns nothing until it is back on its foot.
``torso+clean+air2+land3+near+fwd3t`` is the committed judge's score (v16, ``pbrl.judges.backflip_steps``), step for
step; v12 was ``torso+clean+air2+land3`` and v11 ``torso+clean+land``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import gymnasium as gym
import mujoco
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import pbrl.envs  # noqa: F401  (registers the behaviour envs)
from pbrl.envs.behaviours import count_backflips, upright
from pbrl.judges import LANDED_SLACK
from pbrl.ppo_defaults import policy_kwargs_for_sb3, ppo_defaults

ENV_ID = "pbrl/HopperBackflip-v0"
DT = 0.008
AIR_EXTRA_OF = {"air": 1.0, "air2": 2.0}  # a backward turn in the air counts this much more again
ON_FOOT_HEIGHT = 0.7  # metres: a landing holds the torso at least this high (except ``near``)
LANDING_RATES = {"land": 10.0, "land3": 30.0, "land10": 100.0}  # per second standing upright after whole turns


class DenseBackflipReward(gym.Wrapper):
    """Pays the variant's per-step backflip reward (module docstring) in place of the env's zero."""

    def __init__(self, env: gym.Env, variant: str):
        super().__init__(env)
        self.terms = set(variant.split("+"))
        self.model, self.data = env.unwrapped.model, env.unwrapped.data
        self.floor = self.model.geom("floor").id
        body = ("torso_geom", "thigh_geom") + (("leg_geom",) if "clean2" in self.terms else ())
        self.body_geoms = {self.model.geom(g).id for g in body}
        mujoco.mj_forward(self.model, self.data)
        com = self.data.subtree_com[1]
        self.inertia = sum(self.model.body_mass[b] * ((self.data.xipos[b] - com)[[0, 2]] ** 2).sum()
                           + self.model.body_inertia[b][1] for b in range(1, self.model.nbody))

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.previous_angle = float(self.data.qpos[2])
        self.armed, self.stood_at = True, self.previous_angle  # ``armed``: it starts standing on its foot
        return obs, info

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        d, terms = self.data, self.terms
        angle, height = float(d.qpos[2]), float(d.qpos[1])
        torso_turn = self.previous_angle - angle
        if "one" in terms:
            torso_turn = min(-angle, 2 * math.pi) - min(-self.previous_angle, 2 * math.pi)
        body_down = any((c.geom1 if c.geom2 == self.floor else c.geom2) in self.body_geoms
                        for c in d.contact[:d.ncon])
        if "armed" in terms:
            if info["feet_down"] and height > ON_FOOT_HEIGHT and upright(angle) and not body_down:
                self.armed, self.stood_at = True, angle
            backward = (min(self.stood_at - angle, 2 * math.pi)
                        - min(self.stood_at - self.previous_angle, 2 * math.pi))
            torso_turn = min(torso_turn, 0.0) + (max(backward, 0.0) if self.armed else 0.0)
            self.armed = self.armed and not body_down
        previous, self.previous_angle = self.previous_angle, angle
        mujoco.mj_subtreeVel(self.model, d)
        body_turn = -float(d.subtree_angmom[1][1]) / self.inertia * DT
        turn = body_turn if "wb" in terms else torso_turn
        after_turn = info["feet_down"] and angle < -2 * math.pi + LANDED_SLACK
        if "near" in terms:  # any foot-down after the turn, off the floor, paid by how upright
            landed = (after_turn and not body_down) * (1.0 + math.cos(angle)) / 2
        else:  # ``soft``: paid by how upright, so a tilted landing earns some; else only within 26° of upright
            uprightness = max(math.cos(angle), 0.0) if "soft" in terms else float(upright(angle))
            landed = (after_turn and height > ON_FOOT_HEIGHT) * uprightness
        reward = 0.0
        if terms & {"clean", "clean2"}:
            reward += turn if (turn < 0 or not body_down) else 0.0
        if ("fwd3" in terms or ("fwd3t" in terms and angle < -2 * math.pi + LANDED_SLACK)
                or ("fwd3a" in terms and d.ncon == 0)):
            reward += AIR_EXTRA_OF["air2"] * min(turn, 0.0)  # forward turning costs as much as the air earns
        if terms & {"air", "air2", "wbair2"}:  # ``air1`` modifies air2
            air_turn = body_turn if "wbair2" in terms else turn
            if "air1" in terms:  # the extra only for the episode's first whole turn, counted from the start
                air_turn = min(-angle, 2 * math.pi) - min(-previous, 2 * math.pi)
            reward += AIR_EXTRA_OF["air" if "air" in terms else "air2"] * (d.ncon == 0) * max(air_turn, 0.0)
        for term in terms & LANDING_RATES.keys():
            reward += LANDING_RATES[term] * DT * landed
        if "hup" in terms:
            reward += 5.0 * DT * max(0.0, height - 1.25)
        return obs, reward, terminated, truncated, info


def evaluate(model: PPO, stats: VecNormalize, variant: str, episodes: int = 5, seed: int = 100):
    env = DenseBackflipReward(gym.make(ENV_ID), variant)
    flips, returns, lowest = [], [], []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        angles, feet, total, done = [], [], 0.0, False
        while not done:
            action, _ = model.predict(stats.normalize_obs(obs[None]), deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action[0])
            angles.append(info["torso_angle"])
            feet.append(info["feet_down"])
            total += reward
            done = terminated or truncated
        flips.append(count_backflips(np.array(angles), np.array(feet)))
        returns.append(round(total, 2))
        lowest.append(round(min(angles), 2))
    return flips, returns, lowest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="torso+clean+land")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--every", type=int, default=25_000)
    p.add_argument("--log-std", type=float, default=-1.0, help="initial log std of the policy's actions")
    p.add_argument("--ppo", action="append", default=[], metavar="KEY=VALUE",
                   help="override a PPO setting (its value as JSON), e.g. --ppo ent_coef=0.01")
    p.add_argument("--out", default=None, help="JSON lines go here (and OUT.policy.zip, OUT.vn.pkl); else stdout")
    a = p.parse_args()
    torch.set_num_threads(1)
    hp = ppo_defaults(ENV_ID)  # pbrl's PPO preset for the env, with --ppo's JSON values over it
    for key, _, value in (item.partition("=") for item in a.ppo):
        try:
            hp[key] = json.loads(value) if key in hp else p.error(f"--ppo: KEY is one of {', '.join(sorted(hp))}")
        except json.JSONDecodeError:
            p.error(f"--ppo {key}: {value!r} is not JSON")
    for key in ("n_envs", "normalize", "policy"):
        hp.pop(key, None)
    policy_kwargs = {**policy_kwargs_for_sb3(hp.pop("policy_kwargs")), "log_std_init": a.log_std}
    venv = VecNormalize(DummyVecEnv([lambda: DenseBackflipReward(gym.make(ENV_ID), a.variant)]), gamma=hp["gamma"])
    model = PPO("MlpPolicy", venv, seed=a.seed, policy_kwargs=policy_kwargs, verbose=0, device="cpu", **hp)
    out = open(a.out, "w") if a.out else sys.stdout
    start = time.time()
    while model.num_timesteps < a.steps:
        model.learn(a.every, reset_num_timesteps=False)
        flips, returns, lowest = evaluate(model, venv, a.variant)
        print(json.dumps({"variant": a.variant, "seed": a.seed, "log_std": a.log_std, "ppo": a.ppo,
                          "steps": model.num_timesteps,
                          "min": round((time.time() - start) / 60, 1), "flips": flips, "ret": returns,
                          "minang": lowest}), file=out, flush=True)
        if a.out:
            model.save(a.out + ".policy.zip")
            venv.save(a.out + ".vn.pkl")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
