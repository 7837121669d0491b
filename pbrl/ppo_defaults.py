"""PPO hyperparameters per env: the RL Baselines3 Zoo's tuned MuJoCo settings, and SB3's defaults elsewhere.

``normalize`` means observation normalisation (VecNormalize); pbrl applies the Zoo's reward normalisation itself,
after the reward is chosen, so the true-reward and learned-reward runs scale their rewards the same way.
"""

from __future__ import annotations

from typing import Any

_BIG_RELU = {"log_std_init": -2, "ortho_init": False, "activation_fn": "relu",
             "net_arch": {"pi": [256, 256], "vf": [256, 256]}}

_DEFAULT: dict[str, Any] = {
    "n_envs": 1, "normalize": True, "n_steps": 2048, "batch_size": 64, "n_epochs": 10, "gamma": 0.99,
    "gae_lambda": 0.95, "learning_rate": 3e-4, "ent_coef": 0.0, "clip_range": 0.2, "max_grad_norm": 0.5,
    "vf_coef": 0.5, "policy_kwargs": {},
}

# rl-baselines3-zoo hyperparams/ppo.yml (v3 entries; the v5 envs share the dynamics)
_ZOO: dict[str, dict[str, Any]] = {
    "Hopper": {"n_steps": 512, "batch_size": 32, "gamma": 0.999, "learning_rate": 9.80828e-05,
               "ent_coef": 0.00229519, "clip_range": 0.2, "n_epochs": 5, "gae_lambda": 0.99, "max_grad_norm": 0.7,
               "vf_coef": 0.835671, "policy_kwargs": _BIG_RELU},
    "HalfCheetah": {"n_steps": 512, "batch_size": 64, "gamma": 0.98, "learning_rate": 2.0633e-05,
                    "ent_coef": 0.000401762, "clip_range": 0.1, "n_epochs": 20, "gae_lambda": 0.92,
                    "max_grad_norm": 0.8, "vf_coef": 0.58096, "policy_kwargs": _BIG_RELU},
    "Walker2d": {"n_steps": 512, "batch_size": 32, "gamma": 0.99, "learning_rate": 5.05041e-05,
                 "ent_coef": 0.000585045, "clip_range": 0.1, "n_epochs": 20, "gae_lambda": 0.95,
                 "max_grad_norm": 1.0, "vf_coef": 0.871923},
    "Reacher": {"n_steps": 512, "batch_size": 32, "gamma": 0.9, "learning_rate": 0.000104019,
                "ent_coef": 7.52585e-08, "clip_range": 0.3, "n_epochs": 5, "gae_lambda": 1.0,
                "max_grad_norm": 0.9, "vf_coef": 0.950368},
}


# pbrl's behaviour envs (envs/behaviours.py) use the settings of the body they are built on
_BODY = {"HopperBackflip": "Hopper", "HalfCheetahOneLeg": "HalfCheetah"}


# rl-baselines3-zoo hyperparams/ppo.yml, atari (the linear schedules of lr and clip range kept constant here)
_ATARI: dict[str, Any] = {
    "policy": "CnnPolicy", "n_envs": 8, "normalize": False, "n_steps": 128, "batch_size": 256, "n_epochs": 4,
    "gamma": 0.99, "gae_lambda": 0.95, "learning_rate": 2.5e-4, "ent_coef": 0.01, "clip_range": 0.1,
    "max_grad_norm": 0.5, "vf_coef": 0.5, "policy_kwargs": {},
}


#: The settings ``--ppo KEY=VALUE`` can change.
PPO_KEYS = tuple(sorted(_DEFAULT))


def ppo_defaults(env_id: str) -> dict[str, Any]:
    """A fresh dict of PPO settings for ``env_id`` (Zoo-tuned where the Zoo has them)."""
    if env_id.startswith("ALE/"):
        return {**_ATARI, "policy_kwargs": {}}
    base = env_id.split("/")[-1].split("-v")[0]
    body = _BODY.get(base, base)
    out = {**_DEFAULT, **_ZOO.get(body, {})}
    out["policy_kwargs"] = dict(out["policy_kwargs"])
    if body != base and "log_std_init" in out["policy_kwargs"]:
        # a new behaviour is found by trying things: start with 3x the Zoo's action noise (std 0.37, not 0.14)
        out["policy_kwargs"]["log_std_init"] = -1
    return out


def policy_kwargs_for_sb3(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Turn the JSON-friendly policy kwargs (activation by name) into what SB3 takes."""
    from torch import nn

    out = dict(kwargs)
    if isinstance(out.get("activation_fn"), str):
        out["activation_fn"] = {"relu": nn.ReLU, "tanh": nn.Tanh}[out["activation_fn"]]
    return out
