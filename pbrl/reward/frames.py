"""Frame-stack observations kept small while they wait to be fitted on.

An Atari segment's observations are 4-frame stacks (T, 4, 84, 84) uint8, 706 KB for 25 steps, and each stack
shares three frames with the one before it. ``PackedObs`` keeps a segment's distinct frames once (T + 3 of them),
zlib-compressed: about 2.5 KB for a masked Pong segment. ``PackedPairs`` holds the labelled pairs that way and
unpacks only the pairs a minibatch asks for, so the reward model's training data stays a few MB at the paper's
3,000 labels instead of 4 GB, and memory no longer grows with every label.

Observations that are not frame stacks (any other shape, or stacks whose frames do not line up) are compressed
whole; unpacking returns exactly what was packed either way.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch

TABLE_CHUNK = 256  # segments unpacked at a time into a frame table (50 MB of Pong frames)
ZLIB_LEVEL = 1  # fast: 0.7 ms to pack a Pong segment, 0.2 ms to unpack, still ~80x smaller


class PackedObs:
    """One segment's observations (T, *obs_shape), compressed; ``unpack()`` gives them back."""

    __slots__ = ("_data", "dtype", "shape", "stacked")

    def __init__(self, obs: np.ndarray):
        obs = np.asarray(obs)
        self.shape, self.dtype = tuple(obs.shape), obs.dtype
        # a frame stack: (T, K, H, W) where step t+1's first K-1 frames are step t's last K-1
        self.stacked = obs.ndim == 4 and len(obs) > 1 and bool(np.array_equal(obs[1:, :-1], obs[:-1, 1:]))
        distinct = np.concatenate([obs[0], obs[1:, -1]]) if self.stacked else obs
        self._data = zlib.compress(np.ascontiguousarray(distinct).tobytes(), ZLIB_LEVEL)

    @classmethod
    def from_bytes(cls, data: bytes, shape: tuple[int, ...], dtype, stacked: bool) -> PackedObs:
        """A PackedObs from what ``to_bytes`` gave (as saved in a file)."""
        out = cls.__new__(cls)
        out._data, out.shape, out.dtype, out.stacked = bytes(data), tuple(shape), np.dtype(dtype), bool(stacked)
        return out

    def to_bytes(self) -> bytes:
        """The compressed data, for saving with ``shape``, ``dtype`` and ``stacked``."""
        return self._data

    @property
    def nbytes(self) -> int:
        """Bytes held (compressed)."""
        return len(self._data)

    def distinct(self) -> np.ndarray:
        """The frames a stack is built from, each once: (T + K - 1, H, W) for a stack (T, K, H, W)."""
        if not self.stacked:
            raise ValueError("not a frame stack")
        t, k = self.shape[:2]
        return np.frombuffer(zlib.decompress(self._data), dtype=self.dtype).reshape(t + k - 1, *self.shape[2:])

    def unpack(self, out: np.ndarray | None = None) -> np.ndarray:
        """The observations as packed, written into ``out`` when given.  # (T, *obs_shape)"""
        if out is None:
            out = np.empty(self.shape, self.dtype)
        if self.stacked:
            k = self.shape[1]
            frames = self.distinct()
            # step t's stack is frames t .. t+K-1: a sliding window over the distinct frames
            out[...] = np.moveaxis(np.lib.stride_tricks.sliding_window_view(frames, k, axis=0), -1, 1)
        else:
            out[...] = np.frombuffer(zlib.decompress(self._data), dtype=self.dtype).reshape(self.shape)
        return out


class PackedPairs:
    """Observations of N labelled pairs, (N, 2, T, *obs_shape), packed; ``pairs[idx]`` for an integer array
    ``idx`` of any shape unpacks just those pairs into a (*idx.shape, 2, T, *obs_shape) array."""

    def __init__(self, pairs: Sequence[tuple[PackedObs, PackedObs]]):
        if not pairs:
            raise ValueError("no pairs to pack")
        self._pairs = list(pairs)
        first = self._pairs[0][0]
        self.dtype = first.dtype
        self.shape = (len(self._pairs), 2, *first.shape)

    def __len__(self) -> int:
        return len(self._pairs)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes + b.nbytes for a, b in self._pairs)

    def __getitem__(self, idx) -> np.ndarray:
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        out = np.empty(idx.shape + self.shape[1:], self.dtype)
        for pos, i in np.ndenumerate(idx):
            first, second = self._pairs[int(i)]
            first.unpack(out[pos][0])
            second.unpack(out[pos][1])
        return out

    @property
    def stacked(self) -> bool:
        """Whether every segment is a frame stack of the same shape (so ``frame_table`` applies)."""
        return all(a.stacked and b.stacked and a.shape == b.shape == self.shape[2:] for a, b in self._pairs)

    def frame_table(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Every pair's distinct frames in one uint8 tensor on ``device``, and where each pair's stacks are in it:
        ``frames[index[i]]`` is ``self[i]`` (2, T, K, H, W). Frames are unpacked and sent TABLE_CHUNK segments at
        a time, so main memory never holds the whole table.  # (F, H, W), (N, 2, T, K)"""
        t, k, *hw = self.shape[2:]
        per_seg = t + k - 1
        segs = [seg for pair in self._pairs for seg in pair]
        frames = torch.empty((len(segs) * per_seg, *hw), dtype=torch.uint8, device=device)
        staging = np.empty((TABLE_CHUNK, per_seg, *hw), np.uint8)
        for start in range(0, len(segs), TABLE_CHUNK):
            chunk = segs[start:start + TABLE_CHUNK]
            for j, seg in enumerate(chunk):
                staging[j] = seg.distinct()
            rows = slice(start * per_seg, (start + len(chunk)) * per_seg)
            frames[rows] = torch.from_numpy(staging[:len(chunk)]).reshape(-1, *hw).to(device)
        window = torch.arange(t, device=device)[:, None] + torch.arange(k, device=device)  # (T, K)
        starts = torch.arange(len(segs), device=device).reshape(-1, 2) * per_seg  # (N, 2)
        return frames, starts[:, :, None, None] + window
