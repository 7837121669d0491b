"""Environment construction for pbrl: one function, ``make_env``, builds the env for an id.

Every wrapper that pbrl applies is listed, in order, in ``make_env``. The no-leak rule of the paper lives here:
episodes have a fixed length, so that neither the agent nor the reward model can read the reward off when an
episode ends. The loop, the evaluation and the UI all build their envs through this module. An id may name the
module that registers a user's own env, as ``gym.make`` takes it (``"my_pkg.envs:Reach-v0"``); ``env_kwargs`` go to
the env's constructor; what pbrl cannot use is refused with one ``EnvSpecError`` line. Every wrapper records its
arguments, so ``gym.make(env.spec)`` rebuilds the env ``make_env`` returned.
"""

import os
import sys

# Headless Linux (no X display): MuJoCo renders offscreen through EGL unless the user chose a backend. This must be
# set before mujoco is first imported, which happens when the first MuJoCo env is made.
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as _gym  # noqa: I001

from pbrl.envs.make import EnvSpecError, make_env, validate_env_id
from pbrl.envs.wrappers import FrozenTerminalState, RecordSimulatorState

# The behaviour envs (envs/behaviours.py), registered by name: the module loads only when one is made.
# A backflip episode is 2 s (250 steps): time to crouch, turn and land, and a failed try costs little lying time,
# so the agent gets many fresh tries; the one-leg cheetah runs the usual 1,000 steps.
for _id, _entry, _steps in (("pbrl/HopperBackflip-v0", "HopperBackflipEnv", 250),
                            ("pbrl/HalfCheetahOneLeg-v0", "HalfCheetahOneLegEnv", 1000)):
    if _id not in _gym.registry:
        _gym.register(_id, entry_point=f"pbrl.envs.behaviours:{_entry}", max_episode_steps=_steps)

__all__ = [
    "EnvSpecError",
    "FrozenTerminalState",
    "RecordSimulatorState",
    "make_env",
    "validate_env_id",
]  # noqa: E402
