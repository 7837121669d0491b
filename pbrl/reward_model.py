"""The reward ensemble: ``(obs, acts) -> rewards (n_members, B, T)`` and the Bradley-Terry loss it is fitted with.

All members live in one module with stacked weights, so the whole ensemble evaluates a rollout or a batch of
segments in a single batched matrix product. Inputs are standardised with statistics of recent observations;
each member's output is normalised to mean 0 and std 1 over recent segments (the paper's per-member
normalisation), and ``mean_reward`` averages the normalised members. Statistics that come out NaN or inf raise
``NonFiniteError`` with their cause instead of silently poisoning every reward after them. Checkpoints carry their
config.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pbrl.finite import (
    NonFiniteError,
    can_be_nonfinite,
    describe_nonfinite,
    describe_nonfinite_parameters,
    first_nonfinite,
)

#: The paper's assumption that the labeler answers uniformly at random 10 % of the time.
RANDOM_ANSWER_PROB = 0.1


@dataclass(frozen=True)
class RewardModelConfig:
    """Shape of the reward ensemble."""

    obs_dim: int
    act_dim: int
    n_members: int = 3
    hidden: int = 64
    n_layers: int = 2
    leaky_slope: float = 0.01
    discrete_actions: bool = False
    use_actions: bool = True  # r(o, a) as in the paper; False: r(o), for tasks whose true reward is the state's

    def __post_init__(self):
        if self.n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {self.n_members}")
        if self.hidden < 1 or self.n_layers < 1:
            raise ValueError(f"hidden and n_layers must be >= 1, got {self.hidden}, {self.n_layers}")


def bradley_terry_loss(
    returns_first: torch.Tensor, returns_second: torch.Tensor, labels: torch.Tensor,
    random_answer_prob: float = RANDOM_ANSWER_PROB,
) -> torch.Tensor:
    """Cross-entropy of labels under Bradley-Terry with a random-answer term, per pair.

    P(first preferred) = (1 - eps) * sigmoid(R1 - R2) + eps / 2, with eps = ``random_answer_prob``.
    ``returns_*``: (..., n_pairs) summed predicted reward; ``labels``: (n_pairs,) in {0, 0.5, 1}.
    Returns the loss per pair, shape (..., n_pairs).
    """
    p_first = preference_probability(returns_first, returns_second, random_answer_prob)
    return -(labels * torch.log(p_first) + (1.0 - labels) * torch.log1p(-p_first))


def preference_probability(
    returns_first: torch.Tensor, returns_second: torch.Tensor, random_answer_prob: float = RANDOM_ANSWER_PROB
) -> torch.Tensor:
    """P(first preferred) under Bradley-Terry with the random-answer term; logits are clipped for safety."""
    logits = (returns_first - returns_second).clamp(-50.0, 50.0)
    return (1.0 - random_answer_prob) * torch.sigmoid(logits) + random_answer_prob / 2.0


def _as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _why_nonfinite(model: nn.Module, obs: np.ndarray | torch.Tensor, acts: np.ndarray | torch.Tensor) -> str:
    """Why statistics of ``model`` over steps obs (N, ...), acts (N, act_dim) came out non-finite (failures only)."""
    for name, x in (("observation", _as_numpy(obs)), ("action", _as_numpy(acts))):
        where = first_nonfinite(x) if can_be_nonfinite(x.dtype) else None
        if where is not None:
            return f"{describe_nonfinite(name, x[where[0]])} (step {where[0]} of the {len(x)} they are fitted on)"
    bad_parameter = describe_nonfinite_parameters(model)
    if bad_parameter is not None:
        return f"its parameters are non-finite ({bad_parameter})"
    return "the steps are finite, but too large for float32 statistics"


def _check_stats(what: str, stats: torch.Tensor, model: nn.Module, obs, acts) -> None:
    if not bool(torch.isfinite(stats).all()):
        raise NonFiniteError(f"the reward model's {what} statistics are non-finite: {_why_nonfinite(model, obs, acts)}")


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


class EnsembleBase(nn.Module):
    """What every reward ensemble shares: per-member output normalisation to mean 0 and std ``target_std`` over
    recent steps, the averaged reward PPO is paid, and segment returns. Subclasses provide ``raw`` (unnormalised
    member rewards), ``features``/``member_pair_returns`` (what the trainer fits through) and ``net`` (the trained
    parameters, with ``l2()`` per member)."""

    n_members: int
    target_std: float = 1.0

    def _init_output_stats(self, n_members: int) -> None:
        self.register_buffer("out_mean", torch.zeros(n_members))
        self.register_buffer("out_std", torch.ones(n_members))

    @property
    def device(self) -> torch.device:
        return self.out_mean.device

    def raw(self, obs: np.ndarray | torch.Tensor, acts: np.ndarray | torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, obs: np.ndarray | torch.Tensor, acts: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Normalised member rewards.  # (n_members, *lead)"""
        r = self.raw(obs, acts)
        shape = (self.n_members,) + (1,) * (r.dim() - 1)
        return (r - self.out_mean.view(shape)) / self.out_std.view(shape) * self.target_std

    @torch.no_grad()
    def mean_reward(self, obs: np.ndarray, acts: np.ndarray) -> np.ndarray:
        """The reward PPO is paid: the average of the normalised members.  # (*lead,)"""
        return self(obs, acts).mean(dim=0).cpu().numpy()

    @torch.no_grad()
    def segment_returns(self, obs: np.ndarray, acts: np.ndarray) -> np.ndarray:
        """Per-member predicted returns of segments: obs (B, T, ...), acts (B, T, act_dim) -> (n_members, B)."""
        return self(obs, acts).sum(dim=-1).cpu().numpy()

    @torch.no_grad()
    def fit_output_stats(self, obs: np.ndarray, acts: np.ndarray) -> None:
        """Normalise each member over these (recent) steps: obs (N, ...), acts (N, act_dim).

        Raises ``NonFiniteError`` (and keeps the old statistics) when the new ones would be NaN or inf."""
        r = self.raw(obs, acts)  # (n_members, N)
        mean = r.mean(dim=1)  # (n_members,)
        std = r.std(dim=1).clamp_min(1e-6) if r.shape[1] > 1 else torch.ones_like(self.out_std)  # (n_members,)
        _check_stats("output", torch.cat([mean, std]), self, obs, acts)
        self.out_mean.copy_(mean)
        self.out_std.copy_(std)


