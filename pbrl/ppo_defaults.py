"""PPO settings per env: the presets of ``pbrl.families`` as the dicts PPO is built from.

``normalize`` means observation normalisation (VecNormalize); pbrl applies the Zoo's reward normalisation itself,
after the reward is chosen, so the true-reward and learned-reward runs scale their rewards the same way.
"""

from __future__ import annotations

from typing import Any

from pbrl.families import PPO_BASE, ppo_preset

#: The settings ``--ppo KEY=VALUE`` can change.
PPO_KEYS = tuple(sorted(PPO_BASE))


def ppo_defaults(env_id: str, preset: str = "") -> dict[str, Any]:
    """A fresh dict of PPO settings for ``env_id`` from ``preset`` ("" = the env's default preset)."""
    return ppo_preset(env_id, preset)[0]


def policy_kwargs_for_sb3(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Turn the JSON-friendly policy kwargs (activation by name) into what SB3 takes."""
    from torch import nn

    out = dict(kwargs)
    if isinstance(out.get("activation_fn"), str):
        out["activation_fn"] = {"relu": nn.ReLU, "tanh": nn.Tanh}[out["activation_fn"]]
    return out
