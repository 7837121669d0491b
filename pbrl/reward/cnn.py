"""The paper's Atari reward model: an ensemble of CNNs r(o, a) on 84x84 frame stacks.

Each member: 4 conv layers (kernels 7/5/3/3, strides 3/2/1/1, 16 filters, leaky ReLU), a fully connected layer of
64 units on the conv features and the one-hot action, batch norm, dropout 0.5, then the reward. Inputs stay uint8
until a batch is evaluated (frames / 255), so a dataset of thousands of labelled segments costs its uint8 bytes,
not four times that in floats. Outputs are normalised per member to std 0.05 (the paper's Atari setting); the
adaptive L2 of the trainer applies to every weight. Labelled pairs stay packed (``pbrl.reward.frames``) until a
minibatch needs them, or on a GPU sit in one table of their distinct frames (``FramePairs``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pbrl.config.tree import RewardConfig
from pbrl.reward.base import EnsembleBase
from pbrl.reward.frames import PackedPairs

FRAMES_PER_CHUNK = 1024  # frames evaluated at once when scoring many steps (bounds the float memory)
#: The default of ``channels_last``: train CNNs on a CPU in channels-last memory format. The reward CNN's fits and
#: PPO's CnnPolicy updates run faster so (``scripts/speed/bench_channels_last.py``); inference stays as it is, where
#: it would be slower.
CHANNELS_LAST_ON_CPU = True


@dataclass(frozen=True)
class CnnRewardConfig:
    obs_shape: tuple[int, int, int]  # (frames, 84, 84)
    act_dim: int
    n_members: int = RewardConfig.n_members
    filters: int = 16
    hidden: int = RewardConfig.hidden
    dropout: float = 0.5
    leaky_slope: float = 0.01
    target_std: float = 0.05

    def __post_init__(self):
        if len(self.obs_shape) != 3:
            raise ValueError(f"obs_shape must be (channels, height, width), got {self.obs_shape}")
        if self.n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {self.n_members}")


class _CnnMember(nn.Module):
    def __init__(self, cfg: CnnRewardConfig, channels_last: bool = CHANNELS_LAST_ON_CPU):
        super().__init__()
        self.channels_last = channels_last  # lay training batches out channels-last on a CPU
        c, h, w = cfg.obs_shape
        f, slope = cfg.filters, cfg.leaky_slope
        self.conv = nn.Sequential(
            nn.Conv2d(c, f, 7, stride=3), nn.LeakyReLU(slope),
            nn.Conv2d(f, f, 5, stride=2), nn.LeakyReLU(slope),
            nn.Conv2d(f, f, 3, stride=1), nn.LeakyReLU(slope),
            nn.Conv2d(f, f, 3, stride=1), nn.LeakyReLU(slope),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_conv = self.conv(torch.zeros(1, c, h, w)).shape[1]
        self.fc = nn.Linear(n_conv + cfg.act_dim, cfg.hidden)
        self.norm = nn.BatchNorm1d(cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden, 1)
        self.slope = slope

    def forward(self, frames: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        """frames (N, C, H, W) uint8, acts (N, A) -> rewards (N,)."""
        if self.training and self.channels_last and frames.device.type == "cpu":
            frames = frames.contiguous(memory_format=torch.channels_last)  # while uint8: a quarter of the bytes
        x = self.conv(frames.float() / 255.0)
        x = self.fc(torch.cat([x, acts.float()], dim=1))
        x = self.drop(nn.functional.leaky_relu(self.norm(x), self.slope))
        return self.out(x).squeeze(-1)


class _Members(nn.ModuleList):
    def l2(self) -> torch.Tensor:
        """Sum of squared weights per member.  # (n_members,)"""
        return torch.stack([sum(p.pow(2).sum() for n, p in m.named_parameters() if n.endswith("weight"))
                            for m in self])