class RewardEnsemble(EnsembleBase):
    """An ensemble of reward nets r(o, a) with input standardisation and per-member output normalisation."""

    def __init__(self, cfg: RewardModelConfig):
        super().__init__()
        self.cfg = cfg
        in_dim = cfg.obs_dim + (cfg.act_dim if cfg.use_actions else 0)
        self.net = _StackedMLP(cfg, in_dim)
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))
        self._init_output_stats(cfg.n_members)

    @property
    def n_members(self) -> int:
        return self.cfg.n_members

    def features(self, obs: np.ndarray | torch.Tensor, acts: np.ndarray | torch.Tensor) -> torch.Tensor:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        acts_t = torch.as_tensor(acts, dtype=torch.float32, device=self.device)
        lead = obs_t.shape[: acts_t.dim() - 1]
        x = torch.cat([obs_t.reshape(*lead, -1), acts_t if self.cfg.use_actions else acts_t[..., :0]], dim=-1)
        return (x - self.in_mean) / self.in_std

    def raw(self, obs: np.ndarray | torch.Tensor, acts: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Unnormalised member rewards. obs (*lead, *obs_shape), acts (*lead, act_dim) -> (n_members, *lead)."""
        x = self.features(obs, acts)  # (*lead, in)
        lead = x.shape[:-1]
        flat = x.reshape(1, -1, x.shape[-1]).expand(self.n_members, -1, -1)
        return self.net(flat).reshape(self.n_members, *lead)

    def raw_per_member(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised rewards for member-specific features: x (n_members, N, in) -> (n_members, N)."""
        return self.net(x)

    def member_pair_returns(self, feats: torch.Tensor) -> torch.Tensor:
        """Each member's returns of its own pairs: feats (M, P, 2, T, in) -> (M, P, 2)."""
        m, p, _, t, d = feats.shape
        return self.raw_per_member(feats.reshape(m, p * 2 * t, d)).reshape(m, p, 2, t).sum(-1)

    @torch.no_grad()
    def fit_input_stats(self, obs: np.ndarray, acts: np.ndarray) -> None:
        """Standardise inputs with the statistics of these (recent) steps: obs (N, ...), acts (N, act_dim).

        Raises ``NonFiniteError`` (and keeps the old statistics) when the new ones would be NaN or inf."""
        acts_t = torch.as_tensor(acts, dtype=torch.float32, device=self.device)
        x = torch.cat([torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(len(obs), -1),
                       acts_t if self.cfg.use_actions else acts_t[..., :0]], dim=-1)  # (N, in)
        mean = x.mean(0)  # (in,)
        std = x.std(0).clamp_min(1e-3) if len(x) > 1 else torch.ones_like(self.in_mean)  # (in,)
        _check_stats("input", torch.cat([mean, std]), self, obs, acts)
        self.in_mean.copy_(mean)
        self.in_std.copy_(std)

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        torch.save({"config": asdict(self.cfg), "state_dict": self.state_dict(), "extra": extra or {}}, path)

    @staticmethod
    def load(path: str | Path) -> tuple[RewardEnsemble, dict]:
        return RewardEnsemble.from_checkpoint(torch.load(path, map_location="cpu", weights_only=False))

    @staticmethod
    def from_checkpoint(ckpt: dict) -> tuple[RewardEnsemble, dict]:
        model = RewardEnsemble(RewardModelConfig(**ckpt["config"]))
        model.load_state_dict(ckpt["state_dict"])
        return model, ckpt.get("extra", {})


def load_ensemble(path: str | Path) -> tuple[EnsembleBase, dict]:
    """A saved reward ensemble of either kind, the MLP or an Atari run's CNN, ready to predict (in eval mode: the
    CNN's dropout off, its batch norm on the saved statistics), and its ``extra`` dict."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("kind") == "cnn":
        from pbrl.cnn_reward import CnnRewardEnsemble  # it imports this module

        model, extra = CnnRewardEnsemble.from_checkpoint(ckpt)
    else:
        model, extra = RewardEnsemble.from_checkpoint(ckpt)
    return model.eval(), extra
