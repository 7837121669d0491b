"""The configuration of a training run: one tree of typed dataclasses (``pbrl.config.tree``) whose field docs become
the CLI's ``--help``, each knob declared once.

A run directory stores the resolved config (every default filled in, PPO settings included) as ``config.json``;
``validate`` turns bad values into one clear ``ConfigError`` line with the fix.
"""

from pbrl.config.checks import check_ppo_preset
from pbrl.config.env_defaults import family_defaults, registry_values, value_sources
from pbrl.config.knobs import ConfigError, default_of, flag_of, flat_name
from pbrl.config.train import GROUPS, KNOBS, TrainConfig
from pbrl.config.tree import (
    INITIAL_POLICIES,
    LABELERS,
    REWARD_INPUTS,
    REWARDS,
    VEC_ENVS,
    WHEN_FULL,
    MethodConfig,
    PPOConfig,
    RewardConfig,
    TeacherConfig,
)

__all__ = ["GROUPS", "INITIAL_POLICIES", "KNOBS", "LABELERS", "REWARDS", "REWARD_INPUTS", "VEC_ENVS", "WHEN_FULL",
           "ConfigError", "MethodConfig", "PPOConfig", "RewardConfig", "TeacherConfig", "TrainConfig",
           "check_ppo_preset", "default_of", "family_defaults", "flag_of", "flat_name", "registry_values",
           "value_sources"]
