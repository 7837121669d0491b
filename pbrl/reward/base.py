"""What every reward ensemble shares: the Bradley-Terry loss, the ``PairSource`` seam the trainer fits through, the
``EnsembleBase`` class, and ``load_ensemble`` for a checkpoint of either kind.

An ensemble maps ``(obs, acts) -> rewards (n_members, *lead)``. Each member's output is normalised to mean 0 and std
``target_std`` over recent steps (the paper's per-member normalisation), and ``mean_reward`` averages the normalised
members: the reward PPO is paid. Statistics that come out NaN or inf raise ``NonFiniteError`` with their cause
instead of silently poisoning every reward after them. A checkpoint carries the ensemble's kind and config; each
kind registers itself here when its module is imported (``pbrl.reward`` imports them all), so this module imports
none of them.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Protocol

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


def check_stats(what: str, stats: torch.Tensor, model: nn.Module, obs, acts) -> None:
    """Raise ``NonFiniteError`` naming the cause when new ``what`` statistics of ``model`` are not all finite."""
    if not bool(torch.isfinite(stats).all()):
        raise NonFiniteError(f"the reward model's {what} statistics are non-finite: {_why_nonfinite(model, obs, acts)}")


class PairSource(Protocol):
    """The labelled pairs of one fit as an ensemble takes them (``EnsembleBase.pair_source``), built once per fit."""

    def __getitem__(self, idx: torch.Tensor) -> Any:
        """(M, P) pair indices, a row per member -> what ``member_pair_returns`` takes for them."""
        ...

    def pairs(self, idx: np.ndarray) -> tuple[Any, Any]:
        """(P,) pair indices -> obs (P, 2, T, *obs_shape), acts (P, 2, T, act_dim), as ``raw`` takes them."""
        ...


class EnsembleBase(nn.Module):
    """Per-member output normalisation, the averaged reward PPO is paid, segment returns and checkpoints.

    A kind subclasses it as ``class MyEnsemble(EnsembleBase, kind="name")`` and provides ``cfg`` (a dataclass),
    ``config_from`` (that config from its saved dict), ``net`` (the trained parameters, with ``l2()`` per member),
    ``raw`` (unnormalised member rewards), ``pair_source`` and ``member_pair_returns`` (what the trainer fits
    through). Class attributes say what the loop has to do differently for it, so the loop never asks which kind.
    """

    kinds: ClassVar[dict[str, type[EnsembleBase]]] = {}  # kind -> class, as checkpoints name them
    kind: ClassVar[str]
    #: Labelled pairs are kept packed (``pbrl.reward.frames``) between fits: frame stacks, 706 KB a Pong segment.
    packed_pairs: ClassVar[bool] = False
    #: At most this many of the recent segments are evaluated for the output statistics (None: all of them).
    max_stats_segments: ClassVar[int | None] = None
    #: Pairs evaluated at once when a fit measures its losses (``pair_returns``): unpacked image pairs are 1.4 MB.
    eval_chunk: ClassVar[int] = 64
    #: Relabelling a rollout may use every core: the envs wait for it, and a CNN pass is the round's big cost.
    relabel_on_all_cores: ClassVar[bool] = False

    cfg: Any
    net: nn.Module
    target_std: float = 1.0

    def __init_subclass__(cls, kind: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
            EnsembleBase.kinds[kind] = cls

    def _init_output_stats(self, n_members: int) -> None:
        self.register_buffer("out_mean", torch.zeros(n_members))
        self.register_buffer("out_std", torch.ones(n_members))

    @property
    def n_members(self) -> int:
        return self.cfg.n_members

    @property
    def device(self) -> torch.device:
        return self.out_mean.device

    def raw(self, obs: np.ndarray | torch.Tensor, acts: np.ndarray | torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pair_returns(self, source: PairSource, idx: np.ndarray) -> torch.Tensor:
        """Every member's returns of the same pairs ``idx`` (P,) of ``source``, ``eval_chunk`` pairs at a time (the
        losses a fit measures).  # (M, P, 2)"""
        chunks = np.array_split(idx, -(-len(idx) // self.eval_chunk))
        return torch.cat([self._chunk_returns(source, chunk) for chunk in chunks], dim=1)

    def _chunk_returns(self, source: PairSource, idx: np.ndarray) -> torch.Tensor:
        return self.raw(*source.pairs(idx)).sum(-1)  # (M, P, 2)

    def pair_source(self, obs, acts) -> PairSource:
        """The labelled pairs obs (N, 2, T, *obs_shape), acts (N, 2, T, act_dim) indexable by (M, P) indices."""
        raise NotImplementedError

    def member_pair_returns(self, batch) -> torch.Tensor:
        """Each member's returns of its own pairs, from ``pair_source(...)[idx]``.  # (M, P, 2)"""
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

    def rollout_reward(self, obs: np.ndarray, acts: np.ndarray) -> np.ndarray:
        """``mean_reward`` of a whole rollout, on every core where ``relabel_on_all_cores``.  # (T, n_envs)"""
        if not self.relabel_on_all_cores:
            return self.mean_reward(obs, acts)
        threads = torch.get_num_threads()
        torch.set_num_threads(max(threads, os.cpu_count() or 1))
        try:
            return self.mean_reward(obs, acts)
        finally:
            torch.set_num_threads(threads)

    @torch.no_grad()
    def segment_returns(self, obs: np.ndarray, acts: np.ndarray) -> np.ndarray:
        """Per-member predicted returns of segments: obs (B, T, ...), acts (B, T, act_dim) -> (n_members, B)."""
        return self(obs, acts).sum(dim=-1).cpu().numpy()

    def fit_input_stats_on_pairs(self, obs, acts) -> None:
        """Fit input statistics to labelled pairs obs (N, 2, T, ...), acts (N, 2, T, act_dim); none by default."""

    def normalised_returns(self, raw_returns: np.ndarray, length: int) -> np.ndarray:
        """Member returns of ``length``-step segments as ``segment_returns`` gives them, from their raw returns
        (n_members, B): each member's normalisation applied to a sum of ``length`` steps.  # (n_members, B)"""
        mean, std = self.out_mean.cpu().numpy()[:, None], self.out_std.cpu().numpy()[:, None]
        return (np.asarray(raw_returns) - length * mean) / std * self.target_std

    @torch.no_grad()
    def fit_output_stats(self, obs: np.ndarray, acts: np.ndarray) -> torch.Tensor:
        """Normalise each member over these (recent) steps: obs (N, ...), acts (N, act_dim). Returns the members'
        raw rewards of those steps, which the statistics come from.  # (n_members, N)

        Raises ``NonFiniteError`` (and keeps the old statistics) when the new ones would be NaN or inf."""
        r = self.raw(obs, acts)  # (n_members, N)
        mean = r.mean(dim=1)  # (n_members,)
        std = r.std(dim=1).clamp_min(1e-6) if r.shape[1] > 1 else torch.ones_like(self.out_std)  # (n_members,)
        check_stats("output", torch.cat([mean, std]), self, obs, acts)
        self.out_mean.copy_(mean)
        self.out_std.copy_(std)
        return r

    # -- checkpoints: the kind, the config as a dict, the weights and statistics, and the caller's ``extra`` --------

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        torch.save({"kind": self.kind, "config": asdict(self.cfg), "state_dict": self.state_dict(),
                    "extra": extra or {}}, path)

    @classmethod
    def config_from(cls, saved: dict) -> Any:
        raise NotImplementedError

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> tuple[Any, dict]:
        model = cls(cls.config_from(ckpt["config"]))  # type: ignore[call-arg]
        model.load_state_dict(ckpt["state_dict"])
        return model, ckpt.get("extra", {})

    @classmethod
    def load(cls, path: str | Path) -> tuple[Any, dict]:
        return cls.from_checkpoint(torch.load(path, map_location="cpu", weights_only=False))


def load_ensemble(path: str | Path) -> tuple[EnsembleBase, dict]:
    """A saved reward ensemble of any kind, ready to predict (in eval mode: a CNN's dropout off, its batch norm on
    the saved statistics), and its ``extra`` dict. Checkpoints without a kind (MLPs saved before kinds were
    recorded) are MLPs."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    kind = ckpt.get("kind", "mlp")
    if kind not in EnsembleBase.kinds:
        raise ValueError(f"{path}: unknown reward model kind {kind!r}; known: {', '.join(EnsembleBase.kinds)}")
    model, extra = EnsembleBase.kinds[kind].from_checkpoint(ckpt)
    return model.eval(), extra