class FramePairs:
    """The labelled pairs, indexed by (members, pairs) without copying the whole dataset.

    On a GPU (or with ``resident``) packed frame-stack pairs are unpacked once into a table of their distinct
    frames on the device (4x smaller than the stacks; 395 MB at 1,000 Pong pairs) and every minibatch is one gather
    there. Otherwise they stay packed in main memory and are unpacked one minibatch at a time: on a CPU that costs
    little next to the CNN, and main memory stays flat as labels come in."""

    def __init__(self, obs: np.ndarray | PackedPairs, acts: np.ndarray, device: torch.device,
                 resident: bool | None = None):
        self.device = device
        if resident is None:
            resident = device.type == "cuda"
        self.table = None
        if resident and isinstance(obs, PackedPairs) and obs.stacked:
            self.table = obs.frame_table(device)  # (F, H, W), (N, 2, T, K)
            self.obs = None
        else:  # (N, 2, T, C, H, W) uint8, in main memory: only minibatches go to the device
            self.obs = obs if isinstance(obs, PackedPairs) else torch.from_numpy(np.ascontiguousarray(obs))
        acts_t = torch.as_tensor(acts, dtype=torch.float32)  # (N, 2, T, A)
        self.acts = acts_t.to(device) if self.table is not None else acts_t

    def __getitem__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, P) pair indices -> (M, P, 2, T, C, H, W), (M, P, 2, T, A) on the device."""
        if self.table is not None:
            frames, index = self.table
            idx = idx.to(self.device)
            return frames[index[idx]], self.acts[idx]
        idx = idx.cpu()
        obs = torch.from_numpy(self.obs[idx.numpy()]) if isinstance(self.obs, PackedPairs) else self.obs[idx]
        return obs.to(self.device, non_blocking=True), self.acts[idx].to(self.device, non_blocking=True)

    def pairs(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Pairs ``idx`` (P,) as the model's ``raw`` takes them: (P, 2, T, C, H, W), (P, 2, T, A)."""
        return self[torch.as_tensor(idx)]


class CnnRewardEnsemble(EnsembleBase, kind="cnn"):
    """``n_members`` independent CNN reward nets; the same interface as ``RewardEnsemble``. Frames are scaled by
    1/255, so there are no input statistics to fit. ``channels_last``: lay training batches out channels-last on a
    CPU (the same rewards and gradients, faster)."""

    packed_pairs = True  # a Pong segment's frame stacks: 706 KB as arrays, 2.5 KB packed
    max_stats_segments = 200  # a CNN pass over the whole buffer every round would cost more than PPO's update
    relabel_on_all_cores = True

    def __init__(self, cfg: CnnRewardConfig, channels_last: bool = CHANNELS_LAST_ON_CPU):
        super().__init__()
        self.cfg = cfg
        self.target_std = cfg.target_std
        self.net = _Members([_CnnMember(cfg, channels_last) for _ in range(cfg.n_members)])
        self._init_output_stats(cfg.n_members)

    @classmethod
    def config_from(cls, saved: dict) -> CnnRewardConfig:
        return CnnRewardConfig(**{**saved, "obs_shape": tuple(saved["obs_shape"])})

    def pair_source(self, obs: np.ndarray | PackedPairs, acts: np.ndarray, resident: bool | None = None
                    ) -> FramePairs:
        return FramePairs(obs, acts, self.device, resident)

    def member_pair_returns(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Each member's returns of its own pairs: (M, P, 2, T, C, H, W), (M, P, 2, T, A) -> (M, P, 2)."""
        obs, acts = batch
        m, p, _, t = obs.shape[:4]
        out = [member(obs[k].reshape(-1, *obs.shape[4:]), acts[k].reshape(-1, acts.shape[-1]))
               for k, member in enumerate(self.net)]
        return torch.stack(out).reshape(m, p, 2, t).sum(-1)

    def raw(self, obs: np.ndarray | torch.Tensor, acts: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Unnormalised member rewards: obs (*lead, C, H, W) uint8, acts (*lead, A) -> (n_members, *lead)."""
        obs_t = torch.as_tensor(obs)
        acts_t = torch.as_tensor(acts, dtype=torch.float32)
        lead = obs_t.shape[:-3]
        frames, a = obs_t.reshape(-1, *obs_t.shape[-3:]), acts_t.reshape(-1, acts_t.shape[-1])
        chunks = ((frames[i:i + FRAMES_PER_CHUNK].to(self.device), a[i:i + FRAMES_PER_CHUNK].to(self.device))
                  for i in range(0, len(frames), FRAMES_PER_CHUNK))  # one chunk on the device at a time
        out = torch.cat([torch.stack([member(f, x) for member in self.net]) for f, x in chunks], dim=1)
        return out.reshape(self.n_members, *lead)
