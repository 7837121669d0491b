"""The checks that a single knob's metadata cannot express: the labeler (a judge judges one env), the device (CUDA
must be there), the env's PPO presets, and the PPO settings SB3 would reject only once PPO is built (with asserts).
Each failure is one ``ConfigError`` line with the fix."""

from __future__ import annotations

from typing import Any

from pbrl.config.knobs import ConfigError
from pbrl.config.tree import LABELERS


def check_labeler(labeler: str, env_id: str) -> None:
    from pbrl.judges import JUDGES, judge_name

    judge = judge_name(labeler)
    if labeler not in LABELERS and judge not in JUDGES:
        names = ", ".join([*LABELERS, *(f"judge:{j}" for j in JUDGES)])
        raise ConfigError(f"--labeler must be one of {names}, got {labeler!r}")
    if judge is not None and JUDGES[judge][0] != env_id:
        env = JUDGES[judge][0]
        raise ConfigError(f"--labeler judge:{judge} judges {env}; run it with --env {env}")


def check_device(device: str) -> None:
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: this torch sees no CUDA GPU; use --device cpu (or auto)")


def check_ppo_preset(env_id: str, preset: str) -> None:
    """Raise ``ConfigError`` unless ``preset`` ("" = the env's default) is one of ``env_id``'s PPO presets."""
    from pbrl.families import preset_names

    if preset and preset not in preset_names(env_id):
        raise ConfigError(f"--ppo-preset {preset!r} is not one of {env_id}'s: {', '.join(preset_names(env_id))}")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _number(value: Any) -> bool:
    return isinstance(value, int | float)


def check_ppo_settings(ppo: dict[str, Any], n_envs: int, total_timesteps: int) -> None:
    from pbrl.families import LR_SCHEDULES

    for key in ("n_steps", "batch_size", "n_epochs"):
        if not _positive_int(ppo.get(key)):
            raise ConfigError(f"PPO {key} must be a positive integer, got {ppo.get(key)!r}")
    for key in ("learning_rate", "clip_range", "max_grad_norm"):
        if key in ppo and not (_number(ppo[key]) and ppo[key] > 0):
            raise ConfigError(f"PPO {key} must be a positive number, got {ppo[key]!r}")
    if ppo.get("lr_schedule", "constant") not in LR_SCHEDULES:
        raise ConfigError(f"PPO lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {ppo['lr_schedule']!r}")
    for key in ("gamma", "gae_lambda"):
        if key in ppo and not (_number(ppo[key]) and 0 < ppo[key] <= 1):
            raise ConfigError(f"PPO {key} must be in (0, 1], got {ppo[key]!r}")
    for key in ("ent_coef", "vf_coef"):
        if key in ppo and not (_number(ppo[key]) and ppo[key] >= 0):
            raise ConfigError(f"PPO {key} must be a number >= 0, got {ppo[key]!r}")
    if "policy_kwargs" in ppo and not isinstance(ppo["policy_kwargs"], dict):
        raise ConfigError(f"PPO policy_kwargs must be a JSON object, e.g. '{{\"net_arch\": [64, 64]}}', "
                          f"got {ppo['policy_kwargs']!r}")
    if ppo["batch_size"] < 2:
        raise ConfigError("PPO batch_size must be at least 2 (advantages are normalised per minibatch); "
                          "pass --ppo batch_size=N")
    n_envs = n_envs or int(ppo.get("n_envs", 1))
    if ppo["n_steps"] * n_envs < 2:
        raise ConfigError("a PPO rollout must hold at least 2 steps (advantages are normalised over it); "
                          "pass --ppo n_steps=N with N >= 2")
    if total_timesteps < ppo["n_steps"] * n_envs:
        raise ConfigError(f"--total-timesteps {total_timesteps} is less than one PPO rollout "
                          f"({ppo['n_steps']} steps x {n_envs} envs); raise it or pass --ppo n_steps=N")
