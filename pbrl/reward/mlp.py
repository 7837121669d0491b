"""The reward ensemble for vector observations: MLPs r(o, a) with stacked weights.

All members live in one module with stacked weights, so the whole ensemble evaluates a rollout or a batch of
segments in a single batched matrix product. Inputs are standardised with statistics of the labelled steps; the
output normalisation, checkpoints and the averaged reward are ``EnsembleBase``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pbrl.config.tree import RewardConfig
from pbrl.reward.base import EnsembleBase, check_stats


@dataclass(frozen=True)
class RewardModelConfig:
    """Shape of the reward ensemble."""

    obs_dim: int
    act_dim: int
    n_members: int = RewardConfig.n_members
    hidden: int = RewardConfig.hidden
    n_layers: int = 2
    leaky_slope: float = 0.01
    discrete_actions: bool = False
    # r(o, a) as in the paper; False: r(o), for tasks whose true reward is the state's
    use_actions: bool = RewardConfig().use_actions

    def __post_init__(self):
        if self.n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {self.n_members}")
        if self.hidden < 1 or self.n_layers < 1:
            raise ValueError(f"hidden and n_layers must be >= 1, got {self.hidden}, {self.n_layers}")


class _StackedMLP(nn.Module):
    """``n_members`` MLPs evaluated together: x (n_members, N, in) -> (n_members, N)."""

    def __init__(self, cfg: RewardModelConfig, in_dim: int):
        super().__init__()
        sizes = [in_dim] + [cfg.hidden] * cfg.n_layers + [1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(cfg.n_members, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(cfg.n_members, 1, fan_out).uniform_(-bound, bound)))
        self.slope = cfg.leaky_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < n - 1:
                x = torch.nn.functional.leaky_relu(x, self.slope)
        return x.squeeze(-1)

    def l2(self) -> torch.Tensor:
        """Sum of squared weights per member.  # (n_members,)"""
        return sum(w.pow(2).sum(dim=(1, 2)) for w in self.weights)  # type: ignore[return-value]


class _FeaturePairs:
    """The labelled pairs as standardised features on the model's device, indexed by (members, pairs)."""

    def __init__(self, feats: torch.Tensor, obs: np.ndarray, acts: np.ndarray):
        self.feats = feats  # (N, 2, T, in)
        self.obs, self.acts = obs, acts

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        return self.feats[idx]  # (M, P, 2, T, in)

    def pairs(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.obs[idx], self.acts[idx]


class RewardEnsemble(EnsembleBase, kind="mlp"):
    """An ensemble of reward nets r(o, a) with input standardisation and per-member output normalisation."""

    eval_chunk = 256  # 256 Hopper pairs of 50 steps: 10 MB of hidden activations a member
    # 200 recent segments (10,000 steps of 50) pin each member's mean and std down as well as the whole buffer does,
    # at a fifth of the pass the round pays after every fit
    max_stats_segments = 200

    def __init__(self, cfg: RewardModelConfig):
        super().__init__()
        self.cfg = cfg
        in_dim = cfg.obs_dim + (cfg.act_dim if cfg.use_actions else 0)
        self.net = _StackedMLP(cfg, in_dim)
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))
        self._init_output_stats(cfg.n_members)

    @classmethod
    def config_from(cls, saved: dict) -> RewardModelConfig:
        return RewardModelConfig(**saved)

    def features(self, obs: np.ndarray | torch.Tensor, acts: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Standardised inputs: obs (*lead, *obs_shape), acts (*lead, act_dim) -> (*lead, in)."""
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        acts_t = torch.as_tensor(acts, dtype=torch.float32, device=self.device)
        lead = obs_t.shape[: acts_t.dim() - 1]
        x = torch.cat([obs_t.reshape(*lead, -1), acts_t if self.cfg.use_actions else acts_t[..., :0]], dim=-1)
        return (x - self.in_mean) / self.in_std

    def pair_source(self, obs: np.ndarray, acts: np.ndarray) -> _FeaturePairs:
        return _FeaturePairs(self.features(obs, acts), obs, acts)

    def raw(self, obs: np.ndarray | torch.Tensor, acts: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Unnormalised member rewards. obs (*lead, *obs_shape), acts (*lead, act_dim) -> (n_members, *lead)."""
        x = self.features(obs, acts)  # (*lead, in)
        lead = x.shape[:-1]
        flat = x.reshape(1, -1, x.shape[-1]).expand(self.n_members, -1, -1)
        return self.net(flat).reshape(self.n_members, *lead)

    def _chunk_returns(self, source: _FeaturePairs, idx: np.ndarray) -> torch.Tensor:
        """From the features the fit computed once, not from the steps again.  # (M, P, 2)"""
        x = source.feats[torch.as_tensor(idx, device=self.device)]  # (P, 2, T, in)
        p, _, t, d = x.shape
        return self.net(x.reshape(1, -1, d).expand(self.n_members, -1, -1)).reshape(self.n_members, p, 2, t).sum(-1)

    def raw_per_member(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised rewards for member-specific features: x (n_members, N, in) -> (n_members, N)."""
        return self.net(x)

    def member_pair_returns(self, feats: torch.Tensor) -> torch.Tensor:
        """Each member's returns of its own pairs: feats (M, P, 2, T, in) -> (M, P, 2)."""
        m, p, _, t, d = feats.shape
        return self.raw_per_member(feats.reshape(m, p * 2 * t, d)).reshape(m, p, 2, t).sum(-1)

    @torch.no_grad()
    def fit_input_stats(self, obs: np.ndarray, acts: np.ndarray) -> None:
        """Standardise inputs with the statistics of these steps: obs (N, ...), acts (N, act_dim).

        Raises ``NonFiniteError`` (and keeps the old statistics) when the new ones would be NaN or inf."""
        acts_t = torch.as_tensor(acts, dtype=torch.float32, device=self.device)
        x = torch.cat([torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(len(obs), -1),
                       acts_t if self.cfg.use_actions else acts_t[..., :0]], dim=-1)  # (N, in)
        mean = x.mean(0)  # (in,)
        std = x.std(0).clamp_min(1e-3) if len(x) > 1 else torch.ones_like(self.in_mean)  # (in,)
        check_stats("input", torch.cat([mean, std]), self, obs, acts)
        self.in_mean.copy_(mean)
        self.in_std.copy_(std)

    def fit_input_stats_on_pairs(self, obs: np.ndarray, acts: np.ndarray) -> None:
        """``fit_input_stats`` over every step of the labelled pairs obs (N, 2, T, ...), acts (N, 2, T, act_dim)."""
        self.fit_input_stats(obs.reshape(-1, *obs.shape[3:]), acts.reshape(-1, acts.shape[-1]))
